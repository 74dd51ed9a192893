"""Call signalling formats (wire/calls.py): round trips, field rules, and decoding any bytes
raises only WireError."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from wire import WireError, decode, encode, message_info
from wire.calls import (
    MAX_RING_MS,
    SIGNAL_TYPES,
    CallAnswer,
    CallBusy,
    CallHangup,
    CallKeyUpdate,
    CallOffer,
    CallReject,
    CallRinging,
    CallSignal,
    LegRef,
    RejectReason,
    decode_signal,
)
from wire.errors import CODES, INVALID_VALUE, TOO_LARGE, TYPE_MISMATCH

CID = bytes(range(16))
LEG = LegRef("b.example", b"\x0b" * 16)

call_ids = st.binary(min_size=16, max_size=16)
legs = st.builds(
    LegRef,
    domain=st.text(st.characters(codec="ascii"), min_size=1, max_size=253),
    leg_id=st.binary(min_size=16, max_size=16),
)


@st.composite
def offers(draw: st.DrawFn) -> CallOffer:
    sent = draw(st.integers(0, 2**63))
    span = draw(st.integers(1, MAX_RING_MS))
    secret = draw(st.binary(min_size=32, max_size=32))
    return CallOffer(draw(call_ids), secret, draw(st.booleans()), sent, sent + span)


signals: st.SearchStrategy[CallSignal] = st.one_of(
    offers(),
    st.builds(CallRinging, call_ids),
    st.builds(CallAnswer, call_ids, legs),
    st.builds(CallReject, call_ids, st.sampled_from(RejectReason)),
    st.builds(CallBusy, call_ids),
    st.builds(CallHangup, call_ids),
    st.builds(CallKeyUpdate, call_ids, st.integers(0, 2**32 - 1)),
)


def _one_of_each() -> list[CallSignal]:
    return [
        CallOffer(CID, b"\x5c" * 32, True, 1_000, 46_000),
        CallRinging(CID),
        CallAnswer(CID, LEG),
        CallReject(CID, RejectReason.DECLINED),
        CallReject(CID, RejectReason.UNAVAILABLE),
        CallBusy(CID),
        CallHangup(CID),
        CallKeyUpdate(CID, 7),
    ]


@pytest.mark.parametrize("signal", _one_of_each(), ids=lambda s: type(s).__name__)
def test_each_signal_round_trips(signal: CallSignal) -> None:
    data = encode(signal)
    assert decode_signal(data) == signal
    assert decode(data, type(signal)) == signal


def test_tags_are_the_call_family_and_the_union_is_complete() -> None:
    tags = {message_info(cls).tag for cls in SIGNAL_TYPES}
    assert tags == {
        "call.offer",
        "call.ringing",
        "call.answer",
        "call.reject",
        "call.busy",
        "call.hangup",
        "call.key-update",
    }
    assert message_info(LegRef).tag == "call.leg"


def test_a_leg_ref_alone_is_not_a_signal() -> None:
    with pytest.raises(WireError) as err:
        decode_signal(encode(LEG))
    assert err.value.code == "wire.unexpected_type"


@pytest.mark.parametrize(
    ("build", "code"),
    [
        (lambda: CallRinging(b"short"), INVALID_VALUE),
        (lambda: CallBusy(b"\x00" * 17), TOO_LARGE),
        (lambda: CallOffer(CID, b"\x00" * 31, False, 0, 1), INVALID_VALUE),
        (lambda: CallOffer(CID, b"\x00" * 32, 1, 0, 1), TYPE_MISMATCH),  # type: ignore[arg-type]
        (lambda: CallOffer(CID, b"\x00" * 32, False, -1, 1), INVALID_VALUE),
        (lambda: CallAnswer(CID, LegRef("b.example", b"\x00" * 15)), INVALID_VALUE),
        (lambda: CallAnswer(CID, LegRef("x" * 254, b"\x00" * 16)), TOO_LARGE),
        (lambda: CallReject(CID, 1), TYPE_MISMATCH),  # type: ignore[arg-type]
        (lambda: CallKeyUpdate(CID, 2**32), INVALID_VALUE),
        (lambda: CallKeyUpdate(CID, -1), INVALID_VALUE),
    ],
)
def test_construction_checks_fields(build: Any, code: str) -> None:
    with pytest.raises(WireError) as err:
        build()
    assert err.value.code == code


@pytest.mark.parametrize(("sent", "expires"), [(10, 10), (10, 9), (0, MAX_RING_MS + 1)])
def test_an_offer_rings_for_a_positive_bounded_span(sent: int, expires: int) -> None:
    with pytest.raises(ValueError, match="rings"):
        CallOffer(CID, b"\x00" * 32, False, sent, expires)
    CallOffer(CID, b"\x00" * 32, False, 0, MAX_RING_MS)  # the bound itself is allowed


def test_an_empty_leg_domain_is_refused() -> None:
    with pytest.raises(ValueError, match="domain"):
        LegRef("", b"\x00" * 16)


def _raw(tag: str, fields: dict[str, Any]) -> bytes:
    return bytes(msgpack.packb([tag, 1, fields], use_bin_type=True))


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (_raw("call.offer", {"call_id": CID, "call_secret": bytes(32), "video": False,
                             "sent_ms": 5, "expires_ms": 5}), INVALID_VALUE),
        (_raw("call.reject", {"call_id": CID, "reason": 9}), INVALID_VALUE),
        (_raw("call.busy", {"call_id": CID, "extra": 1}), "wire.unknown_field"),
        (_raw("call.hangup", {}), "wire.missing_field"),
        (bytes(msgpack.packb(["call.busy", 2, {"call_id": CID}], use_bin_type=True)),
         "wire.bad_version"),
    ],
)  # fmt: skip
def test_decoding_refuses_bad_signals_with_a_code(data: bytes, code: str) -> None:
    with pytest.raises(WireError) as err:
        decode_signal(data)
    assert err.value.code == code


def _decode_or_code(data: bytes) -> None:
    try:
        signal = decode_signal(data)
    except WireError as e:
        code = e.code
    else:
        assert isinstance(signal, SIGNAL_TYPES)
        assert encode(signal) == data  # what decodes is canonical
        return
    assert code in CODES


@given(signals)
@settings(max_examples=200)
def test_any_signal_round_trips(signal: CallSignal) -> None:
    assert decode_signal(encode(signal)) == signal


@given(st.binary(max_size=256))
@example(b"")
@example(b"\x93\xaacall.offer\x01\x80")
@settings(max_examples=400)
def test_arbitrary_bytes_raise_only_wire_error(data: bytes) -> None:
    _decode_or_code(data)


_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.binary(max_size=40),
    st.text(max_size=8),
    st.lists(st.integers(-(2**63), 2**64 - 1), max_size=3),
)


@st.composite
def shaped(draw: st.DrawFn) -> bytes:
    """A signal-shaped array: a real tag and field names, random values."""
    cls = draw(st.sampled_from((*SIGNAL_TYPES, LegRef)))
    info = message_info(cls)
    fields = {name: draw(_values) for name, _ in info.fields}
    return _raw(info.tag, fields)


@given(shaped())
@settings(max_examples=300)
def test_signal_shaped_msgpack_raises_only_wire_error(data: bytes) -> None:
    _decode_or_code(data)


@given(signals, st.data())
@settings(max_examples=300)
def test_mutated_signals_raise_only_wire_error(signal: CallSignal, data: st.DataObject) -> None:
    good = encode(signal)
    i = data.draw(st.integers(0, len(good) - 1))
    how = data.draw(st.sampled_from(["flip", "truncate", "insert", "delete"]))
    if how == "flip":
        bad = good[:i] + bytes([good[i] ^ data.draw(st.integers(1, 255))]) + good[i + 1 :]
    elif how == "truncate":
        bad = good[:i]
    elif how == "insert":
        bad = good[:i] + data.draw(st.binary(min_size=1, max_size=4)) + good[i:]
    else:
        bad = good[:i] + good[i + 1 :]
    _decode_or_code(bad)


def test_an_offer_never_shows_its_secret() -> None:
    secret = bytes(range(100, 132))
    o = CallOffer(CID, secret, True, 1, 2)
    for text in (repr(o), str(o), repr([o])):
        assert secret.hex() not in text
        assert repr(secret) not in text
        assert CID.hex() in text
