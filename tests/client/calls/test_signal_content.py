"""Call signals as end-to-end content (client/content.py ``CallNote``): round trips, the
pairwise reader, and the existing kinds unchanged."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from client import content
from client.calls import keys
from client.calls.errors import MediaKeyError
from client.errors import BadContent
from tests.client.calls.signalkit import CID, LEG, offer
from wire import encode
from wire.calls import (
    CALL_SECRET_LEN,
    CallAnswer,
    CallBusy,
    CallHangup,
    CallKeyUpdate,
    CallReject,
    CallRinging,
    CallSignal,
    RejectReason,
)

SIGNALS: list[CallSignal] = [
    offer(video=True),
    CallRinging(CID),
    CallAnswer(CID, LEG),
    CallReject(CID, RejectReason.DECLINED),
    CallBusy(CID),
    CallHangup(CID),
    CallKeyUpdate(CID, 3),
]


def _text() -> content.Content:
    return content.Content("hi", 1_800_000_000_000, None, None, None, ())


@pytest.mark.parametrize("signal", SIGNALS, ids=lambda s: type(s).__name__)
def test_a_call_note_round_trips(signal: CallSignal) -> None:
    note = content.CallNote(signal, b"\x07" * 16, b"\x08" * 16)
    data = content.pack_call(note)
    assert content.unpack_call(data) == note
    assert content.unpack_pairwise(data) == note
    bare = content.CallNote(signal, None, None)
    assert content.unpack_call(content.pack_call(bare)) == bare


def test_the_pairwise_reader_reads_messages_too() -> None:
    assert content.unpack_pairwise(content.pack(_text())) == _text()


def test_the_existing_readers_refuse_call_notes() -> None:
    """``unpack_payload`` (the receive path today) and ``unpack`` are unchanged: a call note
    is not a message or group control for them."""
    data = content.pack_call(content.CallNote(CallHangup(CID), None, None))
    with pytest.raises(BadContent):
        content.unpack_payload(data)
    with pytest.raises(BadContent):
        content.unpack(data)
    with pytest.raises(BadContent):
        content.unpack_call(content.pack(_text()))


def test_a_bare_signal_is_not_content() -> None:
    with pytest.raises(BadContent):
        content.unpack_pairwise(encode(CallHangup(CID)))


def test_a_message_encodes_as_before() -> None:
    assert content.pack(_text()).hex() == (
        "93ae636c69656e742e636f6e74656e740186a474657874a26869a473656e74cf000001a3185c5000"
        "ab7265706c795f746f6b656ec0ad7265706c795f6d61696c626f78c0a6657870697265c0ab617474"
        "6163686d656e747390"
    )


def test_the_wire_and_key_schedule_agree_on_the_secret_size() -> None:
    # the key schedule takes exactly the secret an offer carries (one home: wire.calls)
    assert keys.CallSecret.from_bytes(bytes(CALL_SECRET_LEN)).secret == bytes(CALL_SECRET_LEN)
    assert len(keys.CallSecret.generate(lambda n: bytes(n)).secret) == CALL_SECRET_LEN
    for wrong in (CALL_SECRET_LEN - 1, CALL_SECRET_LEN + 1):
        with pytest.raises(MediaKeyError):
            keys.CallSecret.from_bytes(bytes(wrong))


@given(st.binary(max_size=200))
@settings(max_examples=300)
def test_arbitrary_bytes_are_only_bad_content(data: bytes) -> None:
    with contextlib.suppress(BadContent):
        content.unpack_pairwise(data)
