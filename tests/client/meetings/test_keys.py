"""The meeting key schedule: epochs, ratchet on join, fresh secrets on leave (batched) and
rotation, switches after acks or 1 s, and the leader's hand-over (issue 18)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from client.meetings import (
    LEAVE_BATCH_MS,
    ROTATE_INTERVAL_MS,
    SWITCH_TIMEOUT_MS,
    MeetingKeyError,
    MeetingLeader,
    RosterError,
    kid,
    kid_parts,
    ratchet,
    sender_base_key,
)
from client.meetings.keys import EPOCH_GRACE_MS, Shared
from tests.client.meetings.kit import MID, T0, Epoch, Net, Person, epochs, verify
from wire.meeting import EpochCause, MeetingEpochKey, MeetingLeave, MeetingSwitch


def secret_of(net: Net, pid: int, epoch: int) -> bytes:
    return vars(net.members[pid])["_secrets"][epoch]


def epochs_sent(net: Net) -> list[tuple[int, Epoch]]:
    return epochs(net)


def test_a_leader_alone_sends_under_epoch_zero() -> None:
    net = Net(1)
    assert net.leader.epoch == 0
    assert net.leader.member.send_epoch == 0
    assert net.log == []


def test_a_join_ratchets_and_only_the_newcomer_gets_the_secret() -> None:
    net = Net(3)
    before = secret_of(net, 0, 2)
    net.log.clear()
    pid = net.join(Person("new"), T0 + 10)
    sent = epochs_sent(net)
    assert sorted(to for to, _ in sent) == [1, 2, pid]
    for to, msg in sent:
        assert msg.roster.body.cause is EpochCause.JOIN
        assert (msg.secret is not None) == (to == pid)
    new = ratchet(before, MID)
    for member in (0, 1, 2, pid):
        assert secret_of(net, member, 3) == new
    assert not net.members[pid].holds(2)  # the newcomer cannot read what came before
    assert all(m.send_epoch == 3 for m in net.members.values())


def test_the_switch_waits_for_every_ack_or_one_second() -> None:
    net = Net(3)
    net.no_ack.add(2)
    net.join(Person("new"), T0 + 10)
    assert net.members[1].send_epoch == 2  # 2 did not ack: no switch yet
    net.tick(T0 + 10 + SWITCH_TIMEOUT_MS - 1)
    assert net.members[1].send_epoch == 2
    net.tick(T0 + 10 + SWITCH_TIMEOUT_MS)
    assert all(m.send_epoch == 3 for m in net.members.values())


def test_joins_in_a_row_do_not_put_the_switch_off() -> None:
    net = Net(2)
    net.no_ack.add(1)
    now = T0
    for i in range(8):
        now += 200
        net.join(Person(f"n{i}"), now)
        net.tick(now)
    assert net.members[1].send_epoch is not None
    assert net.members[1].send_epoch >= net.leader.epoch - 5


def test_leaves_within_the_batch_make_one_fresh_epoch() -> None:
    net = Net(5)
    old = secret_of(net, 0, 4)
    net.log.clear()
    net.deaf |= {3, 4}
    net.leader.leave(3, T0 + 100)
    net.leader.leave(4, T0 + 100 + LEAVE_BATCH_MS - 50)
    net.tick(T0 + 100 + LEAVE_BATCH_MS - 1)
    assert epochs_sent(net) == []
    net.tick(T0 + 100 + LEAVE_BATCH_MS)
    sent = epochs_sent(net)
    assert sorted(to for to, _ in sent) == [1, 2]
    assert {m.roster.body.epoch for _, m in sent} == {5}
    assert all(m.roster.body.cause is EpochCause.LEAVE for _, m in sent)
    fresh = secret_of(net, 1, 5)
    assert fresh not in (old, ratchet(old, MID))
    assert [p.pid for p in net.leader.participants] == [0, 1, 2]
    for gone in (3, 4):
        assert not net.members[gone].holds(5)
    assert net.members[1].send_epoch == 5


def test_a_join_during_a_leave_batch_gets_the_fresh_epoch() -> None:
    net = Net(3)
    net.deaf.add(2)
    net.leader.leave(2, T0 + 1)
    pid = net.join(Person("new"), T0 + 50)
    assert not net.members[pid].holds(2)
    net.tick(T0 + 1 + LEAVE_BATCH_MS)
    assert net.members[pid].holds(3)
    assert secret_of(net, pid, 3) == secret_of(net, 1, 3)


def test_rotation_every_five_minutes() -> None:
    net = Net(2)
    net.tick(T0 + ROTATE_INTERVAL_MS - 1)
    assert net.leader.epoch == 1
    net.tick(T0 + ROTATE_INTERVAL_MS)
    assert net.leader.epoch == 2
    roster = net.leader.member.roster
    assert roster is not None
    assert roster.cause is EpochCause.ROTATE
    assert secret_of(net, 1, 2) not in (secret_of(net, 1, 1), ratchet(secret_of(net, 1, 1), MID))


def test_joins_do_not_put_the_rotation_off() -> None:
    net = Net(2)
    now = T0
    for i in range(6):
        now += ROTATE_INTERVAL_MS // 5
        net.join(Person(f"j{i}"), now)
        net.tick(now)
    causes = [m.roster.body.cause for _, m in epochs_sent(net)]
    assert EpochCause.ROTATE in causes


def test_a_burst_of_epochs_never_takes_the_send_key() -> None:
    net = Net(2)
    net.no_ack.add(1)
    member = net.members[1]
    for i in range(20):
        net.join(Person(f"b{i}"), T0 + i)  # no switch: the member keeps sending under 1
    assert member.send_epoch == 1
    assert member.send_key()[0] == kid(1, 1)


def test_old_epochs_are_forgotten_after_the_grace() -> None:
    net = Net(2)
    net.tick(T0 + ROTATE_INTERVAL_MS)
    member = net.members[1]
    assert member.holds(1)
    net.tick(T0 + ROTATE_INTERVAL_MS + EPOCH_GRACE_MS)
    assert not member.holds(1)
    assert member.holds(2)


def test_sender_keys_differ_by_sender_and_epoch() -> None:
    secret = bytes(32)
    keys = {sender_base_key(secret, e, p) for e in range(3) for p in range(3)}
    assert len(keys) == 9
    assert all(len(k) == 64 for k in keys)
    assert kid_parts(kid(7, 0xFFFF_FFFF)) == (7, 0xFFFF_FFFF)
    with pytest.raises(MeetingKeyError):
        kid(-1, 0)
    with pytest.raises(MeetingKeyError):
        ratchet(b"short", MID)


def test_the_successor_takes_over_with_a_fresh_epoch() -> None:
    net = Net(4)
    old_secret = secret_of(net, 1, 3)
    net.deaf.add(0)
    present = {1, 2, 3}
    for pid in present:
        net.members[pid].note_left(0)
    heir = net.people[1]
    leader = MeetingLeader.succeed(
        net.members[1], heir.key, heir, net.random, T0 + 5, present=present
    )
    net.leader = leader
    net.deliver(leader.sends(), T0 + 5)
    for pid in (1, 2, 3):
        roster = net.members[pid].roster
        assert roster is not None
        assert roster.leader == 1
        assert roster.cause is EpochCause.HANDOVER
        assert net.members[pid].send_epoch == 4
    assert secret_of(net, 2, 4) != old_secret
    assert not net.members[0].holds(4)


def test_a_departing_leader_hands_over_to_the_earliest_joined() -> None:
    net = Net(4)
    takes_over = []
    for send in net.leader.depart():
        assert isinstance(send.message, MeetingLeave)
        if net.members[send.to].on_leave(send.message):
            takes_over.append(send.to)
    assert takes_over == [1]
    member = net.members[1]
    assert member.present() == {1, 2, 3}
    heir = net.people[1]
    leader = MeetingLeader.succeed(member, heir.key, heir, net.random, T0, present=member.present())
    net.leader = leader
    net.deaf.add(0)
    net.deliver(leader.sends(), T0)
    assert all(net.members[p].send_epoch == 4 for p in (1, 2, 3))
    assert not net.members[2].should_lead()


def test_a_leave_message_counts_only_from_its_own_participant() -> None:
    net = Net(3)
    assert net.leader.on_leave(1, MeetingLeave(MID, 2), T0) == []  # 1 cannot remove 2
    assert [p.pid for p in net.leader.participants] == [0, 1, 2]
    net.leader.on_leave(2, MeetingLeave(MID, 2), T0)
    assert [p.pid for p in net.leader.participants] == [0, 1]


def test_only_the_rightful_successor_may_take_over() -> None:
    net = Net(4)
    with pytest.raises(RosterError):
        MeetingLeader.succeed(
            net.members[2], net.people[2].key, net.people[2], net.random, T0, present={1, 2, 3}
        )
    # a participant that forges a hand-over anyway is refused by the others
    usurper = net.people[2]
    fake = MeetingLeader(
        MID, usurper.entry(2), usurper.key, usurper, verify, net.random, T0,
        participants=(net.people[2].entry(2), net.people[3].entry(3)),
        epoch=9, cause=EpochCause.HANDOVER,
    )  # fmt: skip
    sends = fake.sends()
    sealed = next(s.message for s in sends if isinstance(s, Shared) and 3 in s.to)
    msg = next(s.message for s in sends if s.to == 3)
    assert isinstance(msg, MeetingEpochKey)
    net.members[3].note_left(0)  # the leader went, but 1 is still here
    assert net.members[3].on_sealed_roster(sealed, T0) == []  # its key has not come
    with pytest.raises(RosterError, match="successor"):
        net.members[3].on_epoch_key(msg, usurper.key, T0)
    net.members[3].note_left(1)  # had 1 gone too, 2 would be the rightful successor
    assert net.members[3].retry(T0)
    assert net.members[3].holds(9)


def test_a_switch_before_its_epoch_is_applied_when_the_epoch_comes() -> None:
    net = Net(2)
    member = net.members[1]
    member.on_switch(MeetingSwitch(MID, 2), T0)
    assert member.send_epoch == 1
    net.leader.leave(5, T0)  # nobody: no batch
    net.tick(T0 + ROTATE_INTERVAL_MS)  # epoch 2 arrives and is acked
    assert member.send_epoch == 2


@settings(max_examples=25, deadline=None)
@given(st.lists(st.sampled_from(["join", "leave", "tick", "rotate"]), max_size=14))
def test_every_present_member_converges_and_leavers_are_cut_off(script: list[str]) -> None:
    net = Net(2)
    now, gone = T0, set()
    for i, op in enumerate(script):
        now += 150
        present = [p.pid for p in net.leader.participants if p.pid != 0]
        if op == "join":
            net.join(Person(f"j{i}"), now)
        elif op == "leave" and present:
            pid = present[-1]
            net.deaf.add(pid)
            gone.add(pid)
            net.leader.leave(pid, now)
        elif op == "rotate":
            now += ROTATE_INTERVAL_MS
        net.tick(now)
    for _ in range(2):  # the batch, then the switch
        now += LEAVE_BATCH_MS + SWITCH_TIMEOUT_MS
        net.tick(now)
    epoch = net.leader.epoch
    secret = secret_of(net, 0, epoch)
    for p in net.leader.participants:
        assert secret_of(net, p.pid, epoch) == secret
        assert net.members[p.pid].send_epoch == epoch
    for pid in gone:
        assert not net.members[pid].holds(epoch)
