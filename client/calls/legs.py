"""A client's call legs on its own node (DESIGN section 9; issue 17, the rendezvous):
the leg requests of ``wire.relay_calls`` and the two ways to bind media to a leg.

    legs = LegRequests(link, node_url, home_document)    (``Client.legs``)
    grant = await legs.allocate()                 the callee's side: LegRef{home, leg_id}
                                                  goes into the end-to-end CallAnswer
    grant = await legs.bridge(ref)                the caller's side, to the callee's leg
    media, sender = await legs.quic(grant, nursery)   QUIC to the node's media port, pinned
                                                  by its signed key document (MediaBind)
    media, sender = await legs.websocket(grant)   the fallback: this connection (LegAttach)
    await legs.hang_up(grant.leg_id)
    ended = await legs.wait_ended(leg_id)         the node's LegEnded push

``sender`` is the id the node bound to the leg: the sender of every datagram this side
sends (``client.calls.runner.run_media(..., sender=sender)``). Refusals raise
:class:`~client.errors.Refused` with the node's ``call.*`` code; a QUIC connection that
cannot be set up raises :class:`~client.errors.NetworkError`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

import trio

from client.calls.ws_media import WebSocketMedia
from client.errors import ClientError, NetworkError, Refused
from client.net import Link
from transport import PeerKeyMismatch, PinnedKey, QuicChannel, TransportError, connect_quic
from trust.errors import MEDIA_NONE
from trust.media import media_endpoint
from wire import WireError, encode
from wire.calls import LegRef
from wire.media_control import (
    CLOSE_BIND_REFUSED,
    MediaBind,
    MediaBound,
    MediaRefused,
    decode_bind_answer,
)
from wire.relay import (
    LegAllocate,
    LegAttach,
    LegAttached,
    LegBridge,
    LegEnded,
    LegGrant,
    LegHangUp,
    Ok,
)
from wire.server import ServerKeyDocument

T = TypeVar("T")
HomeDocument = Callable[[bool], Awaitable[ServerKeyDocument]]
"""The home domain's verified key document; ``True``: fetched fresh now."""


def _ignore(_: LegEnded) -> None:
    """The default ``on_ended``."""


class _Stale(Exception):
    """The held key document may be out of date; ``error`` if a fresh one does not help."""

    def __init__(self, error: ClientError) -> None:
        super().__init__(error.code)
        self.error = error


class LegRequests:
    """The leg requests over the client's :class:`~client.net.Link` (module docstring)."""

    def __init__(self, link: Link, node_url: str, home_document: HomeDocument) -> None:
        self._link = link
        self._host = urlsplit(node_url).hostname or ""
        self._home_document = home_document
        self.ended: dict[bytes, LegEnded] = {}
        """The ``LegEnded`` pushes received, by leg id."""
        self.on_ended: Callable[[LegEnded], object] = _ignore
        """Told of each ``LegEnded`` push as it arrives."""
        self._arrived = trio.Event()
        link.on_leg_ended = self._leg_ended

    async def allocate(self) -> LegGrant:
        """A new leg for an incoming call (``LegAllocate``)."""
        return _expect(await self._link.request(LegAllocate(0)), LegGrant)

    async def bridge(self, ref: LegRef) -> LegGrant:
        """A new leg joined to the other party's leg ``ref`` (``LegBridge``)."""
        return _expect(await self._link.request(LegBridge(0, ref)), LegGrant)

    async def hang_up(self, leg_id: bytes) -> None:
        """End the leg ``leg_id`` and the leg bridged to it (``LegHangUp``)."""
        _expect(await self._link.request(LegHangUp(0, leg_id)), Ok)

    async def websocket(self, grant: LegGrant) -> tuple[WebSocketMedia, int]:
        """The leg's media on the live connection to the node (``LegAttach``); (the
        transport, the sender id). The transport ends with that connection, or when
        another leg's media is attached to it (one call's media per connection)."""
        conn = await self._link.current()
        if conn.media is not None:  # one leg's media per connection: the last attached
            conn.media.close()
        media = WebSocketMedia(conn, leg_id=grant.leg_id)
        conn.media = media  # before the attach: the peer's media may follow the answer at once
        try:
            attached = _expect(
                await conn.request(LegAttach(0, grant.leg_id, grant.leg_secret)), LegAttached
            )
        except BaseException:
            media.close()
            raise
        return media, attached.sender

    async def quic(self, grant: LegGrant, nursery: trio.Nursery) -> tuple[QuicChannel, int]:
        """A QUIC connection to the node's media port, authenticated by the pin in its
        signed key document, bound to the leg (``MediaBind``); (the connection, the sender
        id). Its socket task runs in ``nursery``; closing the connection ends it. A
        document that lists no endpoint, or a pin the node's key no longer matches (a
        rotation), is fetched again once (``trust.media``)."""
        try:
            channel = await self._connect(nursery, fresh=False)
        except _Stale:
            try:
                channel = await self._connect(nursery, fresh=True)
            except _Stale as stale:
                raise stale.error from None
        try:
            bound = await _bind(channel, grant)
        except BaseException:
            channel.close(CLOSE_BIND_REFUSED, "not bound")
            raise
        return channel, bound.sender

    async def _connect(self, nursery: trio.Nursery, *, fresh: bool) -> QuicChannel:
        doc = await self._home_document(fresh)
        endpoint = media_endpoint(doc)
        if endpoint is None:
            message = f"{doc.body.server} lists no QUIC endpoint"
            raise _Stale(Refused(MEDIA_NONE, message))
        pin = PinnedKey.from_sha256(endpoint.pin)
        try:
            return await connect_quic(nursery, self._host, endpoint.port, pin=pin)
        except PeerKeyMismatch:
            raise _Stale(NetworkError("the node's QUIC key is not the one it lists")) from None
        except (TransportError, OSError) as exc:
            raise NetworkError(f"no QUIC connection to the node: {type(exc).__name__}") from None

    async def wait_ended(self, leg_id: bytes) -> LegEnded:
        """The ``LegEnded`` push for ``leg_id`` (at once if it came already)."""
        while leg_id not in self.ended:
            await self._arrived.wait()
        return self.ended[leg_id]

    def _leg_ended(self, frame: LegEnded) -> None:
        self.ended[frame.leg_id] = frame
        self._arrived.set()
        self._arrived = trio.Event()
        self.on_ended(frame)


async def _bind(channel: QuicChannel, grant: LegGrant) -> MediaBound:
    try:
        await channel.send_control(encode(MediaBind(grant.leg_id, grant.leg_secret)))
        answer = decode_bind_answer(await channel.receive_control())
    except TransportError as exc:
        raise NetworkError(f"the QUIC media connection failed: {type(exc).__name__}") from None
    except WireError:
        raise NetworkError("the node's answer to the media bind does not decode") from None
    if isinstance(answer, MediaRefused):
        raise Refused(answer.code, answer.message)
    return answer


def _expect(answer: Any, kind: type[T]) -> T:
    if not isinstance(answer, kind):
        raise NetworkError(f"unexpected answer: {type(answer).__name__}")
    return answer
