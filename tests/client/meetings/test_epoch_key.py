"""An epoch's two halves (issue 18, "the leader signs the participant list"): the pairwise
``MeetingEpochKey`` (epoch, roster hash, secret) and the roster sealed once for everyone
(``SealedRoster``). Either may come first; an epoch is accepted only with both, after every
check; a forged or mismatched roster is refused and blocks nothing; a removed participant
gets neither a key nor a roster it can open."""

from __future__ import annotations

import dataclasses

import pytest

from client.content import MeetingNote, pack_meeting
from client.meetings import LEAVE_BATCH_MS, MeetingMember, RosterError, sign_roster
from client.meetings.errors import MeetingShapeError
from client.meetings.events import Note, SharedNote
from client.meetings.group import LISTEN_MS, GroupMeeting, Me
from client.meetings.keys import Out, Send, Shared
from client.meetings.membership import HOLD_MS
from client.meetings.roster import (
    open_roster,
    parse_sealed,
    roster_hash,
    seal_roster,
    sealed_body,
)
from suites.padding import BUCKETS
from tests.client.meetings.kit import MID, T0, Draws, Net, Person, epochs, verify
from wire.meeting import (
    EpochCause,
    MeetingAck,
    MeetingEpoch,
    MeetingEpochKey,
    RosterBody,
    SealedRoster,
    SignedRoster,
)

LEADER, ALICE, BOB = Person("leader"), Person("alice"), Person("bob")
SECRET = bytes(range(32))
NONCE = bytes(12)


def body(epoch: int = 1, pids: tuple[int, ...] = (0, 1, 2)) -> RosterBody:
    people = {0: LEADER, 1: ALICE, 2: BOB}
    entries = tuple(people[p].entry(p) for p in pids)
    return RosterBody(MID, epoch, 0, EpochCause.START, T0, entries)


def halves(
    roster: SignedRoster, *, secret: bytes = SECRET, named: RosterBody | None = None
) -> tuple[MeetingEpochKey, SealedRoster]:
    """The key message (naming ``named``'s hash, by default the roster's own) and the
    sealed roster of ``roster``'s epoch."""
    epoch = roster.body.epoch
    key = MeetingEpochKey(MID, epoch, roster_hash(named or roster.body), secret)
    return key, seal_roster(roster, secret, epoch, NONCE)


def acks(sends: list[Out]) -> list[int]:
    return [
        s.message.epoch for s in sends if isinstance(s, Send) and isinstance(s.message, MeetingAck)
    ]


# --- ordering --------------------------------------------------------------------------------
def test_the_key_first_then_the_roster() -> None:
    member = MeetingMember(MID, 1, verify)
    key, sealed = halves(sign_roster(body(), LEADER.key, LEADER))
    assert member.on_epoch_key(key, LEADER.key, T0) == []  # nothing to accept yet
    assert member.roster is None
    assert acks(member.on_sealed_roster(sealed, T0 + 5)) == [1]
    assert member.holds(1)
    assert member.roster == body()


def test_the_roster_first_then_the_key() -> None:
    member = MeetingMember(MID, 1, verify)
    key, sealed = halves(sign_roster(body(), LEADER.key, LEADER))
    assert member.on_sealed_roster(sealed, T0) == []  # cannot even open it yet
    assert member.roster is None
    assert acks(member.on_epoch_key(key, LEADER.key, T0 + 5)) == [1]
    assert member.holds(1)


def test_a_repeated_half_is_acknowledged_once() -> None:
    member = MeetingMember(MID, 1, verify)
    key, sealed = halves(sign_roster(body(), LEADER.key, LEADER))
    member.on_sealed_roster(sealed, T0)
    assert acks(member.on_epoch_key(key, LEADER.key, T0)) == [1]
    assert member.on_sealed_roster(sealed, T0 + 1) == []
    assert member.on_epoch_key(key, LEADER.key, T0 + 2) == []


def test_a_half_alone_is_given_up_after_a_while() -> None:
    member = MeetingMember(MID, 1, verify)
    key, sealed = halves(sign_roster(body(), LEADER.key, LEADER))
    member.on_epoch_key(key, LEADER.key, T0)
    assert member.retry(T0 + HOLD_MS) == []  # the key's time is up
    assert member.on_sealed_roster(sealed, T0 + HOLD_MS + 1) == []
    assert not member.holds(1)


