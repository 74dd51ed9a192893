"""The call relay core's forwarding decision: each drop reason counted, the counters, bridges
across two domains' nodes over a link, and datagrams that never make it raise
(``node.calls.core``)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node import errors
from node.calls import CallRelay, Drop, DropReason, EndReason, Forward, LegCounters
from node.errors import NodeError
from tests.node.calls.helpers import PAYLOAD, T0, Draws, datagram, relay, sender_of
from wire.media import (
    HEADER_SIZE,
    MAX_DATAGRAM,
    MediaKind,
    StreamId,
    encode_datagram,
    signature_header,
)


def bridged(core: CallRelay) -> tuple[int, int]:
    """Alice's and Bob's legs, joined and bound to "qa" and "qb"; their sender ids."""
    a, b = core.allocate("alice", T0), core.allocate("bob", T0)
    core.join(a.leg_id, b.leg_id, T0)
    sa = core.bind("qa", a.leg_id, a.leg_secret, T0).sender
    sb = core.bind("qb", b.leg_id, b.leg_secret, T0).sender
    return sa, sb


# --- drops, each counted ------------------------------------------------------------------
@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x11" * HEADER_SIZE,  # a header with no payload
        datagram(1)[: HEADER_SIZE - 1],
        b"\x21" + datagram(1)[1:],  # version 2
        b"\x12" + datagram(1)[1:],  # type 2
        datagram(1)[:1] + b"\x01" + datagram(1)[2:],  # reserved flag bits
        datagram(1, b"x" * (MAX_DATAGRAM - HEADER_SIZE)) + b"x",  # too large
    ],
)
def test_a_malformed_datagram_is_dropped_and_counted(data: bytes) -> None:
    core = relay()
    _sa, _ = bridged(core)
    assert core.on_datagram("qa", data, T0) == Drop(DropReason.MALFORMED)
    assert core.stats().drops[DropReason.MALFORMED] == 1


def test_a_meeting_signature_datagram_is_dropped_as_malformed() -> None:
    """A well-formed signature datagram (``wire.media.TYPE_SIGNATURE``) is for meetings
    only: the 1:1 relay forwards frames, and drops it like any datagram it cannot read."""
    core = relay()
    sa, _ = bridged(core)
    data = encode_datagram(signature_header(StreamId(sa, MediaKind.AUDIO), 0, 0, 1), PAYLOAD)
    assert core.on_datagram("qa", data, T0) == Drop(DropReason.MALFORMED)
    assert core.stats().drops[DropReason.MALFORMED] == 1
    assert core.stats().forwarded == 0


def test_another_connections_stream_is_dropped_and_counted() -> None:
    core = relay()
    sa, sb = bridged(core)
    assert core.on_datagram("qa", datagram(sb), T0) == Drop(DropReason.STREAM_NOT_BOUND)
    assert core.on_datagram("qa", datagram(sb ^ 1), T0) == Drop(DropReason.STREAM_NOT_BOUND)
    stats = core.stats()
    assert stats.drops[DropReason.STREAM_NOT_BOUND] == 2
    assert stats.forwarded == 0
    assert core.on_datagram("qa", datagram(sa), T0) == Forward("qb", datagram(sa))  # goes on


def test_a_connection_with_no_leg_is_dropped_and_counted() -> None:
    core = relay()
    sa, _ = bridged(core)
    assert core.on_datagram("stranger", datagram(sa), T0) == Drop(DropReason.NO_LEG)
    assert core.stats().drops[DropReason.NO_LEG] == 1


def test_a_leg_without_a_bridge_is_dropped_and_counted() -> None:
    core = relay()
    leg = core.allocate("alice", T0)
    sender = core.bind("qa", leg.leg_id, leg.leg_secret, T0).sender
    assert core.on_datagram("qa", datagram(sender), T0) == Drop(DropReason.NO_PEER)
    assert core.stats().drops[DropReason.NO_PEER] == 1
    assert core.leg_counters(leg.leg_id) == LegCounters(1, len(datagram(sender)), 0, 0)


def test_a_peer_without_a_connection_is_dropped_and_counted() -> None:
    core = relay()
    a, b = core.allocate("alice", T0), core.allocate("bob", T0)
    core.join(a.leg_id, b.leg_id, T0)
    sender = core.bind("qa", a.leg_id, a.leg_secret, T0).sender
    assert core.on_datagram("qa", datagram(sender), T0) == Drop(DropReason.PEER_NOT_BOUND)
    assert core.stats().drops[DropReason.PEER_NOT_BOUND] == 1


def test_counters_add_up() -> None:
    core = relay()
    sa, sb = bridged(core)
    small, big = datagram(sa, b"x"), datagram(sb, b"y" * 1000)
    for _ in range(3):
        core.on_datagram("qa", small, T0)
    core.on_datagram("qb", big, T0)
    core.on_datagram("qb", b"junk", T0)
    stats = core.stats()
    assert (stats.legs, stats.remote_legs, stats.bound_legs, stats.bridges) == (2, 0, 2, 1)
    assert (stats.forwarded, stats.forwarded_bytes) == (4, 3 * len(small) + len(big))
    assert stats.drops[DropReason.MALFORMED] == 1
    assert sum(stats.drops.values()) == 1
    assert set(stats.drops) == set(DropReason)
    (a_id, b_id) = list(vars(core)["_legs"])
    assert core.leg_counters(a_id) == LegCounters(3, 3 * len(small), 1, len(big))
    assert core.leg_counters(b_id) == LegCounters(1, len(big), 3, 3 * len(small))
    assert core.leg_counters(b"\x00" * 16) is None


# --- two domains: caller's node A, callee's node B, one link between them -----------------
@dataclass(frozen=True)
class Link:
    """A node-to-node link as a shell would pass it: it knows the peer's domain only."""

    domain: str


