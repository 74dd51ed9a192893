"""The WebSocket media fallback, client side (client.calls.ws_media, client.net; issue 17):
over an in-memory transport, a connection hands binary messages starting ``0x11`` to its
media sink and ``LegEnded`` pushes to its callback, and never fails on either; datagrams
go out as binary messages as they are; a full receive queue drops and counts; the media
ends with its connection; ``LegAttach`` binds it before the node's answer can be overtaken;
a meeting leg's ``MeetingLayer`` / ``MeetingKeyframe`` pushes come out of
``receive_control`` as the QUIC control stream's notices, another leg's are dropped;
a home document that lists no QUIC endpoint is fetched again once before ``media_quic``
gives up.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import trio

from client.calls.legs import LegRequests
from client.calls.ws_media import WebSocketMedia
from client.errors import Refused
from client.net import Connection, Push, serving
from tests.client.netfakes import hello, transport_pair
from tests.node.calls.helpers import datagram
from transport.base import MAX_DATAGRAM_PAYLOAD
from transport.errors import MessageTooLarge, TransportClosed
from trust.errors import CALL_PEER_ENDED, MEDIA_NONE
from wire import decode, encode
from wire.media_control import MediaKeyframe, MediaLayer, decode_notice
from wire.relay import (
    REQUESTS,
    LegAttach,
    LegAttached,
    LegEnded,
    LegGrant,
    MeetingKeyframe,
    MeetingLayer,
    Ping,
    Pong,
)

LEG = bytes(range(16))
STEP = 3.0


def _connection() -> tuple[Connection, object]:
    client_end, node_end = transport_pair()
    pushes, _ = trio.open_memory_channel[Push](8)
    return Connection(client_end, hello(), pushes), node_end


async def _ping(conn: Connection, node: object) -> None:
    """A request answered after whatever the node sent before (the reader took it)."""
    async with trio.open_nursery() as nursery:

        async def answer() -> None:
            ping = decode(await node.receive(), Ping)  # type: ignore[attr-defined]
            await node.send(encode(Pong(ping.id, 5)))  # type: ignore[attr-defined]

        nursery.start_soon(answer)
        with trio.fail_after(STEP):
            assert isinstance(await conn.request(Ping(0)), Pong)


async def test_media_and_leg_ended_are_routed_and_frames_still_answered() -> None:
    conn, node = _connection()
    media = WebSocketMedia(conn)
    ended: list[LegEnded] = []
    conn.on_leg_ended = ended.append
    async with serving(conn):
        await node.send(b"\x11no sink yet")  # type: ignore[attr-defined]
        await _ping(conn, node)  # the connection lives on
        conn.media = media
        first, second = datagram(7, frame=0), datagram(7, frame=1)
        await node.send(first)  # type: ignore[attr-defined]
        await node.send(encode(LegEnded(LEG, CALL_PEER_ENDED)))  # type: ignore[attr-defined]
        await node.send(second)  # type: ignore[attr-defined]
        await _ping(conn, node)
        assert await media.receive_datagram_batch() == [first, second]
    assert ended == [LegEnded(LEG, CALL_PEER_ENDED)]
    assert media.stats().datagrams_received == 2


async def test_datagrams_leave_as_binary_messages_and_sizes_are_bounded() -> None:
    conn, node = _connection()
    media = WebSocketMedia(conn)
    payloads = [datagram(1, frame=n) for n in range(3)]
    async with serving(conn):
        await media.send_datagrams(payloads)
        with trio.fail_after(STEP):
            got = [await node.receive() for _ in payloads]  # type: ignore[attr-defined]
        with pytest.raises(MessageTooLarge):
            await media.send_datagram(b"\x11" + bytes(MAX_DATAGRAM_PAYLOAD))
    assert got == payloads
    assert media.kind == "websocket"
    assert media.stats().datagrams_sent == 3


def test_a_full_queue_drops_the_newest_and_counts() -> None:
    conn, _ = _connection()
    media = WebSocketMedia(conn, queue=2)
    for n in range(5):
        media.deliver(datagram(1, frame=n))
    stats = media.stats()
    assert (stats.datagrams_received, stats.datagrams_dropped) == (2, 3)


async def test_the_media_ends_with_its_connection() -> None:
    conn, node = _connection()
    media = WebSocketMedia(conn)
    conn.media = media
    async with serving(conn):
        await node.aclose()  # type: ignore[attr-defined]
        with trio.fail_after(STEP), pytest.raises(TransportClosed):
            await media.receive_datagram()
    assert conn.media is None
    with pytest.raises(TransportClosed):
        await media.send_datagram(datagram(1))
    with pytest.raises(TransportClosed):
        await media.send_control(b"bind")


class _OneLink:
    """What LegRequests needs of a Link: the live connection (and the push hook)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.on_leg_ended: object = None

    async def current(self) -> Connection:
        return self.conn