def test_every_order_of_a_meetings_messages_converges() -> None:
    net = Net(4)
    net.log.clear()
    net.leader.leave(3, T0 + 100)
    net.deaf.add(3)
    sends = net.leader.tick(T0 + 100 + LEAVE_BATCH_MS)
    shared = [s for s in sends if isinstance(s, Shared)]
    assert len(shared) == 1
    assert shared[0].to == (1, 2)
    net.deliver([*sends[1:], sends[0]], T0 + 300)  # every key before the roster
    assert all(net.members[p].send_epoch == net.leader.epoch == 4 for p in (0, 1, 2))


# --- forged or mismatched rosters ------------------------------------------------------------
def test_a_roster_of_another_hash_is_refused_and_the_named_one_still_accepted() -> None:
    member = MeetingMember(MID, 1, verify)
    genuine = sign_roster(body(), LEADER.key, LEADER)
    other = sign_roster(body(pids=(0, 1)), LEADER.key, LEADER)  # the leader's, not named
    key, sealed = halves(genuine)
    _, wrong = halves(other)
    member.on_sealed_roster(wrong, T0)
    with pytest.raises(RosterError, match="names"):
        member.on_epoch_key(key, LEADER.key, T0)
    assert member.roster is None
    assert acks(member.on_sealed_roster(sealed, T0 + 1)) == [1]
    assert member.roster == genuine.body


def test_a_roster_of_another_epoch_is_refused() -> None:
    member = MeetingMember(MID, 1, verify)
    later = sign_roster(body(epoch=2), LEADER.key, LEADER)
    key = MeetingEpochKey(MID, 1, roster_hash(later.body), SECRET)
    sealed = seal_roster(later, SECRET, 1, NONCE)  # sealed under epoch 1's key
    member.on_sealed_roster(sealed, T0)
    with pytest.raises(RosterError, match="names"):
        member.on_epoch_key(key, LEADER.key, T0)
    assert not member.holds(1)
    assert not member.holds(2)


def test_a_roster_forged_by_a_holder_of_the_secret_is_refused() -> None:
    """On a join every participant holds the new secret (it ratchets): one of them can
    seal a roster of its own. Its signature is not the leader's: refused, and the leader's
    own roster, coming after, is accepted."""
    net = Net(3)
    bob = net.people[2]
    pid = net.join(Person("new"), T0 + 10)
    epoch = net.leader.epoch
    secret = vars(net.members[2])["_secrets"][epoch]
    genuine = net.rosters[epoch]
    forged_body = dataclasses.replace(genuine.body, participants=genuine.body.participants[:3])
    forged = sign_roster(forged_body, bob.key, bob)
    newcomer = MeetingMember(MID, pid, verify)
    key = MeetingEpochKey(MID, epoch, roster_hash(forged_body), secret)  # names the forgery
    newcomer.on_sealed_roster(seal_roster(forged, secret, epoch, NONCE), T0 + 20)
    with pytest.raises(RosterError):
        newcomer.on_epoch_key(key, bob.key, T0 + 20)  # over bob's own session
    assert newcomer.roster is None
    honest = MeetingEpochKey(MID, epoch, roster_hash(genuine.body), secret)
    with pytest.raises(RosterError):  # the leader's key names another roster: still waiting
        newcomer.on_epoch_key(honest, net.keys[0], T0 + 25)
    got = newcomer.on_sealed_roster(seal_roster(genuine, secret, epoch, NONCE), T0 + 30)
    assert acks(got) == [epoch]  # bob's key message did not take the leader's place
    assert newcomer.roster == genuine.body


def test_a_sealed_roster_opens_only_under_its_epochs_secret() -> None:
    roster = sign_roster(body(), LEADER.key, LEADER)
    sealed = seal_roster(roster, SECRET, 1, NONCE)
    assert open_roster(sealed, SECRET, 1) == roster
    assert open_roster(sealed, SECRET, 2) is None
    assert open_roster(sealed, bytes(32), 1) is None
    tampered = SealedRoster(sealed.nonce, sealed.c[:-1] + bytes([sealed.c[-1] ^ 1]))
    assert open_roster(tampered, SECRET, 1) is None


# --- a removed participant -------------------------------------------------------------------
def test_a_removed_participant_gets_no_key_and_cannot_open_the_roster() -> None:
    net = Net(4)
    old = vars(net.members[3])["_secrets"][net.leader.epoch]
    net.log.clear()
    net.leader.remove({3}, T0 + 100)  # 3 still listens
    net.tick(T0 + 100 + LEAVE_BATCH_MS)
    epoch = net.leader.epoch
    assert sorted(to for to, _ in epochs(net)) == [1, 2]
    (shared,) = [s for s in net.log if isinstance(s, Shared)]
    assert 3 not in shared.to
    # even a copy of the upload would not open for it: it holds no secret of this epoch
    assert open_roster(shared.message, old, epoch) is None
    assert net.members[3].on_sealed_roster(shared.message, T0 + 400) == []
    assert not net.members[3].holds(epoch)