def cross_domain() -> tuple[CallRelay, CallRelay, int, int]:
    """Bob (callee, on B) allocates; Alice (caller, on A) bridges to his leg over the link.
    A's and B's cores, and Alice's and Bob's sender ids."""
    # Bob's leg id and secret, then B's channel for the bridge and its remote leg's id
    scripted = [b"\xaa" * 16, b"s" * 32, b"\x00\x00\x00\x09", b"\xbb" * 16]
    node_a, node_b = CallRelay(Draws()), CallRelay(Draws(scripted))
    to_b, to_a = Link("b.example"), Link("a.example")
    bob = node_b.allocate("bob's connection", T0)
    alice = node_a.allocate("alice's connection", T0)
    a_channel = node_a.bridge_remote(alice.leg_id, to_b, to_b.domain, T0)
    b_channel = node_b.accept_remote(bob.leg_id, to_a, to_a.domain, a_channel, T0)
    node_a.remote_joined(to_b, a_channel, b_channel)
    sa = node_a.bind("qa", alice.leg_id, alice.leg_secret, T0).sender
    sb = node_b.bind("qb", bob.leg_id, bob.leg_secret, T0).sender
    return node_a, node_b, sa, sb


def test_media_crosses_two_nodes_with_only_the_sender_rewritten() -> None:
    node_a, node_b, sa, sb = cross_domain()
    out = node_a.on_datagram("qa", datagram(sa, frame=7), T0)
    assert isinstance(out, Forward)
    assert out.dest == Link("b.example")
    assert out.data[HEADER_SIZE:] == PAYLOAD
    assert out.data[:3] == datagram(sa, frame=7)[:3]
    assert out.data[7:] == datagram(sa, frame=7)[7:]
    delivered = node_b.on_datagram(Link("a.example"), out.data, T0)
    assert delivered == Forward("qb", out.data)
    back = node_b.on_datagram("qb", datagram(sb), T0)
    assert isinstance(back, Forward)
    assert back.dest == Link("a.example")
    assert node_a.on_datagram(Link("b.example"), back.data, T0) == Forward("qa", back.data)
    for node in (node_a, node_b):
        stats = node.stats()
        assert (stats.legs, stats.remote_legs, stats.bridges, stats.forwarded) == (1, 1, 1, 2)


def test_a_link_carries_only_the_channels_bridged_on_it() -> None:
    node_a, node_b, sa, _sb = cross_domain()
    out = node_a.on_datagram("qa", datagram(sa), T0)
    assert isinstance(out, Forward)
    forged = datagram(sender_of(out.data) ^ 0x55)
    assert node_b.on_datagram(Link("a.example"), forged, T0) == Drop(DropReason.STREAM_NOT_BOUND)
    assert node_b.on_datagram(Link("c.example"), out.data, T0) == Drop(DropReason.NO_LEG)


def test_media_waits_until_the_peer_node_joined() -> None:
    node_a = relay()
    alice = node_a.allocate("alice", T0)
    channel = node_a.bridge_remote(alice.leg_id, "link", "b.example", T0)
    sa = node_a.bind("qa", alice.leg_id, alice.leg_secret, T0).sender
    assert node_a.on_datagram("qa", datagram(sa), T0) == Drop(DropReason.NO_PEER)
    node_a.remote_joined("link", channel, 42)
    out = node_a.on_datagram("qa", datagram(sa), T0)
    assert isinstance(out, Forward)
    assert sender_of(out.data) == 42
    with pytest.raises(NodeError, match=errors.CALL_NO_LEG):
        node_a.remote_joined("link", channel ^ 1, 42)
    with pytest.raises(NodeError, match=errors.CALL_LEG_TAKEN):
        node_a.bridge_remote(alice.leg_id, "link", "c.example", T0)


