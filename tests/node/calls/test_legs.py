"""The call relay core's legs: allocation, binding by secret, rebinding, bridges within one
node, hang-up and expiry with injected time (``node.calls.core``)."""

from __future__ import annotations

import hashlib

import pytest

from node import errors
from node.calls import (
    ALLOCATION_TIMEOUT_MS,
    IDLE_TIMEOUT_MS,
    LEG_ID_BYTES,
    LEG_SECRET_BYTES,
    CallRelay,
    Drop,
    DropReason,
    EndReason,
    Forward,
)
from node.errors import NodeError
from tests.node.calls.helpers import T0, Draws, datagram, relay


def refused(code: str) -> pytest.RaisesExc[NodeError]:
    return pytest.raises(NodeError, match=f"^{code}: ")


# --- allocation ------------------------------------------------------------------------
def test_a_leg_is_random_bytes_from_the_injected_randomness() -> None:
    draws = Draws()
    leg = relay(draws).allocate("alice's connection", T0)
    assert len(leg.leg_id) == LEG_ID_BYTES
    assert len(leg.leg_secret) == LEG_SECRET_BYTES
    assert draws.drawn == [leg.leg_id, leg.leg_secret]
    assert leg.expires == T0 + ALLOCATION_TIMEOUT_MS
    assert "leg_secret" not in repr(leg)
    assert leg.leg_secret.hex() not in repr(leg)


def test_a_leg_id_does_not_depend_on_its_owner() -> None:
    one = relay(Draws()).allocate("alice's connection", T0)
    two = relay(Draws()).allocate("bob's connection", T0 + 5)
    assert one.leg_id == two.leg_id  # the same draws, other owners: the same id


def test_a_drawn_leg_id_already_held_is_drawn_again() -> None:
    same, secret, fresh = b"L" * LEG_ID_BYTES, b"s" * LEG_SECRET_BYTES, b"M" * LEG_ID_BYTES
    core = relay(Draws([same, secret, same, fresh, secret]))
    assert core.allocate("a", T0).leg_id == same
    assert core.allocate("b", T0).leg_id == fresh
    assert core.stats().legs == 2


# --- binding -----------------------------------------------------------------------------
def test_a_connection_binds_with_the_leg_secret() -> None:
    core = relay()
    leg = core.allocate("owner", T0)
    bound = core.bind("quic-1", leg.leg_id, leg.leg_secret, T0 + 1)
    assert bound.leg_id == leg.leg_id
    assert 0 <= bound.sender <= 0xFFFF_FFFF
    assert core.stats().bound_legs == 1


def test_a_wrong_or_missing_secret_is_refused() -> None:
    core = relay()
    leg = core.allocate("owner", T0)
    for secret in (b"", leg.leg_secret[:-1], bytes(LEG_SECRET_BYTES), leg.leg_id):
        with refused(errors.CALL_BAD_SECRET):
            core.bind("quic-1", leg.leg_id, secret, T0)
    assert core.stats().bound_legs == 0


def test_an_unknown_or_expired_leg_is_refused() -> None:
    core = relay()
    leg = core.allocate("owner", T0)
    with refused(errors.CALL_NO_LEG):
        core.bind("quic-1", b"\x00" * LEG_ID_BYTES, leg.leg_secret, T0)
    with refused(errors.CALL_EXPIRED):
        core.bind("quic-1", leg.leg_id, leg.leg_secret, leg.expires)


def test_the_secret_is_kept_only_as_its_hash() -> None:
    core = relay()
    leg = core.allocate("owner", T0)
    state = vars(core)["_legs"][leg.leg_id]
    assert state.secret_hash == hashlib.sha256(leg.leg_secret).digest()
    assert leg.leg_secret not in {getattr(state, name) for name in state.__slots__}


def test_rebinding_replaces_the_old_connection_and_keeps_the_sender() -> None:
    core = relay()
    a, b = core.allocate("alice", T0), core.allocate("bob", T0)
    core.join(a.leg_id, b.leg_id, T0)
    first = core.bind("quic-a", a.leg_id, a.leg_secret, T0)
    core.bind("quic-b", b.leg_id, b.leg_secret, T0)
    again = core.bind("ws-a", a.leg_id, a.leg_secret, T0 + 10)  # moved to the fallback
    assert again == first
    assert core.on_datagram("quic-a", datagram(first.sender), T0 + 11) == Drop(DropReason.NO_LEG)
    assert core.on_datagram("ws-a", datagram(first.sender), T0 + 12) == Forward(
        "quic-b", datagram(first.sender)
    )
    assert core.stats().bound_legs == 2


