"""Fuzz targets for what a node reads from a peer node's media link (DESIGN section 9,
issue 17): the link's control messages (``wire.media_link``) and what the pure bridges of
one link (``node.calls.peering.LinkBridges``) do with a run of them."""

from __future__ import annotations

from dataclasses import dataclass

from node.calls import CallRelay
from node.calls.peering import LinkBridges, Step
from tests.fuzz.cursor import Cursor
from tests.fuzz.targets.base import Target, refusing
from tests.fuzz.targets.calls import _Draws
from tests.fuzz.world import NOW_MS, OTHER_DOMAIN
from wire import WireError, encode
from wire.media_link import (
    BRIDGE_MESSAGES,
    LinkEnd,
    LinkJoined,
    LinkJoinRefused,
    decode_bridge_message,
    decode_hello,
    decode_link_message,
)

MAX_MESSAGES = 16
"""Most bridge messages one input feeds the link."""
LINK = "peer-link"


def media_link(data: bytes) -> None:
    """``wire.media_link``: what any decoder accepts encodes back to the same bytes, and the
    narrower decoders accept exactly their share of what ``decode_link_message`` accepts."""
    message = None
    with refusing(WireError):
        message = decode_link_message(data)
        assert encode(message) == data
    bridge = hello = None
    with refusing(WireError):
        bridge = decode_bridge_message(data)
    with refusing(WireError):
        hello = decode_hello(data)
    is_bridge = message is not None and isinstance(message, BRIDGE_MESSAGES)
    assert (bridge is not None) == is_bridge
    assert hello is None or hello == message


@dataclass(frozen=True)
class Bridges:
    """A relay with client legs a peer may join (``legs``), one of them bridged out to the
    peer already (``pending``: our ``LinkJoin`` is unanswered), and the link's bridges."""

    relay: CallRelay
    link: LinkBridges
    legs: tuple[bytes, ...]
    pending: int


def bridges() -> Bridges:
    relay = CallRelay(_Draws())
    legs = tuple(relay.allocate(f"client-{i}", NOW_MS).leg_id for i in range(3))
    link = LinkBridges(relay, LINK, OTHER_DOMAIN)
    caller = relay.allocate("caller", NOW_MS)
    join = link.request(caller.leg_id, bytes(16), NOW_MS)
    return Bridges(relay, link, legs, join.channel)


def link_bridges(data: bytes) -> None:
    """``LinkBridges.receive`` over up to :data:`MAX_MESSAGES` chunks, each decoded as a
    bridge message: it never raises, answers only with bridge messages, and keeps its
    channels in step with the relay's remote legs; closing it then ends them all."""
    b = bridges()
    cursor = Cursor(data)
    count = 0
    while cursor.at < len(data) and count < MAX_MESSAGES:
        chunk = cursor.chunk()
        count += 1
        message = None
        with refusing(WireError):
            message = decode_bridge_message(chunk)
        if message is None:
            continue
        _check_step(b, b.link.receive(message, NOW_MS))
    step = b.link.close()
    assert b.relay.stats().remote_legs == 0
    assert all(answer.code is not None for answer in step.answers)


def _check_step(b: Bridges, step: Step) -> None:
    assert all(isinstance(r, (LinkJoined, LinkJoinRefused, LinkEnd)) for r in step.replies)
    assert len(step.replies) <= 1
    stats = b.relay.stats()
    assert stats.remote_legs == len(b.link.pending) + len(b.link.joined)
    assert not (b.link.pending & b.link.joined)
    for answer in step.answers:
        assert answer.channel == b.pending, "an answer for a join this node never asked"


TARGETS = (
    Target(
        "media_link",
        "wire.media_link.decode_link_message / decode_bridge_message / decode_hello",
        "wire.WireError",
        media_link,
        max_len=8192,
    ),
    Target(
        "link_bridges",
        "node.calls.peering.LinkBridges.receive",
        "nothing (refusals are answers)",
        link_bridges,
        max_len=4096,
    ),
)
