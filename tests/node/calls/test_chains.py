"""A peer domain's bridge chained through the replica its link reached (issue 18, item 4;
node.calls.core ``open_remote`` / ``chain_remote``, node.calls.peering ``carries``,
``request_half`` / ``accept_chain``, node.calls.replicas ``peer_code``), pure: three relays
with the messages carried by hand. ``peer`` is the peer domain's node, ``mid`` the replica
its link reached, ``holder`` the replica holding the callee's leg; ``mid`` joins the peer's
remote leg to a remote leg of its own on the replica link, and holds no client leg."""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest

from node.calls import CallRelay, Forward, Leg
from node.calls.peering import LinkBridges
from node.calls.replicas import peer_code
from node.errors import (
    CALL_EXPIRED,
    CALL_LEG_TAKEN,
    CALL_NO_LEG,
    CALL_UNREACHABLE,
    NodeError,
)
from tests.node.calls.helpers import T0, Draws, datagram, sender_of
from wire.media_link import LinkEnd, LinkJoin, LinkJoined, LinkJoinRefused

DOMAIN, PEER = "a.example", "b.example"


@dataclass
class Chain:
    """The three relays and the link ends: peer <-> mid (``pm``, ``mp``), mid <-> holder
    (``mh``, ``hm``)."""

    peer: CallRelay
    mid: CallRelay
    holder: CallRelay
    pm: LinkBridges
    mp: LinkBridges
    mh: LinkBridges
    hm: LinkBridges


@pytest.fixture
def chain() -> Chain:
    peer, mid, holder = CallRelay(Draws()), CallRelay(os.urandom), CallRelay(os.urandom)
    mp = LinkBridges(mid, "mid-to-peer", PEER)
    mp.carries = True
    return Chain(
        peer,
        mid,
        holder,
        LinkBridges(peer, "peer-to-mid", DOMAIN),
        mp,
        LinkBridges(mid, "mid-to-holder", DOMAIN),
        LinkBridges(holder, "holder-to-mid", DOMAIN),
    )


def _chained(c: Chain) -> tuple[Leg, Leg]:
    """Bob (peer) bridged to Xavier (holder) through mid, as the shell carries it out."""
    bob, xavier = c.peer.allocate("bob", T0), c.holder.allocate("xavier", T0)
    join = c.pm.request(bob.leg_id, xavier.leg_id, T0)
    carried = c.mp.receive(join, T0)
    assert carried.replies == ()
    assert carried.carried == (join,)
    half = c.mh.request_half(join.leg_id, T0)
    (joined,) = c.hm.receive(half, T0).replies
    assert isinstance(joined, LinkJoined)
    assert c.mh.receive(joined, T0).answers[0].code is None
    (answer,) = c.mp.accept_chain(join, "mid-to-holder", half.channel, T0).replies
    assert isinstance(answer, LinkJoined)
    assert c.pm.receive(answer, T0).answers[0].code is None
    return bob, xavier


def test_media_cross_the_chain_both_ways_with_the_sender_rewritten_at_each_hop(
    chain: Chain,
) -> None:
    bob, xavier = _chained(chain)
    assert chain.mid.stats().legs == 0
    assert (chain.mid.stats().remote_legs, chain.mid.stats().bridges) == (2, 1)
    b_sender = chain.peer.bind("bob-media", bob.leg_id, bob.leg_secret, T0).sender
    x_sender = chain.holder.bind("x-media", xavier.leg_id, xavier.leg_secret, T0).sender

    out = chain.peer.on_datagram("bob-media", datagram(b_sender), T0)
    assert isinstance(out, Forward)
    assert out.dest == "peer-to-mid"
    hop = chain.mid.on_datagram("mid-to-peer", out.data, T0)
    assert isinstance(hop, Forward)
    assert hop.dest == "mid-to-holder"
    (holder_channel,) = chain.hm.joined
    assert sender_of(hop.data) == holder_channel
    there = chain.holder.on_datagram("holder-to-mid", hop.data, T0)
    assert isinstance(there, Forward)
    assert (there.dest, there.data[7:]) == ("x-media", datagram(b_sender)[7:])

    back = chain.holder.on_datagram("x-media", datagram(x_sender), T0)
    assert isinstance(back, Forward)
    hop = chain.mid.on_datagram("mid-to-holder", back.data, T0)
    assert isinstance(hop, Forward)
    assert hop.dest == "mid-to-peer"
    home = chain.peer.on_datagram("peer-to-mid", hop.data, T0)
    assert isinstance(home, Forward)
    assert home.dest == "bob-media"


