"""Whatever the bytes, ``decode`` raises only ``WireError``, and what it accepts is canonical."""

from __future__ import annotations

from typing import Any

import msgpack
from hypothesis import example, given, settings
from hypothesis import strategies as st

import wire
from tests.wire.samples import SAMPLES, any_sample

TAGS = [wire.message_info(c).tag for c in SAMPLES]
NAMES = sorted({name for c in SAMPLES for name, _ in wire.message_info(c).fields})


def decode_or_error(data: bytes) -> None:
    """Decode; a success must be canonical (re-encoding gives back exactly the input)."""
    try:
        msg = wire.decode(data)
    except wire.WireError as e:
        code = e.code
    else:
        assert wire.encode(msg) == data
        return
    assert code in wire.errors.CODES


scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.binary(max_size=24)
    | st.text(max_size=12)
    | st.floats()
)
keys = st.sampled_from(NAMES) | st.text(max_size=6) | st.binary(max_size=4)


def shaped(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Message-like arrays: a real (tag, version) with the right field names, random values."""

    def of(cls: type) -> st.SearchStrategy[Any]:
        info = wire.message_info(cls)
        names = [name for name, _ in info.fields]
        values = st.tuples(*[children for _ in names])
        return st.tuples(
            st.just(info.tag),
            st.just(info.version) | st.integers(-1, 3),
            values.map(lambda vs: dict(zip(names, vs, strict=True))),  # in declared order
        ).map(list)

    return st.sampled_from(SAMPLES).flatmap(of)


def extend(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return (
        st.lists(children, max_size=4)
        | st.dictionaries(keys, children, max_size=4)
        | st.tuples(st.sampled_from(TAGS) | st.text(max_size=6), children, children).map(list)
        | shaped(children)
    )


structures = st.recursive(scalars, extend, max_leaves=24)
more = settings(max_examples=400)


@given(st.binary(max_size=512))
@example(b"")
@example(b"\xc1")
@example(b"\x91" * 3000 + b"\xc0")
@example(b"\xdd\xff\xff\xff\xff")
@example(b"\xc7\x00\xff")  # zero-length timestamp ext
@example(b"\xc7\x00\x05")  # zero-length ext
@more
def test_arbitrary_bytes_raise_only_wire_error(data: bytes) -> None:
    decode_or_error(data)


@given(structures)
@more
def test_arbitrary_msgpack_raises_only_wire_error(value: Any) -> None:
    decode_or_error(msgpack.packb(value, use_bin_type=True))


@given(shaped(structures))
@more
def test_message_shaped_msgpack_raises_only_wire_error(value: Any) -> None:
    decode_or_error(msgpack.packb(value, use_bin_type=True))


@given(any_sample(), st.data())
@more
def test_mutated_encodings_raise_only_wire_error(msg: Any, data: st.DataObject) -> None:
    good = wire.encode(msg)
    i = data.draw(st.integers(0, len(good) - 1))
    mutation = data.draw(st.sampled_from(["flip", "truncate", "append", "insert", "delete"]))
    if mutation == "flip":
        bad = good[:i] + bytes([good[i] ^ data.draw(st.integers(1, 255))]) + good[i + 1 :]
    elif mutation == "truncate":
        bad = good[:i]
    elif mutation == "append":
        bad = good + data.draw(st.binary(min_size=1, max_size=8))
    elif mutation == "insert":
        bad = good[:i] + data.draw(st.binary(min_size=1, max_size=4)) + good[i:]
    else:
        bad = good[:i] + good[i + 1 :]
    decode_or_error(bad)
