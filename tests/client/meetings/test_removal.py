"""A member removed from the group is removed from its running meeting (issue 18: "leave: a
new epoch secret; leaves within 200 ms are batched; senders switch once all have
acknowledged or after 1 s; a removed participant cannot decrypt anything after the
switch"): the key schedule (``client.meetings.keys``) and each device's view
(``client.meetings.group``, ``client.meetings.membership``), over simulated pairwise
sessions. A removed leader is handed over from like a leader that left."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from client.meetings import LEAVE_BATCH_MS, ROTATE_INTERVAL_MS, SWITCH_TIMEOUT_MS, MeetingCrypto
from client.meetings.group import Leading, Roster
from client.meetings.membership import HOLD_MS, removed
from suites.sframe import UnknownKidError
from tests.client.meetings.kit import T0, Epoch, Net, Person, epochs, receivers
from tests.client.meetings.test_group import NAMES, World, _everyone_in
from wire.meeting import EpochCause, MeetingSwitch

ANN, BOB, CAT, DAN = (f"{n}@a.example" for n in NAMES)
METADATA = b"frame header"


def _epochs(net: Net) -> list[tuple[int, Epoch]]:
    return epochs(net)


# --- the key schedule ------------------------------------------------------------------------
def test_a_removal_is_batched_with_a_leave_into_one_epoch_for_the_others_only() -> None:
    net = Net(5)
    net.log.clear()
    net.deaf.add(3)  # 3 left; 4 is removed but still listens
    net.leader.leave(3, T0 + 100)
    assert net.leader.remove({4}, T0 + 100 + LEAVE_BATCH_MS - 50) == []
    net.tick(T0 + 100 + LEAVE_BATCH_MS - 1)
    assert _epochs(net) == []
    net.tick(T0 + 100 + LEAVE_BATCH_MS)
    sent = _epochs(net)
    assert sorted(to for to, _ in sent) == [1, 2]
    assert {m.roster.body.epoch for _, m in sent} == {5}
    assert {m.roster.body.cause for _, m in sent} == {EpochCause.REMOVE}
    assert [p.pid for p in net.leader.participants] == [0, 1, 2]
    switches = [s.to for s in net.log if isinstance(s.message, MeetingSwitch)]
    assert sorted(switches) == [1, 2]  # every ack came: the switch at once, not to 4
    assert not net.members[4].holds(5)
    assert net.members[4].send_epoch == 4
    assert all(net.members[p].send_epoch == 5 for p in (0, 1, 2))


def test_a_batch_of_leaves_alone_keeps_the_leave_cause() -> None:
    net = Net(3)
    net.deaf.add(2)
    net.leader.leave(2, T0)
    net.tick(T0 + LEAVE_BATCH_MS)
    roster = net.leader.member.roster
    assert roster is not None
    assert roster.cause is EpochCause.LEAVE
    net.leader.remove({1}, T0 + 1000)
    net.leader.remove({1}, T0 + 1001)  # again: already out
    net.tick(T0 + 1000 + LEAVE_BATCH_MS)
    roster = net.leader.member.roster
    assert roster is not None
    assert (roster.cause, roster.epoch) == (EpochCause.REMOVE, 4)


def test_the_switch_after_a_removal_waits_for_acks_or_one_second() -> None:
    net = Net(4)
    net.no_ack.add(2)
    net.leader.remove({3}, T0)
    net.tick(T0 + LEAVE_BATCH_MS)
    assert net.members[1].send_epoch == 3  # 2 has not acknowledged
    net.tick(T0 + LEAVE_BATCH_MS + SWITCH_TIMEOUT_MS)
    assert all(net.members[p].send_epoch == 4 for p in (0, 1, 2))
    assert net.members[3].send_epoch == 3


def test_a_removed_participant_decrypts_nothing_after_the_switch() -> None:
    net = Net(4)
    cryptos = {pid: MeetingCrypto(member) for pid, member in net.members.items()}
    before = cryptos[1].protect(METADATA, b"before the removal")
    assert cryptos[3].unprotect(before, METADATA)[2] == b"before the removal"
    net.leader.remove({3}, T0)
    net.tick(T0 + LEAVE_BATCH_MS)
    for pid in (0, 1, 2):
        frame = cryptos[pid].protect(METADATA, b"after the switch")
        with pytest.raises(UnknownKidError):
            cryptos[3].unprotect(frame, METADATA)
        for other in {0, 1, 2} - {pid}:
            assert cryptos[other].unprotect(frame, METADATA)[2] == b"after the switch"
    # and what it goes on sending under the old epoch is heard by nobody
    late = cryptos[3].protect(METADATA, b"from the removed one")
    for pid in (0, 1, 2):
        with pytest.raises(UnknownKidError):
            cryptos[pid].unprotect(late, METADATA)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.sampled_from(["join", "leave", "remove", "tick", "rotate"]), max_size=14))
def test_a_removed_participant_that_still_listens_is_sent_nothing_more(script: list[str]) -> None:
    net = Net(3)
    now, removed_at = T0, {}
    for i, op in enumerate(script):
        now += 150
        present = [p.pid for p in net.leader.participants if p.pid != 0]
        if op == "join":
            net.join(Person(f"j{i}"), now)
        elif op == "leave" and present:
            net.deaf.add(present[-1])
            net.leader.leave(present[-1], now)
        elif op == "remove" and present:
            removed_at[present[0]] = len(net.log)  # it goes on listening
            net.leader.remove({present[0]}, now)
        elif op == "rotate":
            now += ROTATE_INTERVAL_MS
        net.tick(now)
    for _ in range(2):  # the batch, then the switch
        now += LEAVE_BATCH_MS + SWITCH_TIMEOUT_MS
        net.tick(now)
    epoch = net.leader.epoch
    for p in net.leader.participants:
        assert net.members[p.pid].send_epoch == epoch
    for pid, sent in removed_at.items():
        assert all(pid not in receivers(s) for s in net.log[sent:])
        assert not net.members[pid].holds(epoch)


def test_removed_names_participants_no_longer_members_by_a_members_view() -> None:
    net = Net(3)
    entries = net.leader.participants
    addresses = [p.address for p in entries]
    assert removed(entries, addresses, addresses[0], frozenset()) == set()
    assert removed(entries, addresses[:2], addresses[0], frozenset()) == {2}
    assert removed(entries, addresses[:1], addresses[0], frozenset({1})) == {2}
    assert removed(entries, addresses[1:], addresses[0], frozenset()) == set()  # not a member


# --- each device's view ----------------------------------------------------------------------
def _remove(world: World, address: str, at: list[str]) -> None:
    for member in at:
        world.views[member].discard(address)


def test_the_leader_drops_a_removed_member_which_then_holds_no_new_epoch() -> None:
    world = World(NAMES)
    _everyone_in(world)
    ann, dan = world.devices[ANN], world.devices[DAN]
    assert ann.leader is not None
    before = ann.leader.epoch
    _remove(world, DAN, at=[ANN, BOB, CAT])  # dan's own copy is not told
    t = T0 + 5000
    world.tick(t)
    assert ann.leader.epoch == before  # batched
    world.tick(t + LEAVE_BATCH_MS)
    assert ann.leader.epoch == before + 1
    roster = ann.member.roster if ann.member else None
    assert roster is not None
    assert roster.cause is EpochCause.REMOVE
    for address in (ANN, BOB, CAT):
        device = world.devices[address]
        assert device.member is not None
        assert device.member.send_epoch == before + 1
        assert DAN not in device.participants.values()
        assert any(DAN in dict(e.left).values() for e in world.of(address, Roster))
    assert dan.member is not None
    assert not dan.member.holds(before + 1)
    # dan keeps talking: nobody takes its signals (not a member), it stays out
    dan_key = world.people[DAN].key
    ignored = ann.ignored
    signal = MeetingSwitch(ann.meeting or b"", before + 1)
    assert ann.receive(DAN, 1, dan_key, signal, t + 2000) == []
    assert ann.ignored == ignored + 1


def test_a_removed_leader_is_handed_over_from() -> None:
    world = World(NAMES)
    _everyone_in(world)
    ann, bob, cat, dan = (world.devices[a] for a in (ANN, BOB, CAT, DAN))
    assert ann.leader is not None
    before = ann.leader.epoch
    _remove(world, ANN, at=[BOB, CAT, DAN])
    world.tick(T0 + 5000)
    world.tick(T0 + 5000 + SWITCH_TIMEOUT_MS)
    assert world.of(BOB, Leading)
    assert bob.leader is not None
    epoch = bob.leader.epoch
    assert epoch > before
    for device in (bob, cat, dan):
        assert device.member is not None
        assert device.member.send_epoch == epoch
        assert ANN not in device.participants.values()
        roster = device.member.roster
        assert roster is not None
        assert (roster.leader, roster.cause) == (1, EpochCause.HANDOVER)
    assert ann.member is not None
    assert not ann.member.holds(epoch)


def test_a_hand_over_that_comes_before_the_removal_is_held_until_it_does() -> None:
    world = World(NAMES)
    _everyone_in(world)
    bob, dan = world.devices[BOB], world.devices[DAN]
    _remove(world, ANN, at=[BOB, CAT])  # dan's copy of the group hears of it later
    t = T0 + 5000
    world.tick(t)
    assert bob.leader is not None
    assert dan.member is not None
    assert dan.member.send_epoch != bob.leader.epoch  # not acceptable yet: held
    assert dan.ignored == 1
    _remove(world, ANN, at=[DAN])
    world.tick(t + 100)
    world.tick(t + 100 + SWITCH_TIMEOUT_MS)
    assert dan.member.send_epoch == bob.leader.epoch
    assert ANN not in dan.participants.values()


def test_a_held_epoch_is_given_up_after_a_while() -> None:
    world = World(NAMES)
    _everyone_in(world)
    bob, dan = world.devices[BOB], world.devices[DAN]
    _remove(world, ANN, at=[BOB, CAT])
    world.tick(T0 + 5000)
    world.tick(T0 + 5000 + HOLD_MS)
    _remove(world, ANN, at=[DAN])  # too late for the held epoch
    world.tick(T0 + 5000 + HOLD_MS + 100)
    assert bob.leader is not None
    assert dan.member is not None
    assert not dan.member.holds(bob.leader.epoch)
    roster = dan.member.roster
    assert roster is not None
    assert roster.leader == 0