# --- joins -----------------------------------------------------------------------------------
def test_a_join_sends_the_secret_to_the_newcomer_only_and_one_roster() -> None:
    net = Net(3)
    net.log.clear()
    pid = net.join(Person("new"), T0 + 10)
    shared = [s for s in net.log if isinstance(s, Shared)]
    assert [s.to for s in shared] == [(1, 2, pid)]
    sent = dict(epochs(net))
    assert {to: m.secret is not None for to, m in sent.items()} == {1: False, 2: False, pid: True}
    assert all(m.roster.body.cause is EpochCause.JOIN for m in sent.values())


@pytest.mark.parametrize("roster_first", [True, False])
def test_a_newcomer_finds_its_pid_whichever_half_comes_first(roster_first: bool) -> None:
    leader, newcomer = Person("ann"), Person("bob")
    world = {p.name: p for p in (leader, newcomer)}
    members = [f"{n}@a.example" for n in world]
    ann = _device(members[0], leader, members)
    bob = _device(members[1], newcomer, members, seed=1)
    invites = [e for e in ann.start(T0) + ann.tick(T0 + LISTEN_MS) if isinstance(e, Note)]
    bob.start(T0 + LISTEN_MS)
    request = [
        e
        for e in bob.receive(members[0], 1, leader.key, invites[0].signal, T0 + LISTEN_MS)
        if isinstance(e, Note)
    ]
    out = ann.receive(members[1], 1, newcomer.key, request[0].signal, T0 + LISTEN_MS + 1)
    shared = [e for e in out if isinstance(e, SharedNote)]
    keys = [e for e in out if isinstance(e, Note)]
    assert len(shared) == 1
    assert len(keys) == 1
    now = T0 + LISTEN_MS + 2
    if roster_first:
        assert bob.receive_shared(shared[0].signal, now) == []
        got = bob.receive(members[0], 1, leader.key, keys[0].signal, now)
    else:
        assert bob.receive(members[0], 1, leader.key, keys[0].signal, now) == []
        got = bob.receive_shared(shared[0].signal, now)
    assert bob.pid == 1
    assert any(isinstance(e, Note) and isinstance(e.signal, MeetingAck) for e in got)
    assert bob.ignored == 0


def _device(address: str, person: Person, members: list[str], seed: int = 0) -> GroupMeeting:
    draws = Draws()
    draws.count = seed * 1000  # its own draws, apart from another device's
    me = Me(address, 1, person.key, person, verify)
    return GroupMeeting(bytes(16), me, lambda: members, draws)


# --- the older shape, and sizes ---------------------------------------------------------------
def test_an_epoch_of_the_older_shape_is_refused_with_its_code() -> None:
    net = Net(2)
    members = ["p0@a.example", "p1@a.example"]
    device = _device(members[1], net.people[1], members)
    old = MeetingEpoch(sign_roster(body(), LEADER.key, LEADER), SECRET)
    assert device.receive("p0@a.example", 1, net.keys[0], old, T0) == []
    assert device.ignored == 1
    assert MeetingShapeError.code == "meeting.old_shape"


def test_the_pairwise_key_message_fits_the_smallest_bucket() -> None:
    key = MeetingEpochKey(MID, 7, bytes(48), SECRET)
    note = pack_meeting(MeetingNote(bytes(16), key, bytes(16), bytes(16)))
    assert len(note) < BUCKETS[0] // 2  # the session's own header comes on top
    assert "secret" not in repr(key)
    assert SECRET.hex() not in repr(key)


def test_the_sealed_roster_travels_as_a_padded_body_and_only_it_parses() -> None:
    roster = sign_roster(body(), LEADER.key, LEADER)
    sealed = seal_roster(roster, SECRET, 1, NONCE)
    upload = sealed_body(sealed)
    assert len(upload) in BUCKETS
    assert parse_sealed(upload) == sealed
    assert parse_sealed(upload[:-1]) is None
    assert parse_sealed(pack_meeting(MeetingNote(bytes(16), sealed, None, None))) is None


def test_the_leader_wakes_for_its_batch_and_its_switch() -> None:
    net = Net(3)
    net.no_ack.add(2)
    net.leader.leave(1, T0 + 100)
    assert net.leader.next_deadline() == T0 + 100 + LEAVE_BATCH_MS
    net.tick(T0 + 100 + LEAVE_BATCH_MS)
    deadline = net.leader.next_deadline()
    assert deadline is not None
    assert deadline <= T0 + 100 + LEAVE_BATCH_MS + 1000
