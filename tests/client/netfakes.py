"""In-memory stand-ins for the client network tests: a frame transport and a scripted node.

The scripted node speaks the real frames of ``wire.relay`` (Hello, Auth, Send, ...) but keeps
only what a test looks at. Integration tests use a real node process instead.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Final

import trio

from client.errors import NetworkError
from client.websocket import Transport
from wire import decode, encode
from wire.e2e import SenderCertificate
from wire.relay import (
    PROTOCOL_VERSION,
    REQUESTS,
    Ack,
    Acked,
    Auth,
    Authenticated,
    CertificateIssued,
    Deliver,
    Drained,
    Envelope,
    Error,
    GetCertificate,
    GetPeerRoots,
    GetPrekeyStatus,
    GetServerKeys,
    Hello,
    PeerRoots,
    Ping,
    Pong,
    PrekeyStatus,
    Send,
    SendBatch,
    Sent,
    SentBatch,
    ServerKeys,
)

MAILBOX = bytes(range(16))
NO_ANSWER: Any = object()
"""What ``FakeNode`` answers to a fire-and-forget frame (``Ack`` with id 0)."""


class MemoryTransport:
    """One end of an in-memory frame stream."""

    def __init__(
        self, inbound: trio.MemoryReceiveChannel[bytes], outbound: trio.MemorySendChannel[bytes]
    ) -> None:
        self._in, self._out = inbound, outbound

    async def send(self, data: bytes) -> None:
        try:
            await self._out.send(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise NetworkError("closed") from None

    async def receive(self) -> bytes:
        try:
            return await self._in.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError, trio.BrokenResourceError):
            raise NetworkError("closed") from None

    async def aclose(self) -> None:
        await self._in.aclose()
        await self._out.aclose()


def transport_pair() -> tuple[MemoryTransport, MemoryTransport]:
    a_send, b_recv = trio.open_memory_channel[bytes](64)
    b_send, a_recv = trio.open_memory_channel[bytes](64)
    return MemoryTransport(a_recv, a_send), MemoryTransport(b_recv, b_send)


def hello(server: str = "example.test", nonce: bytes = b"\x01" * 32) -> Hello:
    return Hello(v=PROTOCOL_VERSION, server=server, suite=2, nonce=nonce, time=0)


Handler = Callable[["FakeNode", Any], Any]


UNKNOWN_FRAME: Final = Error(
    id=0, code="proto.malformed", message="undecodable frame (wire.unknown_type)", retry_after=0
)
"""What a node that predates a frame answers to it."""


@dataclass
class FakeNode:
    """Answers Auth, Send (de-duplicating by eid), GetPrekeyStatus and Ping.

    ``drop_after_sends`` breaks the connection after that many stored envelopes (before
    answering the last one), as a crash between storing and answering would.
    ``refuse`` maps a request class to an Error code to answer instead.
    """

    server: str = "example.test"
    stored: dict[bytes, bytes] = field(default_factory=dict)
    received: list[Any] = field(default_factory=list)
    connections: int = 0
    drop_after_sends: int | None = None
    refuse: dict[type, tuple[str, int]] = field(default_factory=dict)
    backlog: list[Envelope] = field(default_factory=list)
    """Pushed (one Deliver each, then Drained) after every successful Auth."""
    acked: list[bytes] = field(default_factory=list)
    on_ack: Callable[[Ack], None] | None = None
    certificate: SenderCertificate | None = None
    """Issued for GetCertificate (refused while ``None``)."""
    batches: bool = True
    """Answer SendBatch; when False, answer it as a node that predates it (Error id 0)."""
    documents: dict[str, bytes] = field(default_factory=dict)
    """Answered to GetServerKeys by domain (``fed.unavailable`` for another)."""
    peer_roots: bytes | None = None
    """Answered to GetPeerRoots (the home root's statement; ``None``: the node has none)."""

    @asynccontextmanager
    async def connector(self) -> AsyncIterator[Transport]:
        client_end, node_end = transport_pair()
        self.connections += 1
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._serve, node_end)
            try:
                yield client_end
            finally:
                nursery.cancel_scope.cancel()

    async def _serve(self, end: MemoryTransport) -> None:
        nonce = self.connections.to_bytes(32, "big")
        await end.send(encode(hello(self.server, nonce)))
        async with trio.open_nursery() as nursery:
            try:
                while True:
                    frame = decode(await end.receive(), REQUESTS)
                    if isinstance(frame, SendBatch) and not self.batches:
                        self.received.append(frame)
                        await end.send(encode(UNKNOWN_FRAME))
                        continue
                    self.received.append(frame)
                    answer = self._answer(frame)
                    if answer is NO_ANSWER:
                        continue
                    if answer is None:
                        await end.aclose()
                        return
                    await end.send(encode(answer))
                    if isinstance(answer, Authenticated):
                        # Pushed by another task while requests are read, as the node does.
                        nursery.start_soon(self._push_backlog, end)
            except NetworkError:
                return
            finally:
                nursery.cancel_scope.cancel()

    async def _push_backlog(self, end: MemoryTransport) -> None:
        with contextlib.suppress(NetworkError):
            for env in list(self.backlog):
                await end.send(encode(Deliver(envelopes=(env,))))
            await end.send(encode(Drained(pending=0)))

    def _ack(self, frame: Ack) -> None:
        if self.on_ack is not None:
            self.on_ack(frame)
        self.acked.extend(frame.eids)

    def _answer(self, frame: Any) -> Any:
        refused = self.refuse.get(type(frame))
        if refused is not None:
            return Error(id=frame.id, code=refused[0], message="refused", retry_after=refused[1])
        if isinstance(frame, Ack) and frame.id == 0:  # fire and forget: no Acked
            self._ack(frame)
            return NO_ANSWER
        if isinstance(frame, Auth):
            return Authenticated(id=frame.id, mailbox=MAILBOX, pending=0)
        if isinstance(frame, SendBatch) and self.batches:
            results = [self._answer(send) for send in frame.sends]
            if None in results:
                return None  # stored, but the answer is lost
            return SentBatch(id=frame.id, results=tuple(results))
        if isinstance(frame, Send):
            duplicate = frame.eid in self.stored
            if duplicate:
                assert self.stored[frame.eid] == frame.body, "a retry changed the bytes"
            self.stored[frame.eid] = frame.body
            if self.drop_after_sends is not None and len(self.stored) >= self.drop_after_sends:
                self.drop_after_sends = None
                return None  # stored, but the answer is lost
            return Sent(id=frame.id, eid=frame.eid, duplicate=duplicate)
        if isinstance(frame, Ack):
            self._ack(frame)
            return Acked(id=frame.id, deleted=len(frame.eids))
        if isinstance(frame, GetPrekeyStatus):
            return PrekeyStatus(id=frame.id, one_time=100, kem_one_time=100)
        if isinstance(frame, GetCertificate) and self.certificate is not None:
            return CertificateIssued(id=frame.id, certificate=self.certificate)
        if isinstance(frame, Ping):
            return Pong(id=frame.id, time=0)
        if isinstance(frame, GetServerKeys) and frame.domain in self.documents:
            return ServerKeys(
                id=frame.id, domain=frame.domain, document=self.documents[frame.domain]
            )
        if isinstance(frame, GetServerKeys):
            return Error(id=frame.id, code="fed.unavailable", message="unknown", retry_after=0)
        if isinstance(frame, GetPeerRoots):
            return PeerRoots(id=frame.id, statement=self.peer_roots)
        return Error(id=frame.id, code="proto.unexpected", message="not here", retry_after=0)
