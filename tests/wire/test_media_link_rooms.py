"""Meeting room messages on a node-to-node media link (wire/media_link.py; issue 18, "across
domains, cascaded"): round trips, bounds, which decoder takes them, and any bytes decode
or raise only WireError; ``MeetingJoinAt`` on /v1/client beside an unchanged
``MeetingJoin``."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wire import WireError, decode, encode
from wire.media_link import (
    MAX_ANNOUNCED,
    MAX_CHANGES,
    MAX_LINK_CONTROL,
    LayerChange,
    LinkJoin,
    LinkSender,
    LinkTrack,
    RoomEnd,
    RoomJoin,
    RoomJoined,
    RoomKeyframe,
    RoomLayer,
    RoomRefused,
    SendersAdded,
    SendersRemoved,
    decode_bridge_message,
    decode_link_message,
    decode_link_traffic,
)
from wire.relay import REQUESTS, MeetingJoin, MeetingJoinAt, MeetingLayerSpec

ROOM = bytes(range(16))
LAYERS = (MeetingLayerSpec(180, 150), MeetingLayerSpec(360, 500), MeetingLayerSpec(720, 1500))
FULL = tuple(LinkSender(0xFFFF_0000 + i, LAYERS) for i in range(MAX_ANNOUNCED))
ROOMS = [
    RoomJoin(ROOM),
    RoomJoined(ROOM),
    RoomRefused(ROOM, "meeting.no_room"),
    SendersAdded(ROOM, True, (LinkSender(1, LAYERS), LinkSender(0xFFFF_FFFF, ()))),
    SendersAdded(ROOM, False, FULL),
    SendersRemoved(ROOM, False, tuple(range(MAX_ANNOUNCED))),
    RoomLayer(ROOM, True, (LayerChange(7, 2, False), LayerChange(8, 0, True))),
    RoomKeyframe(ROOM, False, (LinkTrack(7, 0),)),
    RoomLayer(
        ROOM, False, tuple(LayerChange(0xFFFF_FFFF - i, 2, True) for i in range(MAX_CHANGES))
    ),
    RoomKeyframe(ROOM, True, tuple(LinkTrack(0xFFFF_FFFF - i, 1) for i in range(MAX_CHANGES))),
    RoomEnd(ROOM, True),
]


@pytest.mark.parametrize("message", ROOMS)
def test_every_room_message_round_trips_on_an_established_link(message: object) -> None:
    assert decode_link_traffic(encode(message)) == message
    assert decode_link_message(encode(message)) == message
    with pytest.raises(WireError):  # the bridge decoder of calls stays as it was
        decode_bridge_message(encode(message))


def test_the_largest_messages_fit_a_control_message() -> None:
    for largest in (SendersAdded(ROOM, True, FULL), ROOMS[-3], ROOMS[-2]):
        assert len(encode(largest)) < MAX_LINK_CONTROL // 2
    assert decode_link_traffic(encode(LinkJoin(ROOM, 1))) == LinkJoin(ROOM, 1)


def test_field_bounds() -> None:
    with pytest.raises(WireError, match="room"):
        RoomJoin(ROOM[:15])
    with pytest.raises(WireError, match="senders"):
        SendersAdded(ROOM, True, (*FULL, LinkSender(1, ())))
    with pytest.raises(WireError, match="senders"):
        SendersRemoved(ROOM, True, tuple(range(MAX_ANNOUNCED + 1)))
    with pytest.raises(WireError, match="sender"):
        LayerChange(1 << 32, 0, True)
    with pytest.raises(WireError, match="layer"):
        LinkTrack(1, 256)
    with pytest.raises(WireError, match="changes"):
        RoomLayer(ROOM, True, tuple(LayerChange(i, 0, True) for i in range(MAX_CHANGES + 1)))
    with pytest.raises(WireError, match="tracks"):
        RoomKeyframe(ROOM, True, tuple(LinkTrack(i, 0) for i in range(MAX_CHANGES + 1)))
    with pytest.raises(WireError, match="layers"):
        LinkSender(1, (*LAYERS, MeetingLayerSpec(1080, 3000)))


def test_meeting_join_at_names_the_anchor_and_meeting_join_is_unchanged() -> None:
    join = MeetingJoinAt(3, ROOM, LAYERS, "a.example")
    assert decode(encode(join), REQUESTS) == join
    assert decode(encode(MeetingJoin(2, ROOM, LAYERS)), REQUESTS) == MeetingJoin(2, ROOM, LAYERS)
    assert MeetingJoinAt in REQUESTS
    with pytest.raises(WireError, match="anchor"):
        MeetingJoinAt(3, ROOM, (), "a" * 254)
    with pytest.raises(WireError):
        decode(encode(MeetingJoinAt(3, ROOM, (), "a.example"))[:-3], REQUESTS)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=512))
def test_any_bytes_decode_or_raise_wire_error(data: bytes) -> None:
    with contextlib.suppress(WireError):
        decode_link_traffic(data)
