"""Meeting legs and rooms (node.sfu.rooms; issue 18): a join gives a random leg id and a
secret kept only as its hash; each binding draws a fresh sender id unique in the room; a
rebind replaces the old connection; unbound legs expire; a room ends with its last leg."""

from __future__ import annotations

import pytest

from node.calls.legs import ALLOCATION_TIMEOUT_MS, secret_hash
from node.errors import CALL_BAD_SECRET, CALL_EXPIRED, CALL_NO_LEG, MEETING_FULL, NodeError
from node.sfu.model import DEFAULT_LAYERS, LayerSpec
from node.sfu.rooms import MeetingLegs
from tests.node.calls.helpers import T0, Draws

ROOM = b"\x01" * 16
OTHER_ROOM = b"\x02" * 16


def test_a_join_hands_out_a_random_leg_and_keeps_only_the_secret_hash() -> None:
    draws = Draws()
    legs = MeetingLegs(draws)
    leg = legs.join("owner", ROOM, DEFAULT_LAYERS, T0)
    assert draws.drawn[:2] == [leg.leg_id, leg.leg_secret]
    state = legs.get(leg.leg_id)
    assert state is not None
    assert state.secret_hash == secret_hash(leg.leg_secret)
    assert leg.leg_secret not in [getattr(state, name) for name in state.__slots__]
    assert legs.owns(leg.leg_id)
    assert legs.has_room(ROOM)
    assert (legs.rooms, legs.legs) == (1, 1)
    assert leg.expires == T0 + ALLOCATION_TIMEOUT_MS


def test_each_binding_draws_a_fresh_sender_unique_in_the_room() -> None:
    legs = MeetingLegs(Draws([b"\x10" * 16, b"\x11" * 32, b"\x20" * 16, b"\x21" * 32]))
    a = legs.join("a", ROOM, (), T0)
    b = legs.join("b", ROOM, (), T0)
    first = legs.bind("conn-a", a.leg_id, a.leg_secret, T0)
    second = legs.bind("conn-b", b.leg_id, b.leg_secret, T0)
    assert first.sender != second.sender
    assert first.replaced is None
    again = legs.bind("conn-a2", a.leg_id, a.leg_secret, T0 + 1)
    assert again.replaced == ("conn-a", first.sender)
    assert again.sender not in (first.sender, second.sender)
    assert legs.legs_on("conn-a") == []
    assert [leg.leg_id for leg in legs.legs_on("conn-a2")] == [a.leg_id]


def test_sender_collisions_in_a_room_are_drawn_again() -> None:
    same = (7).to_bytes(4, "big")
    legs = MeetingLegs(Draws([b"\x10" * 16, b"\x11" * 32, b"\x20" * 16, b"\x21" * 32, same, same]))
    a = legs.join("a", ROOM, (), T0)
    b = legs.join("b", ROOM, (), T0)
    assert legs.bind("ca", a.leg_id, a.leg_secret, T0).sender == 7
    assert legs.bind("cb", b.leg_id, b.leg_secret, T0).sender != 7


@pytest.mark.parametrize(
    ("leg_id", "secret", "now", "code"),
    [
        (b"\x99" * 16, None, T0, CALL_NO_LEG),
        (None, b"\x00" * 32, T0, CALL_BAD_SECRET),
        (None, None, T0 + ALLOCATION_TIMEOUT_MS, CALL_EXPIRED),
    ],
)
def test_refused_binds(leg_id: bytes | None, secret: bytes | None, now: int, code: str) -> None:
    legs = MeetingLegs(Draws())
    leg = legs.join("owner", ROOM, (), T0)
    with pytest.raises(NodeError) as refused:
        legs.bind("conn", leg_id or leg.leg_id, secret or leg.leg_secret, now)
    assert refused.value.code == code


def test_unbind_waits_for_a_rebind_then_expires_and_the_room_ends() -> None:
    legs = MeetingLegs(Draws())
    leg = legs.join("owner", ROOM, (), T0)
    bound = legs.bind("conn", leg.leg_id, leg.leg_secret, T0)
    assert legs.expire(T0 + 10 * ALLOCATION_TIMEOUT_MS) == []  # bound legs do not expire
    later = T0 + 10 * ALLOCATION_TIMEOUT_MS
    [(state, sender)] = legs.unbind("conn", later)
    assert (state.leg_id, sender, state.conn) == (leg.leg_id, bound.sender, None)
    assert legs.unbind("conn", later) == []
    assert legs.expire(later + ALLOCATION_TIMEOUT_MS - 1) == []
    [gone] = legs.expire(later + ALLOCATION_TIMEOUT_MS)
    assert gone.leg_id == leg.leg_id
    assert not legs.owns(leg.leg_id)
    assert not legs.has_room(ROOM)
    assert legs.rooms == 0


def test_leave_is_the_owners_and_reports_the_connection() -> None:
    legs = MeetingLegs(Draws())
    a = legs.join("a", ROOM, (), T0)
    b = legs.join("b", ROOM, (), T0)
    bound = legs.bind("conn-a", a.leg_id, a.leg_secret, T0)
    with pytest.raises(NodeError) as refused:
        legs.leave("b", a.leg_id)
    assert refused.value.code == CALL_NO_LEG
    left = legs.leave("a", a.leg_id)
    assert (left.conn, left.sender) == ("conn-a", bound.sender)
    assert legs.has_room(ROOM)
    legs.leave("b", b.leg_id)
    assert not legs.has_room(ROOM)


def test_a_full_room_refuses_and_rooms_are_separate() -> None:
    legs = MeetingLegs(Draws(), max_participants=2)
    legs.join("a", ROOM, (), T0)
    legs.join("b", ROOM, (), T0)
    with pytest.raises(NodeError) as refused:
        legs.join("c", ROOM, (), T0)
    assert refused.value.code == MEETING_FULL
    legs.join("c", OTHER_ROOM, (), T0)
    assert legs.rooms == 2


def test_bad_layers_are_refused() -> None:
    legs = MeetingLegs(Draws())
    with pytest.raises(ValueError, match="lowest to highest"):
        legs.join("a", ROOM, (LayerSpec(720, 1500), LayerSpec(180, 150)), T0)
    assert legs.rooms == 0
