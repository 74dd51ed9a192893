"""The pure bridges of one node-to-node link (node.calls.peering) between two relays, with
the messages carried by hand: a join answered, refused, abandoned or overtaken by a
hang-up; ends in both directions; a link that closes; and what a peer cannot reach (a
remote leg, a third domain)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from node.calls import CallRelay, EndReason, Forward, Leg
from node.calls.peering import Answer, LinkBridges, Step
from node.errors import CALL_LEG_TAKEN, CALL_NO_LEG, CALL_UNREACHABLE, NodeError
from tests.node.calls.helpers import T0, Draws, datagram, sender_of
from wire.media_link import LinkEnd, LinkJoin, LinkJoined, LinkJoinRefused

A, B = "a.example", "b.example"


@dataclass
class Pair:
    """Relay ``a`` and relay ``b`` with the two ends of one link (``ab`` on a, ``ba`` on b)."""

    a: CallRelay
    b: CallRelay
    ab: LinkBridges
    ba: LinkBridges


@pytest.fixture
def pair() -> Pair:
    a, b = CallRelay(Draws()), CallRelay(Draws([bytes([9]) * 16]))  # b's ids differ from a's
    return Pair(a, b, LinkBridges(a, "link-to-b", B), LinkBridges(b, "link-to-a", A))


def _call(p: Pair) -> tuple[Leg, Leg, Step]:
    """Alice's leg on a joined to Bob's leg on b; (alice's leg, bob's leg, a's last step)."""
    alice, bob = p.a.allocate("alice", T0), p.b.allocate("bob", T0)
    join = p.ab.request(alice.leg_id, bob.leg_id, T0)
    (joined,) = p.ba.receive(join, T0).replies
    assert isinstance(joined, LinkJoined)
    return alice, bob, p.ab.receive(joined, T0)


def test_a_join_answered_bridges_both_relays_and_media_flows(pair: Pair) -> None:
    alice, bob, step = _call(pair)
    (answer,) = step.answers
    assert answer == Answer(answer.channel)  # joined: no code
    assert pair.ab.joined == {answer.channel}
    assert not pair.ab.pending
    for relay in (pair.a, pair.b):
        stats = relay.stats()
        assert (stats.legs, stats.remote_legs, stats.bridges) == (1, 1, 1)
    a_sender = pair.a.bind("alice-media", alice.leg_id, alice.leg_secret, T0).sender
    toward_b = pair.a.on_datagram("alice-media", datagram(a_sender), T0)
    assert isinstance(toward_b, Forward)
    assert toward_b.dest == "link-to-b"
    (b_channel,) = pair.ba.joined
    assert sender_of(toward_b.data) == b_channel  # the channel b chose
    bob_sender = pair.b.bind("bob-media", bob.leg_id, bob.leg_secret, T0).sender
    at_bob = pair.b.on_datagram("link-to-a", toward_b.data, T0)
    assert at_bob == Forward("bob-media", toward_b.data)
    back = pair.b.on_datagram("bob-media", datagram(bob_sender), T0)
    assert isinstance(back, Forward)
    assert sender_of(back.data) == answer.channel
    assert pair.a.on_datagram("link-to-b", back.data, T0) == Forward("alice-media", back.data)


def test_a_refused_join_leaves_the_callers_leg_live_and_unbridged(pair: Pair) -> None:
    alice = pair.a.allocate("alice", T0)
    join = pair.ab.request(alice.leg_id, bytes(16), T0)
    (refused,) = pair.ba.receive(join, T0).replies
    assert refused == LinkJoinRefused(join.channel, CALL_NO_LEG)
    step = pair.ab.receive(refused, T0)
    assert step.answers == (Answer(join.channel, CALL_NO_LEG),)
    stats = pair.a.stats()
    assert (stats.legs, stats.remote_legs, stats.bridges) == (1, 0, 0)
    assert pair.b.stats().remote_legs == 0


def test_an_unknown_refusal_code_is_taken_as_no_leg(pair: Pair) -> None:
    alice = pair.a.allocate("alice", T0)
    join = pair.ab.request(alice.leg_id, bytes(16), T0)
    step = pair.ab.receive(LinkJoinRefused(join.channel, "made.up"), T0)
    assert step.answers == (Answer(join.channel, CALL_NO_LEG),)


def test_an_abandoned_join_answered_late_is_ended_at_the_peer(pair: Pair) -> None:
    alice, bob = pair.a.allocate("alice", T0), pair.b.allocate("bob", T0)
    join = pair.ab.request(alice.leg_id, bob.leg_id, T0)
    pair.ab.abandon(join.channel)
    assert pair.a.stats().bridges == 0
    (joined,) = pair.ba.receive(join, T0).replies
    assert isinstance(joined, LinkJoined)
    late = pair.ab.receive(joined, T0)
    assert late.replies == (LinkEnd(joined.far_channel),)
    assert late.answers == ()
    ended = pair.ba.receive(late.replies[0], T0).ended
    assert {e.reason for e in ended} == {EndReason.HANG_UP, EndReason.PEER_ENDED}
    assert pair.b.stats().legs == pair.b.stats().remote_legs == 0
    assert pair.a.stats().legs == 1  # alice's leg is still hers


def test_a_hang_up_while_the_join_is_pending_answers_the_waiter(pair: Pair) -> None:
    alice, bob = pair.a.allocate("alice", T0), pair.b.allocate("bob", T0)
    join = pair.ab.request(alice.leg_id, bob.leg_id, T0)
    ended = pair.a.hang_up("alice", alice.leg_id)
    step = pair.ab.ended(ended)
    assert step.replies == ()  # the peer's channel is not known yet
    assert step.answers == (Answer(join.channel, CALL_NO_LEG),)
    (joined,) = pair.ba.receive(join, T0).replies
    assert isinstance(joined, LinkJoined)
    assert pair.ab.receive(joined, T0).replies == (LinkEnd(joined.far_channel),)


@pytest.mark.parametrize("side", ["caller", "callee"])
def test_a_hang_up_on_either_side_ends_the_far_leg(pair: Pair, side: str) -> None:
    alice, bob, _ = _call(pair)
    if side == "caller":
        near, far, owner, leg = pair.ab, pair.ba, "alice", alice
    else:
        near, far, owner, leg = pair.ba, pair.ab, "bob", bob
    ended = near.core.hang_up(owner, leg.leg_id)
    (end,) = near.ended(ended).replies
    assert isinstance(end, LinkEnd)
    assert end.channel in far.joined
    far_ended = far.receive(end, T0).ended
    assert [(e.remote, e.reason) for e in far_ended] == [
        (True, EndReason.HANG_UP),
        (False, EndReason.PEER_ENDED),
    ]
    assert far.ended(far_ended).replies == ()  # no echo back
    for relay in (pair.a, pair.b):
        assert relay.stats().legs == relay.stats().remote_legs == 0
    assert far.receive(end, T0) == Step()  # a second end is nothing


def test_a_closed_link_ends_its_bridges_and_answers_the_waiters(pair: Pair) -> None:
    alice, _, _ = _call(pair)
    carol, dave = pair.a.allocate("carol", T0), pair.b.allocate("dave", T0)
    pending = pair.ab.request(carol.leg_id, dave.leg_id, T0)
    step = pair.ab.close()
    assert step.answers == (Answer(pending.channel, CALL_UNREACHABLE),)
    assert {e.leg_id for e in step.ended if not e.remote} == {alice.leg_id, carol.leg_id}
    assert {e.reason for e in step.ended if e.remote} == {EndReason.OWNER_GONE}
    assert pair.a.stats().legs == 0
    with pytest.raises(NodeError, match=CALL_UNREACHABLE):
        pair.ab.request(pair.a.allocate("erin", T0).leg_id, dave.leg_id, T0)


def test_a_peer_can_join_only_client_legs_of_this_node(pair: Pair) -> None:
    """A remote leg (this node's end of a bridge to a third domain) is not joinable: a
    link never relays between two peer domains."""
    alice = pair.a.allocate("alice", T0)
    pair.a.bridge_remote(alice.leg_id, "link-to-c", "c.example", T0)
    remote_leg = next(leg for leg in pair.a._legs.values() if leg.remote)
    step = pair.ab.receive(LinkJoin(remote_leg.leg_id, 77), T0)
    assert step.replies == (LinkJoinRefused(77, CALL_LEG_TAKEN),)
    assert pair.a.stats().remote_legs == 1  # only the one to c


def test_an_unknown_joined_is_ended_and_stray_refusals_are_ignored(pair: Pair) -> None:
    assert pair.ab.receive(LinkJoined(5, 6), T0).replies == (LinkEnd(6),)
    assert pair.ab.receive(LinkJoinRefused(5, CALL_NO_LEG), T0) == Step()
    assert pair.ab.receive(LinkEnd(5), T0) == Step()


def test_unbridge_remote_undoes_only_a_pending_bridge() -> None:
    relay = CallRelay(Draws())
    alice, bob = relay.allocate("alice", T0), relay.allocate("bob", T0)
    channel = relay.bridge_remote(alice.leg_id, "link", B, T0)
    assert relay.unbridge_remote("link", channel)
    assert not relay.unbridge_remote("link", channel)
    assert relay.stats().bridges == relay.stats().remote_legs == 0
    relay.join(alice.leg_id, bob.leg_id, T0)  # alice's leg is free again
    carol = relay.allocate("carol", T0)
    channel = relay.bridge_remote(carol.leg_id, "link", B, T0)
    relay.remote_joined("link", channel, 9)
    assert not relay.unbridge_remote("link", channel)  # joined: end it instead
    assert relay.stats().bridges == 2


def test_a_link_knows_a_domain_never_an_address() -> None:
    with pytest.raises(ValueError, match="never an address"):
        LinkBridges(CallRelay(Draws()), "link", "bob@b.example")
