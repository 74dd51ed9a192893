"""Relay messages on a replica link (wire/media_link.py; issue 18, item 4, the bind
elsewhere): round trips, bounds, which decoder takes them, and the relayed datagram's
envelope (any bytes unwrap or give None, never raise)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.node.sfu.kit import audio
from wire import WireError, encode
from wire.media import MAX_DATAGRAM
from wire.media_control import CLOSE_LEG_ENDED
from wire.media_link import (
    MAX_REJECT_MESSAGE,
    MAX_RELAYED_CONTROL,
    RELAY_ENVELOPE,
    RELAYED_DATAGRAM,
    LinkPing,
    RelayBind,
    RelayClose,
    RelayControl,
    decode_bridge_message,
    decode_link_message,
    decode_link_traffic,
    unwrap_relayed,
    wrap_relayed,
)

LEG = bytes(range(16))
SECRET = bytes(range(32, 64))
RELAYS = [
    RelayBind(0, LEG, SECRET),
    RelayBind(0xFFFF_FFFF, LEG, SECRET),
    RelayControl(7, b""),
    RelayControl(7, b"\x00" * MAX_RELAYED_CONTROL),
    RelayClose(7, CLOSE_LEG_ENDED, "x" * MAX_REJECT_MESSAGE),
    LinkPing(),
]


@pytest.mark.parametrize("message", RELAYS)
def test_every_relay_message_round_trips_on_an_established_link(message: object) -> None:
    assert decode_link_traffic(encode(message)) == message
    assert decode_link_message(encode(message)) == message
    with pytest.raises(WireError):
        decode_bridge_message(encode(message))


def test_bounds() -> None:
    with pytest.raises(WireError):
        RelayControl(1, b"\x00" * (MAX_RELAYED_CONTROL + 1))
    with pytest.raises(WireError):
        RelayClose(1, 0x204, "x" * (MAX_REJECT_MESSAGE + 1))
    with pytest.raises(WireError):
        RelayBind(1, LEG, SECRET[:31])
    with pytest.raises(WireError):
        RelayBind(2**32, LEG, SECRET)


def test_a_relay_bind_never_shows_its_secret() -> None:
    assert SECRET.hex() not in repr(RelayBind(1, LEG, SECRET))


def test_the_envelope_carries_the_datagram_byte_for_byte() -> None:
    datagram = audio(0xDEAD_BEEF) + b"\x00" * 100
    wrapped = wrap_relayed(0x0102_0304, datagram)
    assert wrapped[0] == RELAYED_DATAGRAM
    assert len(wrapped) == len(datagram) + RELAY_ENVELOPE
    assert unwrap_relayed(wrapped) == (0x0102_0304, datagram)


def test_a_media_datagram_is_no_envelope() -> None:
    assert unwrap_relayed(audio(7)) is None
    assert unwrap_relayed(bytes((RELAYED_DATAGRAM, 0, 0, 0, 1))) is None  # nothing inside
    assert unwrap_relayed(b"") is None


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=MAX_DATAGRAM + RELAY_ENVELOPE))
def test_any_bytes_unwrap_or_give_none(data: bytes) -> None:
    found = unwrap_relayed(data)
    if found is not None:
        assert wrap_relayed(*found) == data


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2**32 - 1), st.binary(min_size=1, max_size=MAX_DATAGRAM))
def test_wrap_then_unwrap(relay: int, datagram: bytes) -> None:
    assert unwrap_relayed(wrap_relayed(relay, datagram)) == (relay, datagram)
