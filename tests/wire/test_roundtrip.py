"""Valid messages survive a round trip, and their encoding is a function of their value."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

import wire
from tests.wire.samples import SAMPLES, AllTypes, Leaf, Tree, any_sample, messages


@given(any_sample())
def test_decode_inverts_encode(msg: Any) -> None:
    data = wire.encode(msg)
    assert wire.decode(data) == msg
    assert wire.decode(data, type(msg)) == msg
    assert type(wire.decode(data)) is type(msg)


@given(any_sample())
def test_encode_is_deterministic_and_value_based(msg: Any) -> None:
    data = wire.encode(msg)
    copy = type(msg)(*[getattr(msg, name) for name, _ in wire.message_info(type(msg)).fields])
    assert copy == msg
    assert hash(copy) == hash(msg)
    assert wire.encode(copy) == data
    assert wire.encode(msg) == data


@given(messages(AllTypes))
def test_every_field_type_round_trips(msg: AllTypes) -> None:
    back = wire.decode(wire.encode(msg), AllTypes)
    assert back == msg
    assert type(back.color) is type(msg.color)
    assert all(type(c) is type(x) for c, x in zip(back.colors, msg.colors, strict=True))
    assert type(back.either) is type(msg.either)


@given(st.lists(any_sample(), min_size=2, max_size=2))
def test_different_messages_have_different_encodings(pair: list[Any]) -> None:
    a, b = pair
    assert (wire.encode(a) == wire.encode(b)) == (a == b and type(a) is type(b))


def test_decode_with_a_tuple_of_expected_classes() -> None:
    data = wire.encode(Leaf(b"d", "l"))
    assert wire.decode(data, (Tree, Leaf)) == Leaf(b"d", "l")
    assert wire.decode(data, (Tree, Leaf, AllTypes)) == Leaf(b"d", "l")


def test_registry_lists_every_sample() -> None:
    registered = wire.message_types()
    assert set(SAMPLES) <= set(registered)
    keys = [(wire.message_info(c).tag, wire.message_info(c).version) for c in registered]
    assert keys == sorted(keys)
    assert len(set(keys)) == len(keys)


def test_threads_each_get_a_consistent_codec() -> None:
    msgs = [Tree(i, (Tree(-i),)) for i in range(200)]
    expected = [wire.encode(m) for m in msgs]

    def work(_: int) -> bool:
        return all(
            wire.encode(m) == e and wire.decode(e) == m for m, e in zip(msgs, expected, strict=True)
        )

    with ThreadPoolExecutor(max_workers=4) as pool:
        assert all(pool.map(work, range(16)))
