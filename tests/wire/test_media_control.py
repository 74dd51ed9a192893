"""Control messages of a media connection (wire/media_control.py): round trips, bounds,
no secret in a repr, and decoding any bytes raises only WireError."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wire import WireError, encode
from wire.media_control import (
    CLOSE_BIND_REFUSED,
    CLOSE_BIND_TIMEOUT,
    CLOSE_LEG_ENDED,
    CLOSE_MALFORMED_CONTROL,
    CLOSE_REBOUND,
    MAX_CODE_LEN,
    MediaBind,
    MediaBound,
    MediaRefused,
    decode_bind,
    decode_bind_answer,
)

SECRET = bytes(range(32))


def test_round_trips() -> None:
    bind = MediaBind(b"\x01" * 16, SECRET)
    assert decode_bind(encode(bind)) == bind
    bound = MediaBound(b"\x01" * 16, 0xFFFF_FFFF)
    refused = MediaRefused("call.bad_secret", "the leg secret does not match")
    assert decode_bind_answer(encode(bound)) == bound
    assert decode_bind_answer(encode(refused)) == refused


def test_the_secret_is_not_in_the_repr() -> None:
    assert SECRET.hex() not in repr(MediaBind(b"\x01" * 16, SECRET))


def test_field_bounds() -> None:
    with pytest.raises(WireError, match="leg_id"):
        MediaBind(b"\x01" * 15, SECRET)
    with pytest.raises(WireError, match="leg_secret"):
        MediaBind(b"\x01" * 16, SECRET[:31])
    with pytest.raises(WireError, match="sender"):
        MediaBound(b"\x01" * 16, 1 << 32)
    with pytest.raises(WireError, match="code"):
        MediaRefused("x" * (MAX_CODE_LEN + 1), "")


def test_an_answer_is_not_a_bind_and_the_close_codes_differ() -> None:
    with pytest.raises(WireError):
        decode_bind(encode(MediaBound(b"\x01" * 16, 7)))
    with pytest.raises(WireError):
        decode_bind_answer(encode(MediaBind(b"\x01" * 16, SECRET)))
    codes = {
        CLOSE_MALFORMED_CONTROL,
        CLOSE_BIND_REFUSED,
        CLOSE_BIND_TIMEOUT,
        CLOSE_LEG_ENDED,
        CLOSE_REBOUND,
    }
    assert len(codes) == 5


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=128))
def test_any_bytes_decode_or_raise_wire_error(data: bytes) -> None:
    for decoder in (decode_bind, decode_bind_answer):
        with contextlib.suppress(WireError):
            decoder(data)
