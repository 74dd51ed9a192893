"""node.connection answering a turn (messages read together) that crosses the flood
threshold: the answers made up to that frame leave, then the 1008 close, and nothing
else; a push task woken meanwhile does not close ahead of the turn's answers (a Sent for
a stored envelope is never dropped)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Final

import pytest
import trio
import trio.testing

from node import errors
from node import session as session_module
from node.connection import Connection
from node.gateway import READY_EXTENSION
from node.relay import Relay
from node.session import CLOSE_POLICY, Session
from node.store import StoredEnvelope
from tests.node.harness import PEER, Device, call, eid, enroll, make_relay, token_for
from wire import decode, encode
from wire.relay import Drained, Error, Hello, Ok, Registered, Send, Sent, SetDeliveryToken

FLOOD_AFTER: Final = 4
JUNK: Final = b"\xc1"  # never valid msgpack: proto.malformed, a strike


@dataclass
class Wire:
    """Fake ASGI channels of one WebSocket under node.gateway (messages already read)."""

    inbox: trio.MemorySendChannel[dict[str, Any]]
    receive: trio.MemoryReceiveChannel[dict[str, Any]]
    sent: list[dict[str, Any]] = field(default_factory=list)
    read: deque[bytes] = field(default_factory=deque)

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    def ready(self) -> bytes | None:
        return self.read.popleft() if self.read else None

    def frames(self, start: int = 0) -> list[object]:
        return [decode(m["bytes"]) if "bytes" in m else m for m in self.sent[start:]]

    async def turn(self, first: bytes, *more: bytes) -> None:
        """The client's messages, all read by the time the first is handed over."""
        self.read.extend(more)
        await self.inbox.send({"type": "websocket.receive", "bytes": first})


def wire() -> Wire:
    inbox, receive = trio.open_memory_channel[dict[str, Any]](8)
    return Wire(inbox, receive)


async def bob_with_token(relay: Relay) -> tuple[Device, bytes]:
    bob = Device.create("bob")
    session = await enroll(relay, bob)
    token, verifier = token_for(bob)
    assert await call(session, SetDeliveryToken(7, verifier)) == [Ok(7)]
    return bob, token


async def register(relay: Relay, w: Wire, nursery: trio.Nursery) -> tuple[Session, Connection]:
    """alice registers over the connection; her catch-up is pushed."""
    alice = Device.create("alice")
    code = await relay.add_invite(alice.name, 3600)
    session = Session(relay, PEER)
    conn = Connection(session, w.send, nursery, {READY_EXTENSION: w.ready})
    nursery.start_soon(conn.serve, w.receive.receive)
    await trio.testing.wait_all_tasks_blocked()
    (hello,) = w.frames()
    assert isinstance(hello, Hello)
    await w.turn(encode(alice.register_frame(hello, code)))
    await trio.testing.wait_all_tasks_blocked()
    registered, drained = w.frames(1)
    assert isinstance(registered, Registered)
    assert drained == Drained(0)
    return session, conn


def malformed(n: int = 1) -> list[object]:
    return [Error(0, errors.PROTO_MALFORMED, "undecodable frame (wire.malformed)", 0)] * n


CLOSED: Final = {"type": "websocket.close", "code": CLOSE_POLICY}


async def test_a_turn_crossing_the_flood_is_answered_up_to_it_then_closed() -> None:
    relay = make_relay(flood_close_after=FLOOD_AFTER)
    bob, token = await bob_with_token(relay)
    w = wire()
    async with trio.open_nursery() as nursery:
        _, conn = await register(relay, w, nursery)
        start = len(w.sent)
        sends = [encode(Send(n, bob.mailbox, eid(n), token, 60, b"x")) for n in (1, 2, 3)]
        await w.turn(sends[0], sends[1], *[JUNK] * FLOOD_AFTER, sends[2], JUNK)
        await trio.testing.wait_all_tasks_blocked()
        assert w.frames(start) == [
            Sent(1, eid(1), False),
            Sent(2, eid(2), False),
            *malformed(FLOOD_AFTER),
            CLOSED,
        ]
        assert conn.closed
        nursery.cancel_scope.cancel()


async def test_a_push_task_woken_mid_turn_does_not_close_before_the_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The frame that crosses the threshold ends a run of Sends, which then goes to the
    store with the link already in ERROR. A push woken while that commit is under way
    must leave the close to the reader, after the run's Sent answers."""
    relay = make_relay(flood_close_after=FLOOD_AFTER)
    bob, token = await bob_with_token(relay)
    w = wire()
    committing, commit = trio.Event(), trio.Event()
    store_sends = session_module.store_sends

    async def slow_store_sends(r: Relay, run: list[Send]) -> object:
        committing.set()
        await commit.wait()
        return await store_sends(r, run)

    monkeypatch.setattr(session_module, "store_sends", slow_store_sends)
    async with trio.open_nursery() as nursery:
        session, conn = await register(relay, w, nursery)
        start = len(w.sent)
        sends = [encode(Send(n, bob.mailbox, eid(n), token, 60, b"x")) for n in (1, 2, 3)]
        await w.turn(JUNK, *[JUNK] * (FLOOD_AFTER - 2), sends[0], sends[1], JUNK, sends[2])
        await committing.wait()
        assert session.close_due() is not None  # the link is in ERROR already
        now = relay.now_ms()
        assert session.caller is not None
        mailbox = session.caller.mailbox
        session.offer(StoredEnvelope(mailbox, eid(9), 1, now, now + 60_000, "x", None, b"b"))
        await trio.testing.wait_all_tasks_blocked()
        assert not conn.closed
        commit.set()
        await trio.testing.wait_all_tasks_blocked()
        assert w.frames(start) == [
            *malformed(FLOOD_AFTER - 1),
            Sent(1, eid(1), False),
            Sent(2, eid(2), False),
            *malformed(),
            CLOSED,
        ]
        nursery.cancel_scope.cancel()
