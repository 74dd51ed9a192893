"""The meeting of a group seen from each device (``client.meetings.group``): host or join,
the key schedule's messages over simulated pairwise sessions, hand-over, glare, timeouts."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Final, TypeVar

from client.content import MeetingInvite, MeetingRequest
from client.meetings.group import (
    INVITE_TTL_MS,
    LISTEN_MS,
    REQUEST_TIMEOUT_MS,
    EnterRoom,
    Event,
    GroupMeeting,
    Leading,
    LeaveRoom,
    Me,
    Note,
    Phase,
    Roster,
    SharedNote,
)
from tests.client.meetings.kit import T0, Draws, Person, verify
from wire.meeting import MeetingLeave

GROUP: Final = bytes(16)


def phase(device: GroupMeeting) -> Phase:
    """The device's phase (a call, so that type narrowing does not outlive a step)."""
    return device.phase


E = TypeVar("E")


class World:
    """Devices of one group; notes are delivered in order, each over the sender's session."""

    def __init__(self, names: list[str]) -> None:
        self.people = {
            n if "@" in n else f"{n}@a.example": Person(n.partition("@")[0]) for n in names
        }
        self.random = Draws()
        self.views = {address: set(self.people) for address in self.people}
        """Each device's copy of the group's member list."""
        self.devices = {
            address: GroupMeeting(
                GROUP, Me(address, 1, p.key, p, verify), self._view(address), self.random
            )
            for address, p in self.people.items()
        }
        self.events: dict[str, list[Event]] = {a: [] for a in self.people}
        self.queue: deque[tuple[str, Note | SharedNote]] = deque()
        self.offline: set[str] = set()

    def _view(self, address: str) -> Callable[[], list[str]]:
        return lambda: sorted(self.views[address])

    def take(self, sender: str, events: list[Event]) -> None:
        for event in events:
            self.events[sender].append(event)
            if isinstance(event, Note | SharedNote):
                self.queue.append((sender, event))

    def run(self, now: int) -> None:
        while self.queue:
            sender, note = self.queue.popleft()
            if isinstance(note, SharedNote):  # one upload, each recipient gets it
                for to in note.to:
                    if to not in self.offline:
                        self.take(to, self.devices[to].receive_shared(note.signal, now))
                continue
            if note.to in self.offline:
                continue
            device = self.devices[note.to]
            key = self.people[sender].key
            self.take(note.to, device.receive(sender, 1, key, note.signal, now))

    def start(self, address: str, now: int) -> None:
        self.take(address, self.devices[address].start(now))
        self.run(now)

    def host(self, address: str, now: int) -> None:
        """``address`` starts and, hearing of no meeting, hosts."""
        self.start(address, now)
        self.take(address, self.devices[address].tick(now + LISTEN_MS))
        self.run(now + LISTEN_MS)

    def tick(self, now: int) -> None:
        for address, device in self.devices.items():
            if address not in self.offline:
                self.take(address, device.tick(now))
        self.run(now)

    def of(self, address: str, kind: type[E]) -> list[E]:
        return [e for e in self.events[address] if isinstance(e, kind)]

    def invites(self, address: str) -> list[Note]:
        return [e for e in self.of(address, Note) if isinstance(e.signal, MeetingInvite)]


NAMES: Final = ["ann", "bob", "cat", "dan"]


def _everyone_in(world: World) -> None:
    world.host("ann@a.example", T0)
    for i, address in enumerate(list(world.people)[1:], 1):
        world.start(address, T0 + LISTEN_MS + 10 * i)
    world.tick(T0 + LISTEN_MS + 1500)  # the switch after the last join, at the latest


def test_first_hosts_the_others_join_one_meeting() -> None:
    world = World(NAMES)
    _everyone_in(world)
    host = world.devices["ann@a.example"]
    assert host.leader is not None
    assert host.pid == 0
    meetings = {d.meeting for d in world.devices.values()}
    assert len(meetings) == 1
    assert None not in meetings
    for address, device in world.devices.items():
        assert device.phase is Phase.IN
        assert sorted(device.participants.values()) == sorted(world.people)
        assert device.most_participants == len(NAMES)
        assert device.epochs
        assert device.ignored == 0
        enters = world.of(address, EnterRoom)
        assert len(enters) == 1
        assert enters[0].room == host.room
    assert len(world.invites("ann@a.example")) == len(NAMES) - 1
    # every device sends under the same, newest epoch once switched
    sends = {d.member.send_epoch for d in world.devices.values() if d.member}
    assert sends == {host.leader.epoch}


