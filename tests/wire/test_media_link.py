"""Control messages of a node-to-node media link (wire/media_link.py): round trips, bounds,
which decoder takes what, the close codes apart from the client's, and decoding any bytes
raises only WireError."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wire import WireError, encode
from wire import media_control as client_control
from wire.media_link import (
    CLOSE_LINK_DONE,
    CLOSE_LINK_PROTOCOL,
    CLOSE_LINK_REJECTED,
    CLOSE_LINK_TIMEOUT,
    MAX_LINK_CONTROL,
    LinkEnd,
    LinkHello,
    LinkJoin,
    LinkJoined,
    LinkJoinRefused,
    LinkReady,
    LinkRejected,
    decode_bridge_message,
    decode_handshake_answer,
    decode_hello,
    decode_link_message,
)
from wire.server import LinkChallenge, LinkProof

LEG = bytes(range(16))
HANDSHAKE = [
    LinkHello("a.example", "b.example"),
    LinkChallenge(bytes(32)),
    LinkProof("a.example", b"\x01" * 32, b"s" * 100),
    LinkReady(),
    LinkRejected("fed.auth", "the link proof does not verify"),
]
BRIDGE = [
    LinkJoin(LEG, 0),
    LinkJoined(0xFFFF_FFFF, 1),
    LinkJoinRefused(7, "call.no_leg"),
    LinkEnd(7),
]


@pytest.mark.parametrize("message", HANDSHAKE + BRIDGE)
def test_every_message_round_trips(message: object) -> None:
    assert decode_link_message(encode(message)) == message


def test_each_decoder_takes_only_its_messages() -> None:
    assert decode_hello(encode(HANDSHAKE[0])) == HANDSHAKE[0]
    for message in BRIDGE:
        assert decode_bridge_message(encode(message)) == message
    for message in HANDSHAKE:
        with pytest.raises(WireError):
            decode_bridge_message(encode(message))
    for answer in HANDSHAKE[3:]:
        assert decode_handshake_answer(encode(answer)) == answer
    with pytest.raises(WireError):
        decode_handshake_answer(encode(BRIDGE[0]))
    with pytest.raises(WireError):  # a client's bind is not a link's hello
        decode_hello(encode(client_control.MediaBind(LEG, bytes(32))))


def test_field_bounds() -> None:
    with pytest.raises(WireError, match="leg_id"):
        LinkJoin(LEG[:15], 1)
    with pytest.raises(WireError, match="channel"):
        LinkJoin(LEG, 1 << 32)
    with pytest.raises(WireError, match="far_channel"):
        LinkJoined(1, -1)
    with pytest.raises(WireError, match="origin"):
        LinkHello("a" * 254, "b.example")
    too_long = encode(LinkRejected("fed.auth", "x" * 512))[:-1] + b"x" * (MAX_LINK_CONTROL)
    with pytest.raises(WireError):
        decode_link_message(too_long)


def test_the_close_codes_are_apart_from_each_other_and_from_a_clients() -> None:
    link = {CLOSE_LINK_REJECTED, CLOSE_LINK_PROTOCOL, CLOSE_LINK_TIMEOUT, CLOSE_LINK_DONE}
    client = {
        client_control.CLOSE_MALFORMED_CONTROL,
        client_control.CLOSE_BIND_REFUSED,
        client_control.CLOSE_BIND_TIMEOUT,
        client_control.CLOSE_LEG_ENDED,
        client_control.CLOSE_REBOUND,
    }
    assert len(link) == 4
    assert not link & client


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=256))
def test_any_bytes_decode_or_raise_wire_error(data: bytes) -> None:
    for decoder in (decode_link_message, decode_hello, decode_bridge_message):
        with contextlib.suppress(WireError):
            decoder(data)