def test_an_end_on_either_side_crosses_the_chain(chain: Chain) -> None:
    bob, xavier = _chained(chain)
    ended = chain.holder.hang_up("xavier", xavier.leg_id)
    (end,) = chain.hm.ended(ended).replies
    step = chain.mh.receive(end, T0)
    (far_end,) = chain.mp.ended(step.ended).replies  # the near half ended with the far one
    assert chain.mh.ended(step.ended).replies == ()  # the far half's end came from there
    assert isinstance(far_end, LinkEnd)
    gone = chain.pm.receive(far_end, T0).ended
    assert {leg.leg_id for leg in gone if not leg.remote} == {bob.leg_id}
    assert chain.mid.stats().remote_legs == 0

    bob, xavier = _chained(chain)  # the other way: the peer's caller hangs up
    (end,) = chain.pm.ended(chain.peer.hang_up("bob", bob.leg_id)).replies
    step = chain.mp.receive(end, T0)
    (to_holder,) = chain.mh.ended(step.ended).replies
    gone = chain.hm.receive(to_holder, T0).ended
    assert {leg.leg_id for leg in gone if not leg.remote} == {xavier.leg_id}


def test_a_join_of_a_leg_not_held_here_is_carried_only_when_carrying(chain: Chain) -> None:
    unknown = LinkJoin(bytes(16), 5)
    assert chain.mp.receive(unknown, T0).carried == (unknown,)
    plain = LinkBridges(chain.mid, "another-peer", PEER)  # not in cluster mode
    assert plain.receive(unknown, T0).replies == (LinkJoinRefused(5, CALL_NO_LEG),)
    assert plain.receive(unknown, T0).carried == ()
    # a leg this replica holds is answered here, carrying or not
    mine = chain.mid.allocate("mona", T0)
    assert isinstance(chain.mp.receive(LinkJoin(mine.leg_id, 6), T0).replies[0], LinkJoined)
    taken = chain.mp.receive(LinkJoin(mine.leg_id, 7), T0)
    assert (taken.replies, taken.carried) == ((LinkJoinRefused(7, CALL_LEG_TAKEN),), ())
    late = chain.mid.allocate("mona", T0)
    expired = chain.mp.receive(LinkJoin(late.leg_id, 8), T0 + 10**9)
    assert expired.replies == (LinkJoinRefused(8, CALL_EXPIRED),)


def test_a_half_refused_or_gone_leaves_nothing_behind(chain: Chain) -> None:
    join = LinkJoin(bytes(16), 5)
    half = chain.mh.request_half(join.leg_id, T0)
    (refused,) = chain.hm.receive(half, T0).replies
    assert refused == LinkJoinRefused(half.channel, CALL_NO_LEG)
    assert chain.mh.receive(refused, T0).answers[0].code == CALL_NO_LEG
    assert chain.mid.stats().remote_legs == 0
    with pytest.raises(NodeError) as gone:  # no joined half to chain to
        chain.mp.accept_chain(join, "mid-to-holder", half.channel, T0)
    assert gone.value.code == CALL_NO_LEG
    pending = chain.mh.request_half(join.leg_id, T0)
    with pytest.raises(NodeError) as waiting:  # not joined yet
        chain.mp.accept_chain(join, "mid-to-holder", pending.channel, T0)
    assert waiting.value.code == CALL_NO_LEG
    chain.mp.close()
    with pytest.raises(NodeError) as closed:
        chain.mp.accept_chain(join, "mid-to-holder", pending.channel, T0)
    assert closed.value.code == CALL_UNREACHABLE
    chain.mh.close()
    with pytest.raises(NodeError) as down:
        chain.mh.request_half(join.leg_id, T0)
    assert down.value.code == CALL_UNREACHABLE


@pytest.mark.parametrize(
    ("code", "told"),
    [
        (CALL_NO_LEG, CALL_NO_LEG),
        (CALL_LEG_TAKEN, CALL_LEG_TAKEN),
        (CALL_EXPIRED, CALL_EXPIRED),
        (CALL_UNREACHABLE, CALL_NO_LEG),
        ("store.unavailable", CALL_NO_LEG),
    ],
)
def test_a_peer_is_refused_with_the_codes_the_holder_would_give(code: str, told: str) -> None:
    assert peer_code(code) == told