def test_a_newcomer_enters_the_room_only_after_the_switch() -> None:
    world = World(NAMES[:2])
    world.host("ann@a.example", T0)
    bob = world.devices["bob@a.example"]
    world.take("bob@a.example", bob.start(T0 + LISTEN_MS + 5))
    world.run(T0 + LISTEN_MS + 5)  # request -> epoch -> ack -> switch: delivered at once
    assert bob.member is not None
    assert bob.member.send_epoch is not None
    assert world.of("bob@a.example", EnterRoom)
    roster = world.of("bob@a.example", Roster)
    assert roster
    assert {a for _, a in roster[0].joined} == set(world.people)


def test_a_member_leaves_and_the_leader_moves_to_a_fresh_epoch() -> None:
    world = World(NAMES[:3])
    _everyone_in(world)
    host = world.devices["ann@a.example"]
    assert host.leader is not None
    before = host.leader.epoch
    world.take("cat@a.example", world.devices["cat@a.example"].leave(T0 + 2000))
    world.offline.add("cat@a.example")
    world.run(T0 + 2000)
    world.tick(T0 + 2300)  # the leave batch
    world.tick(T0 + 3400)  # the switch timeout at the latest
    assert host.leader.epoch == before + 1
    for address in ("ann@a.example", "bob@a.example"):
        device = world.devices[address]
        assert "cat@a.example" not in device.participants.values()
        assert device.member is not None
        assert device.member.send_epoch == before + 1
    assert world.of("cat@a.example", LeaveRoom)


def test_the_host_leaves_and_the_earliest_joined_takes_over_and_invites() -> None:
    world = World(NAMES[:3])
    _everyone_in(world)
    world.take("ann@a.example", world.devices["ann@a.example"].leave(T0 + 2000))
    world.offline.add("ann@a.example")
    world.run(T0 + 2000)
    world.tick(T0 + 3500)
    bob, cat = world.devices["bob@a.example"], world.devices["cat@a.example"]
    assert world.of("bob@a.example", Leading)
    assert bob.leader is not None
    assert cat.leader is None
    assert set(cat.participants.values()) == {"bob@a.example", "cat@a.example"}
    assert cat.member is not None
    assert cat.member.send_epoch == bob.leader.epoch
    assert world.invites("bob@a.example")


def test_a_successor_of_another_domain_keeps_the_room_at_the_anchor() -> None:
    """The room stays on the first host's node (the cascade's anchor): a key leader of
    another domain that took over invites with the anchor, not with its own domain."""
    world = World(["ann", "bob@b.example", "cat@b.example", "dan"])
    world.host("ann@a.example", T0)
    world.start("bob@b.example", T0 + LISTEN_MS + 10)
    world.tick(T0 + LISTEN_MS + 1500)
    assert [e.anchor for e in world.of("bob@b.example", EnterRoom)] == ["a.example"]
    assert {n.signal.anchor for n in world.invites("ann@a.example")} == {"a.example"}
    world.take("ann@a.example", world.devices["ann@a.example"].leave(T0 + 3000))
    world.offline.add("ann@a.example")
    world.run(T0 + 3000)
    world.tick(T0 + 4500)
    bob = world.devices["bob@b.example"]
    assert bob.leader is not None
    renewed = world.invites("bob@b.example")
    assert renewed
    assert {n.signal.anchor for n in renewed} == {"a.example"}
    world.start("cat@b.example", T0 + 5000)
    world.start("dan@a.example", T0 + 5010)
    world.tick(T0 + 6600)
    assert [e.anchor for e in world.of("cat@b.example", EnterRoom)] == ["a.example"]
    assert [e.anchor for e in world.of("dan@a.example", EnterRoom)] == [""]  # its own node
    rooms = {e.room for a in world.people for e in world.of(a, EnterRoom)}
    assert len(rooms) == 1


