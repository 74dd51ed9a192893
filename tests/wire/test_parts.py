"""wire.relay.deliver_parts and wire.codec.encode_split / bin_header / array_header: a
Deliver written in pieces is byte for byte the one ``encode`` gives, every body a piece of
its own (the envelope's own object)."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wire.codec import array_header, bin_header, decode, encode, encode_split
from wire.relay import (
    MAX_DELIVER,
    Deliver,
    Envelope,
    Introduce,
    SentShared,
    deliver_parts,
)

BOUNDARY_SIZES = [0, 1, 15, 16, 255, 256, 65535, 65536, 200000]
# One body object per size, built once: the property tests reuse them (identity is checked).
BODIES = {n: bytes([n % 251]) * n for n in BOUNDARY_SIZES}

envelopes = st.builds(
    Envelope,
    eid=st.binary(min_size=16, max_size=16),
    ts=st.integers(0, 2**64 - 1),
    expires=st.integers(0, 2**64 - 1),
    origin=st.sampled_from(["a.example", "relay.test", ""]),
    sender=st.one_of(st.none(), st.sampled_from(["alice@a.example", "b@relay.test"])),
    body=st.one_of(st.sampled_from(list(BODIES.values())), st.binary(max_size=300)),
)


@settings(max_examples=25, deadline=None)
@given(st.lists(envelopes, min_size=0, max_size=40))
def test_deliver_parts_join_is_the_encoding(envs: list[Envelope]) -> None:
    parts = deliver_parts(envs)
    joined = b"".join(parts)
    assert joined == encode(Deliver(tuple(envs)))
    assert decode(joined, Deliver, max_size=len(joined)) == Deliver(tuple(envs))
    # The head, then per envelope its head and its body: the body is the same object.
    assert len(parts) == 1 + 2 * len(envs)
    for i, env in enumerate(envs):
        assert parts[2 + 2 * i] is env.body


def test_deliver_parts_empty_and_full() -> None:
    assert b"".join(deliver_parts([])) == encode(Deliver(()))
    body = BODIES[65536]
    envs = [
        Envelope(eid=i.to_bytes(16, "big"), ts=i, expires=i + 1, origin="o", sender=None, body=body)
        for i in range(MAX_DELIVER)
    ]
    parts = deliver_parts(envs)
    assert b"".join(parts) == encode(Deliver(tuple(envs)))
    assert all(parts[2 + 2 * i] is body for i in range(MAX_DELIVER))


def test_deliver_parts_refuses_more_than_max() -> None:
    env = Envelope(eid=bytes(16), ts=0, expires=0, origin="o", sender=None, body=b"x")
    with pytest.raises(ValueError, match="at most"):
        deliver_parts([env] * (MAX_DELIVER + 1))


HEADER_SIZES = [0, 1, 15, 16, 31, 32, 255, 256, 65535, 65536, 70000]


@pytest.mark.parametrize("n", HEADER_SIZES)
def test_bin_header_is_msgpack(n: int) -> None:
    packed = msgpack.packb(b"x" * n, use_bin_type=True)
    assert packed == bin_header(n) + b"x" * n


@pytest.mark.parametrize("n", HEADER_SIZES)
def test_array_header_is_msgpack(n: int) -> None:
    packed = msgpack.packb([0] * n, use_bin_type=True)
    assert packed == array_header(n) + b"\x00" * n


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 1 << 20))
def test_bin_header_any_size(n: int) -> None:
    expected = msgpack.packb(b"x" * n, use_bin_type=True)[: len(expected_prefix(n))]
    assert bin_header(n) == expected


def expected_prefix(n: int) -> bytes:
    """Header length by the msgpack spec: bin 8 / 16 / 32."""
    return b"\0" * (2 if n < 256 else 3 if n < 65536 else 5)


@settings(max_examples=40, deadline=None)
@given(
    st.integers(0, 2**32 - 1),
    st.binary(min_size=16, max_size=16),
    st.integers(0, 2**32 - 1),
    st.one_of(st.sampled_from(list(BODIES.values())), st.binary(max_size=300)),
)
def test_encode_split_introduce(rid: int, eid: bytes, ttl: int, body: bytes) -> None:
    msg = Introduce(id=rid, mailbox=bytes(range(16)), eid=eid, ttl=ttl, body=body)
    head, value = encode_split(msg)
    assert value is body
    assert head + value == encode(msg)
    assert decode(head + value, Introduce) == msg


def test_encode_split_refuses_non_bytes_last_field() -> None:
    msg = SentShared(id=1, eid=bytes(16), results=("", "duplicate"))
    with pytest.raises(TypeError, match="not bytes"):
        encode_split(msg)


@pytest.mark.parametrize("obj", [b"raw", 3, None, object()])
def test_encode_split_refuses_non_message(obj: object) -> None:
    with pytest.raises(TypeError, match="not a message class"):
        encode_split(obj)
