"""Shared pieces of the meeting cores' tests: people with identity signing keys, injected
randomness, and a pairwise "network" that carries the key leader's messages."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Final

from client.meetings import MeetingLeader, MeetingMember, Send, key_fingerprint
from suites import get_suite
from suites.sig import SigPrivateKey
from wire.meeting import MeetingAck, MeetingEpoch, MeetingSwitch, RosterEntry

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
        self.log: list[Send] = []
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

    def deliver(self, sends: list[Send], now: int) -> None:
        queue = list(sends)
        while queue:
            send = queue.pop(0)
            self.log.append(send)
            if send.to in self.deaf:
                continue
            member, msg = self.members[send.to], send.message
            if isinstance(msg, MeetingEpoch):
                leader_key = msg.roster.key
                for ack in member.on_epoch(msg, leader_key, now):
                    assert isinstance(ack.message, MeetingAck)
                    if send.to not in self.no_ack:
                        queue += self.leader.on_ack(send.to, ack.message, now)
            elif isinstance(msg, MeetingSwitch):
                member.on_switch(msg, now)

    def tick(self, now: int) -> None:
        self.deliver(self.leader.tick(now), now)
        for member in self.members.values():
            member.tick(now)
