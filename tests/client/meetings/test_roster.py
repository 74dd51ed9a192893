"""The signed participant list: what a participant checks before it trusts a roster."""

from __future__ import annotations

import dataclasses

import pytest

from client.meetings import MeetingMember, RosterError, check_roster, sign_roster, successor
from client.meetings.roster import roster_hash, seal_roster
from tests.client.meetings.kit import MID, T0, Person, verify
from wire.meeting import EpochCause, MeetingEpochKey, RosterBody, SealedRoster, SignedRoster

LEADER, ALICE, BOB = Person("leader"), Person("alice"), Person("bob")


def body(epoch: int = 1, leader: int = 0, pids: tuple[int, ...] = (0, 1, 2)) -> RosterBody:
    people = {0: LEADER, 1: ALICE, 2: BOB}
    entries = tuple(people[p].entry(p) for p in pids)
    return RosterBody(MID, epoch, leader, EpochCause.JOIN, T0, entries)


def signed(b: RosterBody, by: Person = LEADER) -> SignedRoster:
    return sign_roster(b, by.key, by)


SECRET = bytes(range(32))
NONCE = bytes(12)


def epoch_of(roster: SignedRoster) -> tuple[MeetingEpochKey, SealedRoster]:
    """The key message (with a fresh secret) and the sealed roster of ``roster``'s epoch."""
    epoch = roster.body.epoch
    key = MeetingEpochKey(MID, epoch, roster_hash(roster.body), SECRET)
    return key, seal_roster(roster, SECRET, epoch, NONCE)


def test_a_good_first_roster_is_accepted_from_its_leader() -> None:
    roster = signed(body())
    assert check_roster(roster, verify, first_leader_key=LEADER.key) == roster.body


def test_the_first_roster_must_come_from_its_leader() -> None:
    with pytest.raises(RosterError, match="from its leader"):
        check_roster(signed(body()), verify, first_leader_key=ALICE.key)
    with pytest.raises(RosterError):
        check_roster(signed(body()), verify)


def test_a_tampered_roster_does_not_verify() -> None:
    roster = signed(body())
    changed = dataclasses.replace(roster.body, participants=roster.body.participants[:2])
    tampered = SignedRoster(changed, roster.key, roster.sig)
    with pytest.raises(RosterError, match="signature"):
        check_roster(tampered, verify, first_leader_key=LEADER.key)


def test_a_roster_signed_by_someone_else_is_refused() -> None:
    roster = signed(body(), by=ALICE)  # alice signs a roster naming the leader
    with pytest.raises(RosterError, match="not its leader's"):
        check_roster(roster, verify, first_leader_key=ALICE.key)


def test_epochs_move_forward_within_one_meeting() -> None:
    first = body(epoch=3)
    with pytest.raises(RosterError, match="forward"):
        check_roster(signed(body(epoch=3)), verify, previous=first)
    other = dataclasses.replace(body(epoch=4), meeting=bytes(16))
    with pytest.raises(RosterError, match="another meeting"):
        check_roster(signed(other), verify, previous=first)
    assert check_roster(signed(body(epoch=4)), verify, previous=first).epoch == 4


def test_the_successor_is_the_earliest_joined_remaining() -> None:
    b = body()
    assert successor(b, {1, 2}) == 1
    assert successor(b, {2}) == 2
    assert successor(b, {0}) is None


def test_a_member_refuses_an_epoch_from_anyone_but_the_roster_signer() -> None:
    member = MeetingMember(MID, 1, verify)
    key, sealed = epoch_of(signed(body()))
    member.on_sealed_roster(sealed, T0)
    with pytest.raises(RosterError):
        member.on_epoch_key(key, BOB.key, T0)
    assert member.roster is None
    member.on_epoch_key(key, LEADER.key, T0)
    assert member.holds(1)


def test_a_member_refuses_a_roster_without_itself() -> None:
    member = MeetingMember(MID, 2, verify)
    key, sealed = epoch_of(signed(body(pids=(0, 1))))
    member.on_sealed_roster(sealed, T0)
    with pytest.raises(RosterError, match="without this participant"):
        member.on_epoch_key(key, LEADER.key, T0)