def test_glare_two_hosts_end_in_the_meeting_with_the_smaller_id() -> None:
    world = World(NAMES[:3])
    ann, bob = world.devices["ann@a.example"], world.devices["bob@a.example"]
    world.take("ann@a.example", ann.start(T0))
    world.take("bob@a.example", bob.start(T0))
    world.take("ann@a.example", ann.tick(T0 + LISTEN_MS))
    world.take("bob@a.example", bob.tick(T0 + LISTEN_MS))  # both host, no invite arrived
    assert ann.meeting != bob.meeting
    world.run(T0 + LISTEN_MS)
    world.start("cat@a.example", T0 + LISTEN_MS + 2)
    world.tick(T0 + LISTEN_MS + 1500)
    meetings = {d.meeting for d in world.devices.values()}
    assert len(meetings) == 1
    assert meetings.pop() == min(m for m in (ann.meeting, bob.meeting) if m)
    for device in world.devices.values():
        assert len(device.participants) == 3


def test_strangers_and_forged_invites_are_ignored() -> None:
    world = World(NAMES[:2])
    bob = world.devices["bob@a.example"]
    mallory = Person("mallory")
    invite = MeetingInvite(bytes(16), bytes(16), mallory.fp, T0, T0 + INVITE_TTL_MS, "a.example")
    assert bob.receive("mallory@a.example", 1, mallory.key, invite, T0) == []
    ann = world.people["ann@a.example"]
    assert bob.receive("ann@a.example", 1, ann.key, invite, T0) == []  # not ann's key
    assert bob.receive("ann@a.example", 1, ann.key, MeetingRequest(bytes(16)), T0) == []
    assert bob.ignored == 3
    world.host("bob@a.example", T0)
    assert bob.leader is not None  # no live invite: it hosts


def test_an_unanswered_request_gives_up_and_hosts() -> None:
    world = World(NAMES[:2])
    world.host("ann@a.example", T0)
    world.offline.add("ann@a.example")  # the host went without a word
    bob = world.devices["bob@a.example"]
    t1 = T0 + LISTEN_MS + 10
    world.take("bob@a.example", bob.start(t1))
    assert phase(bob) is Phase.REQUESTED
    assert bob.next_deadline() == t1 + REQUEST_TIMEOUT_MS
    world.take("bob@a.example", bob.tick(t1 + REQUEST_TIMEOUT_MS))  # listened long enough
    assert bob.leader is not None
    assert phase(bob) is Phase.IN


def test_an_invite_during_the_listening_window_is_taken() -> None:
    world = World(NAMES[:2])
    bob = world.devices["bob@a.example"]
    world.start("bob@a.example", T0)
    assert phase(bob) is Phase.IDLE
    assert bob.next_deadline() == T0 + LISTEN_MS
    world.host("ann@a.example", T0 + 10)  # ann's invite reaches bob while it listens
    assert bob.meeting == world.devices["ann@a.example"].meeting
    assert bob.leader is None
    assert phase(bob) is Phase.IN


def test_a_requester_whose_host_left_looks_again() -> None:
    world = World(NAMES[:2])
    world.host("ann@a.example", T0)
    ann, bob = world.devices["ann@a.example"], world.devices["bob@a.example"]
    meeting = ann.meeting
    assert meeting is not None
    world.offline.add("ann@a.example")
    t1 = T0 + LISTEN_MS + 100
    world.take("bob@a.example", bob.start(t1))  # asks ann, who does not hear it
    assert phase(bob) is Phase.REQUESTED
    key = world.people["ann@a.example"].key
    world.take("bob@a.example", bob.receive("ann@a.example", 1, key, MeetingLeave(meeting, 0), t1))
    assert phase(bob) is Phase.IDLE  # the invite is withdrawn: it listens, then hosts
    world.take("bob@a.example", bob.tick(t1 + LISTEN_MS))
    assert bob.leader is not None
    assert bob.meeting != meeting
