"""Sessions are stored as their wire schemas (``SessionRecord`` holding a ``RatchetRecord``),
converted by field name from the live objects (``client.persist_codec``).

``fixtures/sessions-v1.json`` holds session records written by the field-by-field mapping
this replaced (the code before issue 16): Alice's sessions with a pending prekey message,
Bob's with three skipped message keys, and the three held ratchet messages those keys open.
They must load, encode back to the same bytes, and keep working.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from client import persist_codec as codec
from client import ratchet
from client.entropy import SYSTEM_ENTROPY
from client.errors import StoreError
from client.formats import RatchetMessage
from client.records import RatchetRecord, SessionRecord
from client.session import Session
from suites import get_suite
from wire import decode, encode

FIXTURE = Path(__file__).parent / "fixtures" / "sessions-v1.json"
SUITES = ["xwing", "cnsa2"]


def _fixture(suite_name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(FIXTURE.read_text())[suite_name]
    return data


def _items(records: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(bytes.fromhex(k), bytes.fromhex(v)) for k, v in sorted(records.items())]


@pytest.mark.parametrize("suite_name", SUITES)
@pytest.mark.parametrize("side", ["alice", "bob"])
def test_old_records_load_and_encode_back_byte_for_byte(suite_name: str, side: str) -> None:
    suite = get_suite(suite_name)
    items = _items(_fixture(suite_name)[side])
    assert items
    for key, raw in items:
        (session,) = codec.sessions_from_records(suite, [(key, raw)]).values()
        assert isinstance(session, Session)
        assert encode(codec.session_record(session)) == raw
        assert decode(raw, SessionRecord).state == codec.session_record(session).state


@pytest.mark.parametrize("suite_name", SUITES)
def test_old_records_keep_working(suite_name: str) -> None:
    suite = get_suite(suite_name)
    data = _fixture(suite_name)
    (alice,) = codec.sessions_from_records(suite, _items(data["alice"])).values()
    (bob,) = codec.sessions_from_records(suite, _items(data["bob"])).values()
    assert alice.pending is not None
    assert len(bob.state.skipped) == 3
    held = [decode(bytes.fromhex(h), RatchetMessage) for h in data["held"]]
    for i, message in reversed(list(enumerate(held))):
        got = ratchet.decrypt(bob.state, message, SYSTEM_ENTROPY, data["now"])
        assert got == f"held {i}".encode()
    assert bob.state.skipped == {}
    reply = ratchet.encrypt(bob.state, b"reply")  # Bob has received, so he can answer
    assert ratchet.decrypt(alice.state, reply, SYSTEM_ENTROPY, data["now"]) == b"reply"


def test_a_session_of_another_suite_is_refused() -> None:
    items = _items(_fixture("cnsa2")["bob"])
    with pytest.raises(StoreError, match="another suite"):
        codec.sessions_from_records(get_suite("xwing"), items)


def test_records_store_exactly_the_fields_of_the_live_objects() -> None:
    assert [f.name for f in dataclasses.fields(RatchetRecord)] == [
        f.name for f in dataclasses.fields(ratchet.RatchetState)
    ]
    assert [f.name for f in dataclasses.fields(SessionRecord)] == [
        f.name for f in dataclasses.fields(Session)
    ]


def test_a_record_that_drifts_from_its_live_class_is_refused_at_import() -> None:
    @dataclasses.dataclass
    class Live:
        a: int
        b: int

    @dataclasses.dataclass
    class Stored:
        a: int

    with pytest.raises(TypeError, match="does not store the fields"):
        codec.Mirror(Live, Stored, {})