def test_a_join_from_a_peer_node_needs_a_live_unbridged_leg() -> None:
    node_b = relay()
    bob = node_b.allocate("bob", T0)
    with pytest.raises(NodeError, match=errors.CALL_NO_LEG):
        node_b.accept_remote(b"\x02" * 16, "link", "a.example", 1, T0)
    with pytest.raises(NodeError, match=errors.CALL_EXPIRED):
        node_b.accept_remote(bob.leg_id, "link", "a.example", 1, bob.expires)
    node_b.accept_remote(bob.leg_id, "link", "a.example", 1, T0)
    with pytest.raises(NodeError, match=errors.CALL_LEG_TAKEN):
        node_b.accept_remote(bob.leg_id, "link", "c.example", 2, T0)
    with pytest.raises(ValueError, match="32-bit"):
        node_b.accept_remote(bob.leg_id, "link", "a.example", 1 << 32, T0)


def test_the_peer_node_ends_the_bridge_and_the_link_going_ends_them_all() -> None:
    node_a, node_b, _, _ = cross_domain()
    ended_b = node_b.hang_up("bob's connection", next(iter(vars(node_b)["_legs"])))
    remote = [e for e in ended_b if e.remote]
    assert len(remote) == 1
    assert remote[0].reason is EndReason.PEER_ENDED
    assert remote[0].far_channel is not None  # what B tells A to end
    assert remote[0].channel is not None
    ended_a = node_a.end_remote(Link("b.example"), remote[0].far_channel)
    assert [(e.owner, e.reason) for e in ended_a] == [
        (Link("b.example"), EndReason.HANG_UP),
        ("alice's connection", EndReason.PEER_ENDED),
    ]
    assert node_a.end_remote(Link("b.example"), remote[0].far_channel) == []
    node_a, node_b, _, _ = cross_domain()
    ended = node_b.drop_owner(Link("a.example"))
    assert {e.reason for e in ended} == {EndReason.OWNER_GONE, EndReason.PEER_ENDED}
    assert node_b.stats().legs == node_b.stats().remote_legs == 0


# --- privacy invariants ------------------------------------------------------------------
def test_a_remote_leg_knows_a_domain_never_an_address() -> None:
    node_b = relay()
    bob = node_b.allocate("bob", T0)
    for domain in ("alice@a.example", "", "@a.example"):
        with pytest.raises(ValueError, match="never an address"):
            node_b.accept_remote(bob.leg_id, "link", domain, 1, T0)
        with pytest.raises(ValueError, match="never an address"):
            node_b.bridge_remote(bob.leg_id, "link", domain, T0)
    assert node_b.stats().remote_legs == 0


def test_a_remote_leg_holds_the_link_the_domain_and_random_ids_only() -> None:
    _, node_b, _, _ = cross_domain()
    (remote,) = [leg for leg in vars(node_b)["_legs"].values() if leg.remote]
    assert remote.leg_id == b"\xbb" * 16  # a draw of the injected randomness
    assert (remote.owner, remote.conn, remote.domain) == (Link("a.example"),) * 2 + ("a.example",)
    assert remote.secret_hash == b""
    text = [getattr(remote, name) for name in remote.__slots__]
    assert not any(isinstance(value, str) and "@" in value for value in text)


def test_a_bytes_like_datagram_is_forwarded_as_bytes_across_a_link() -> None:
    node_a, _, sa, _ = cross_domain()
    for data in (bytearray(datagram(sa)), memoryview(datagram(sa))):
        out = node_a.on_datagram("qa", data, T0)
        assert isinstance(out, Forward)
        assert type(out.data) is bytes
        assert out.data[HEADER_SIZE:] == PAYLOAD


def test_a_bytes_like_datagram_is_forwarded_as_bytes_to_a_client_leg() -> None:
    core = relay()
    sa, _ = bridged(core)
    for data in (bytearray(datagram(sa)), memoryview(datagram(sa))):
        out = core.on_datagram("qa", data, T0)
        assert isinstance(out, Forward)
        assert type(out.data) is bytes
        assert out.data == datagram(sa)


# --- never raises --------------------------------------------------------------------------
@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["qa", "qb", "stranger"]),
            st.one_of(
                st.binary(max_size=MAX_DATAGRAM + 2),
                st.builds(
                    lambda sender, payload: datagram(sender, payload),
                    st.integers(0, 0xFFFF_FFFF),
                    st.binary(min_size=1, max_size=64),
                ),
                st.builds(
                    lambda head, tail: head + tail,
                    st.binary(min_size=HEADER_SIZE, max_size=HEADER_SIZE),
                    st.binary(min_size=1, max_size=32),
                ),
            ),
            st.integers(0, 100_000),
        ),
        max_size=20,
    )
)
def test_on_datagram_never_raises(events: list[tuple[str, bytes, int]]) -> None:
    core = relay()
    bridged(core)
    for conn, data, offset in events:
        decision = core.on_datagram(conn, data, T0 + offset)
        assert isinstance(decision, Forward | Drop)
    stats = core.stats()
    assert stats.forwarded + sum(stats.drops.values()) == len(events)