async def test_attach_sets_the_sink_before_the_answer() -> None:
    conn, node = _connection()
    link = _OneLink(conn)
    legs = LegRequests(link, "http://127.0.0.1:1", _no_document)  # type: ignore[arg-type]
    grant = LegGrant(1, LEG, bytes(32))
    early = datagram(9)
    async with serving(conn), trio.open_nursery() as nursery:

        async def node_side() -> None:
            attach = decode(await node.receive(), REQUESTS)  # type: ignore[attr-defined]
            assert isinstance(attach, LegAttach)
            assert (attach.leg_id, attach.leg_secret) == (LEG, bytes(32))
            await node.send(encode(LegAttached(attach.id, LEG, 42)))  # type: ignore[attr-defined]
            await node.send(early)  # type: ignore[attr-defined]

        nursery.start_soon(node_side)
        with trio.fail_after(STEP):
            media, sender = await legs.websocket(grant)
            assert sender == 42
            assert await media.receive_datagram() == early
    assert link.on_leg_ended is not None  # LegRequests hooked the pushes


async def _no_document(fresh: bool) -> object:
    raise AssertionError("no document is needed for the WebSocket fallback")


async def test_a_document_without_a_media_endpoint_is_fetched_again_once() -> None:
    conn, _ = _connection()
    asked: list[bool] = []

    async def version_1(fresh: bool) -> object:
        asked.append(fresh)
        return SimpleNamespace(body=SimpleNamespace(server="legs.test"))

    legs = LegRequests(_OneLink(conn), "http://127.0.0.1:1", version_1)  # type: ignore[arg-type]
    async with trio.open_nursery() as nursery:
        with pytest.raises(Refused) as refused:
            await legs.quic(LegGrant(1, LEG, bytes(32)), nursery)
    assert refused.value.node_code == MEDIA_NONE
    assert asked == [False, True]


async def test_meeting_notices_come_out_as_control_messages_of_their_leg() -> None:
    conn, node = _connection()
    media = WebSocketMedia(conn, leg_id=LEG, queue=4)
    conn.media = media
    other = bytes(16)
    async with serving(conn):
        for push in (
            MeetingLayer(LEG, 7, 0, False),
            MeetingLayer(other, 7, 1, False),  # another leg's: not this media's
            MeetingKeyframe(LEG, 7, 1),
            MeetingLayer(LEG, 7, 0, True),
        ):
            await node.send(encode(push))  # type: ignore[attr-defined]
        await _ping(conn, node)  # the connection lives on
        with trio.fail_after(STEP):
            got = [decode_notice(await media.receive_control()) for _ in range(3)]
    assert got == [MediaLayer(7, 0, False), MediaKeyframe(7, 1), MediaLayer(7, 0, True)]
    assert media.notices_dropped == 1
    with pytest.raises(TransportClosed):
        await media.receive_control()  # the connection closed: so did the notices
    with pytest.raises(TransportClosed):
        await media.send_control(b"nothing goes this way")


async def test_meeting_notices_without_a_sink_are_ignored() -> None:
    conn, node = _connection()
    async with serving(conn):
        await node.send(encode(MeetingKeyframe(LEG, 7, 1)))  # type: ignore[attr-defined]
        await _ping(conn, node)