def test_a_connection_that_goes_leaves_its_leg_waiting_for_a_rebind() -> None:
    core = CallRelay(Draws(), idle_timeout_ms=10 * ALLOCATION_TIMEOUT_MS)  # bob stays
    a, b = core.allocate("alice", T0), core.allocate("bob", T0)
    core.join(a.leg_id, b.leg_id, T0)
    bound_a = core.bind("quic-a", a.leg_id, a.leg_secret, T0)
    bound_b = core.bind("quic-b", b.leg_id, b.leg_secret, T0)
    assert core.unbind("quic-a", T0 + 100) == [a.leg_id]
    assert core.unbind("quic-a", T0 + 100) == []
    drop = core.on_datagram("quic-b", datagram(bound_b.sender), T0 + 101)
    assert drop == Drop(DropReason.PEER_NOT_BOUND)
    assert core.expire(T0 + 100 + ALLOCATION_TIMEOUT_MS - 1) == []
    assert core.bind("ws-a", a.leg_id, a.leg_secret, T0 + 200).sender == bound_a.sender
    core.unbind("ws-a", T0 + 300)
    ended = core.expire(T0 + 300 + ALLOCATION_TIMEOUT_MS)  # no rebind in time
    assert [(e.leg_id, e.reason) for e in ended] == [
        (a.leg_id, EndReason.EXPIRED),
        (b.leg_id, EndReason.PEER_ENDED),
    ]


# --- bridges within one node ---------------------------------------------------------
def test_two_legs_of_one_node_forward_to_each_other_unchanged() -> None:
    core = relay()
    a, b = core.allocate("alice", T0), core.allocate("bob", T0)
    core.join(b.leg_id, a.leg_id, T0)
    sa = core.bind("qa", a.leg_id, a.leg_secret, T0).sender
    sb = core.bind("qb", b.leg_id, b.leg_secret, T0).sender
    assert core.on_datagram("qa", datagram(sa), T0) == Forward("qb", datagram(sa))
    assert core.on_datagram("qb", datagram(sb), T0) == Forward("qa", datagram(sb))
    assert core.stats().bridges == 1


def test_a_bridge_needs_two_live_unbridged_legs() -> None:
    core = relay()
    a, b, c = (core.allocate(owner, T0) for owner in ("alice", "bob", "carol"))
    with refused(errors.CALL_NO_LEG):
        core.join(a.leg_id, b"\x01" * LEG_ID_BYTES, T0)
    with refused(errors.CALL_LEG_TAKEN):
        core.join(a.leg_id, a.leg_id, T0)
    core.join(a.leg_id, b.leg_id, T0)
    with refused(errors.CALL_LEG_TAKEN):
        core.join(c.leg_id, b.leg_id, T0)
    with refused(errors.CALL_EXPIRED):
        core.join(c.leg_id, a.leg_id, c.expires)
    assert core.stats().bridges == 1


# --- ends ------------------------------------------------------------------------------
def test_hanging_up_ends_both_legs() -> None:
    core = relay()
    a, b = core.allocate("alice", T0), core.allocate("bob", T0)
    core.join(a.leg_id, b.leg_id, T0)
    with refused(errors.CALL_NO_LEG):
        core.hang_up("bob", a.leg_id)  # not bob's leg
    ended = core.hang_up("alice", a.leg_id)
    assert [(e.leg_id, e.owner, e.reason) for e in ended] == [
        (a.leg_id, "alice", EndReason.HANG_UP),
        (b.leg_id, "bob", EndReason.PEER_ENDED),
    ]
    stats = core.stats()
    assert (stats.legs, stats.bridges) == (0, 0)
    with refused(errors.CALL_NO_LEG):
        core.bind("qa", a.leg_id, a.leg_secret, T0)


def test_an_unbound_leg_expires_after_the_allocation_timeout() -> None:
    core = relay()
    leg = core.allocate("alice", T0)
    assert core.expire(T0 + ALLOCATION_TIMEOUT_MS - 1) == []
    (ended,) = core.expire(T0 + ALLOCATION_TIMEOUT_MS)
    assert (ended.leg_id, ended.owner, ended.reason) == (leg.leg_id, "alice", EndReason.EXPIRED)
    assert core.stats().legs == 0
    with refused(errors.CALL_NO_LEG):
        core.bind("q", leg.leg_id, leg.leg_secret, T0 + ALLOCATION_TIMEOUT_MS)


def test_datagrams_keep_a_bound_leg_alive_and_silence_expires_it() -> None:
    core = relay()
    a, b = core.allocate("alice", T0), core.allocate("bob", T0)
    core.join(a.leg_id, b.leg_id, T0)
    sa = core.bind("qa", a.leg_id, a.leg_secret, T0).sender
    sb = core.bind("qb", b.leg_id, b.leg_secret, T0).sender
    now = T0
    for _ in range(5):  # both talk, well past one idle timeout in all
        now += IDLE_TIMEOUT_MS - 1
        assert isinstance(core.on_datagram("qa", datagram(sa), now), Forward)
        assert isinstance(core.on_datagram("qb", datagram(sb), now), Forward)
        assert core.expire(now) == []
    assert core.on_datagram("qa", datagram(sa), now + IDLE_TIMEOUT_MS) == Drop(DropReason.EXPIRED)
    ended = core.expire(now + IDLE_TIMEOUT_MS)
    assert {e.leg_id for e in ended} == {a.leg_id, b.leg_id}
    assert core.stats().drops[DropReason.EXPIRED] == 1


def test_timeouts_are_the_relays_to_choose() -> None:
    core = CallRelay(Draws(), allocation_timeout_ms=10, idle_timeout_ms=5)
    leg = core.allocate("alice", T0)
    assert leg.expires == T0 + 10
    core.bind("q", leg.leg_id, leg.leg_secret, T0 + 1)
    assert [e.leg_id for e in core.expire(T0 + 6)] == [leg.leg_id]
