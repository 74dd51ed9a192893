"""Seed inputs of the media link targets (``tests.fuzz.targets.links``): every link
control message made with the project's own encoder, a few near misses (one field off),
and runs of bridge messages that join, answer, refuse and end. Registered in
``tests.fuzz.seeds.SEEDS``."""

from __future__ import annotations

from tests.fuzz.targets.links import bridges
from tests.fuzz.world import DOMAIN, OTHER_DOMAIN, World
from wire import encode
from wire.media_link import (
    LinkEnd,
    LinkHello,
    LinkJoin,
    LinkJoined,
    LinkJoinRefused,
    LinkReady,
    LinkRejected,
)
from wire.server import LinkChallenge, LinkProof


def media_link(w: World) -> list[bytes]:
    hello = encode(LinkHello(DOMAIN, OTHER_DOMAIN))
    join = encode(LinkJoin(bytes(range(16)), 0x0102_0304))
    return [
        hello,
        encode(LinkChallenge(bytes(32))),
        encode(LinkProof(DOMAIN, b"\x01" * 32, b"s" * 64)),
        encode(LinkReady()),
        encode(LinkRejected("fed.auth", "the link proof does not verify")),
        join,
        encode(LinkJoined(7, 0xFFFF_FFFF)),
        encode(LinkJoinRefused(7, "call.no_leg")),
        encode(LinkEnd(7)),
        hello[:-1],  # cut short
        join.replace(b"\xce\x01\x02\x03\x04", b"\xcf\x00\x00\x00\x01\x01\x02\x03\x04"),  # u64
    ]


def _run(*messages: object) -> bytes:
    out = b""
    for message in messages:
        data = encode(message)
        assert len(data) < 255
        out += bytes([len(data)]) + data
    return out


def link_bridges(w: World) -> list[bytes]:
    """A join of each client leg, then ends of them; our pending join answered, refused or
    ended; and stray answers and garbage."""
    b = bridges()
    first, second, third = b.legs
    joins = [LinkJoin(leg, 100 + i) for i, leg in enumerate(b.legs)]
    return [
        _run(*joins, LinkJoin(first, 200), LinkJoined(b.pending, 9), LinkEnd(b.pending)),
        _run(LinkJoin(second, 1), LinkJoinRefused(b.pending, "call.leg_taken"), LinkEnd(5)),
        _run(LinkEnd(b.pending), LinkJoined(b.pending, 3), LinkJoin(third, 0xFFFF_FFFF)),
        _run(LinkJoined(12345, 6), LinkJoinRefused(12345, "x")) + b"\x03\x93\x00\x00",
    ]
