"""What a participant holds of new epochs before it accepts them (issue 18, "the leader
signs the participant list"): the pairwise key messages (``wire.meeting.MeetingEpochKey``)
and the rosters sealed for everyone (``wire.meeting.SealedRoster``), which travel apart and
may come in either order. Pure.

An epoch is accepted (``client.meetings.keys.MeetingMember``) only once its key message and
a roster that opens under that epoch's key, names that epoch and hashes to the key message's
hash are both here, and the roster passes every check of ``client.meetings.roster``. Until
then both wait, for :data:`~client.meetings.membership.HOLD_MS` after they came (a roster
that cannot be accepted yet, such as a hand-over that comes before the group change that
allows it, is tried again meanwhile). A sealed roster that does not open, or opens and is
refused, never blocks another: a forged one is dropped once its key's roster is accepted or
its time is up.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Final

from client.meetings.errors import RosterError
from client.meetings.membership import HOLD_MS
from client.meetings.roster import Verify, check_roster, open_roster, roster_hash
from wire.meeting import MeetingEpochKey, SealedRoster, SignedRoster

MAX_PENDING_KEYS: Final = 8
"""Key messages waiting at most per session key they came over (the newest epochs are
kept): a participant that sends key messages of its own evicts only its own."""
MAX_PENDING_ROSTERS: Final = 32
"""Sealed rosters waiting at most (the last ones that came are kept)."""


@dataclass(frozen=True)
class PendingKey:
    """A key message from the pairwise session of identity signing key ``from_key``,
    waiting until ``until`` (ms)."""

    msg: MeetingEpochKey
    from_key: bytes
    until: int

    @property
    def epoch(self) -> int:
        return self.msg.epoch


@dataclass(frozen=True)
class PendingRoster:
    """A sealed roster waiting until ``until`` (ms)."""

    sealed: SealedRoster
    until: int


class Intake:
    """Key messages and sealed rosters not accepted yet (module docstring)."""

    def __init__(self) -> None:
        self._keys: dict[tuple[int, bytes], PendingKey] = {}  # (epoch, from_key) ->
        self._rosters: list[PendingRoster] = []

    def add_key(self, msg: MeetingEpochKey, from_key: bytes, now: int) -> None:
        """Hold ``msg`` (a repeated one for the same epoch over the same session replaces
        the first; one over another session waits beside it)."""
        self._keys[msg.epoch, from_key] = PendingKey(msg, from_key, now + HOLD_MS)
        own = sorted(e for e, k in self._keys if k == from_key)
        for epoch in own[:-MAX_PENDING_KEYS]:
            del self._keys[epoch, from_key]

    def add_roster(self, sealed: SealedRoster, now: int) -> None:
        """Hold ``sealed`` (the same one twice is held once)."""
        if any(p.sealed == sealed for p in self._rosters):
            return
        self._rosters = [*self._rosters, PendingRoster(sealed, now + HOLD_MS)]
        self._rosters = self._rosters[-MAX_PENDING_ROSTERS:]

    def waiting_keys(self) -> Iterator[PendingKey]:
        """The waiting key messages, oldest epoch first."""
        for slot in sorted(self._keys, key=lambda slot: slot[0]):
            found = self._keys.get(slot)
            if found is not None:
                yield found

    def rosters(self) -> list[SealedRoster]:
        """The waiting sealed rosters, in the order they came."""
        return [p.sealed for p in self._rosters]

    def candidates(
        self, secret_for: Callable[[PendingKey], bytes | None]
    ) -> Iterator[tuple[PendingKey, SealedRoster, SignedRoster, bytes]]:
        """Each waiting key message whose secret is known (``secret_for``: its own, or the
        previous epoch's ratcheted; asked as the keys come up, oldest epoch first, so one
        accepted meanwhile counts) with each waiting roster that opens under its epoch's
        roster key. A sealed roster that opens but is no roster is dropped."""
        for pending in self.waiting_keys():
            secret = secret_for(pending)
            if secret is None:
                continue
            for sealed in self.rosters():
                try:
                    roster = open_roster(sealed, secret, pending.epoch)
                except RosterError:
                    self._rosters = [p for p in self._rosters if p.sealed != sealed]
                    continue
                if roster is not None:
                    yield pending, sealed, roster, secret
                    if self._keys.get((pending.epoch, pending.from_key)) is not pending:
                        break  # accepted meanwhile: no other roster for it

    def accepted(self, epoch: int, sealed: SealedRoster) -> None:
        """``epoch`` was accepted with ``sealed``: drop both and every older key."""
        self._keys = {slot: k for slot, k in self._keys.items() if slot[0] > epoch}
        self._rosters = [p for p in self._rosters if p.sealed != sealed]

    def expire(self, now: int, newest: int | None) -> None:
        """Drop what waited its time, and keys no newer than the ``newest`` epoch held."""
        self._keys = {
            slot: k
            for slot, k in self._keys.items()
            if now < k.until and (newest is None or slot[0] > newest)
        }
        self._rosters = [p for p in self._rosters if now < p.until]

    def __bool__(self) -> bool:
        return bool(self._keys) or bool(self._rosters)

    def clear(self) -> None:
        self._keys, self._rosters = {}, []


def first_roster(intake: Intake, meeting: bytes, me: tuple[str, int], verify: Verify) -> int | None:
    """Before a device knows its pid: the pid of device ``me`` (address, device id) in the
    first waiting epoch of ``meeting`` whose roster is the one its key message names and
    verifies as a first roster from the key message's sender (``roster.check_roster``);
    None if none does yet. A newcomer's key message carries the secret, so no ratchet."""
    for pending, _, roster, _ in intake.candidates(lambda key: key.msg.secret):
        body = roster.body
        if body.meeting != meeting or body.epoch != pending.epoch:
            continue
        if not hmac.compare_digest(roster_hash(body), pending.msg.roster):
            continue
        try:
            check_roster(roster, verify, first_leader_key=pending.from_key)
        except RosterError:
            continue
        for participant in body.participants:
            if (participant.address, participant.device) == me:
                return participant.pid
    return None
