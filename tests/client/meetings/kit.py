"""Shared pieces of the meeting cores' tests: people with identity signing keys, injected
randomness, and a "network" that carries the key leader's messages: pairwise ones, and the
roster sealed once for many (``Shared``)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Final

from client.meetings import MeetingLeader, MeetingMember, Send, key_fingerprint
from client.meetings.keys import Out, Shared
from client.meetings.roster import open_roster
from suites import get_suite
from suites.sig import SigPrivateKey
from wire.meeting import (
    MeetingAck,
    MeetingEpochKey,
    MeetingSwitch,
    RosterEntry,
    SealedRoster,
    SignedRoster,
)

T0: Final = 1_700_000_000_000
MID: Final = bytes(range(16))
SUITE: Final = get_suite("xwing")
verify = SUITE.sig.verify


@dataclass(eq=False)
class Person:
    """An identity signing key, as ``client.identity.Identity`` holds one."""

    name: str
    sk: SigPrivateKey = field(init=False)
    key: bytes = field(init=False)

    def __post_init__(self) -> None:
        self.sk, self.key = SUITE.sig.generate()

    def sign(self, message: bytes, context: bytes) -> bytes:
        return SUITE.sig.sign(self.sk, message, context)

    @property
    def fp(self) -> bytes:
        return key_fingerprint(self.key)

    def entry(self, pid: int) -> RosterEntry:
        return RosterEntry(pid, f"{self.name}@a.example", 1, self.fp)


class Draws:
    """Injected randomness: distinct, reproducible bytes."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, n: int) -> bytes:
        self.count += 1
        out = b""
        while len(out) < n:
            seed = self.count.to_bytes(8, "big") + len(out).to_bytes(4, "big")
            out += hashlib.sha256(seed).digest()
        return out[:n]


@dataclass(frozen=True)
class Epoch:
    """A key message and the roster it names (opened from its sealed upload)."""

    key: MeetingEpochKey
    roster: SignedRoster

    @property
    def secret(self) -> bytes | None:
        return self.key.secret


def receivers(send: Out) -> tuple[int, ...]:
    """Who a send goes to: one participant, or every one of a shared upload."""
    return send.to if isinstance(send, Shared) else (send.to,)


def open_sealed(member: MeetingMember, sealed: SealedRoster) -> SignedRoster | None:
    """``sealed`` opened with an epoch secret ``member`` holds (the leader's), if one opens it."""
    for epoch, secret in vars(member)["_secrets"].items():
        roster = open_roster(sealed, secret, epoch)
        if roster is not None:
            return roster
    return None


def epochs(net: Net) -> list[tuple[int, Epoch]]:
    """Every key message delivered (or meant for a deaf one), with its roster."""
    return [
        (s.to, Epoch(s.message, net.rosters[s.message.epoch]))
        for s in net.log
        if isinstance(s, Send) and isinstance(s.message, MeetingEpochKey)
    ]


class Net:
    """A leader and its members, with the pairwise sessions between them simulated: every
    :class:`Send` is delivered at once unless its receiver is in ``deaf`` (left, or
    unreachable); acknowledgements go back to the leader. ``log`` keeps every delivery."""

    def __init__(self, people: int = 1) -> None:
        self.people = [Person(f"p{i}") for i in range(people)]
        self.keys: dict[int, bytes] = {}
        self.random = Draws()
        first = self.people[0]
        self.leader = MeetingLeader(MID, first.entry(0), first.key, first, verify, self.random, T0)
        self.members: dict[int, MeetingMember] = {0: self.leader.member}
        self.keys[0] = first.key
        self.log: list[Out] = []
        self.rosters: dict[int, SignedRoster] = {}
        """Each epoch's roster, as the leader sealed it."""
        self.deaf: set[int] = set()
        self.no_ack: set[int] = set()
        self.deliver(self.leader.sends(), T0)
        for person in self.people[1:]:
            self.join(person, T0)

    def join(self, person: Person, now: int) -> int:
        pid, sends = self.leader.join(person.entry(0).address, 1, person.fp, now)
        self.members[pid] = MeetingMember(MID, pid, verify)
        self.keys[pid] = person.key
        self.deliver(sends, now)
        return pid

    def deliver(self, sends: list[Out], now: int) -> None:
        queue = list(sends)
        while queue:
            send = queue.pop(0)
            self.log.append(send)
            if isinstance(send, Shared):
                roster = open_sealed(self.leader.member, send.message)
                if roster is not None:
                    self.rosters[roster.body.epoch] = roster
                for to in send.to:
                    if to not in self.deaf:
                        acks = self.members[to].on_sealed_roster(send.message, now)
                        queue += self._acked(to, acks, now)
                continue
            if send.to in self.deaf:
                continue
            member, msg = self.members[send.to], send.message
            if isinstance(msg, MeetingEpochKey):
                acks = member.on_epoch_key(msg, self.keys[self.leader.pid], now)
                queue += self._acked(send.to, acks, now)
            elif isinstance(msg, MeetingSwitch):
                member.on_switch(msg, now)

    def _acked(self, pid: int, acks: list[Out], now: int) -> list[Out]:
        """The leader's answer to ``pid``'s acks (none if ``pid`` does not ack)."""
        out: list[Out] = []
        for ack in acks:
            assert isinstance(ack, Send)
            assert isinstance(ack.message, MeetingAck)
            if pid not in self.no_ack:
                out += self.leader.on_ack(pid, ack.message, now)
        return out

    def tick(self, now: int) -> None:
        self.deliver(self.leader.tick(now), now)
        for member in self.members.values():
            member.tick(now)
