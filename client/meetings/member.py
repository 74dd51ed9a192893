"""One participant's side of a meeting's key schedule (``client.meetings.keys`` tells the
schedule and re-exports these): the roster it accepted, the epoch secrets it holds, the
epoch it sends under, and what it must send (:class:`Send` pairwise, :class:`Shared` once
for many). Pure: time (``now``, ms) is an argument."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Final, TypeAlias

from client.meetings.derive import check_secret, kid, kid_parts, ratchet, sender_base_key
from client.meetings.errors import MeetingError, MeetingKeyError, RosterError
from client.meetings.intake import Intake, PendingKey
from client.meetings.roster import Verify, check_roster, roster_hash, successor
from wire import encode
from wire.meeting import (
    EpochCause,
    MeetingAck,
    MeetingEpochKey,
    MeetingLeave,
    MeetingMessage,
    MeetingSwitch,
    RosterBody,
    SealedRoster,
    SignedRoster,
)

EPOCH_GRACE_MS: Final = 10_000
"""How long a receiver keeps an epoch after the switch away from it."""
MAX_HELD_EPOCHS: Final = 8
"""Most epoch secrets a participant holds at once (bounds what a flood of epochs costs)."""


@dataclass(frozen=True, slots=True)
class Send:
    """Send ``message`` to participant ``to`` over the pairwise session with it."""

    to: int
    message: MeetingMessage


@dataclass(frozen=True, slots=True)
class Shared:
    """Send ``message`` once to every participant of ``to`` (one shared upload)."""

    to: tuple[int, ...]
    message: SealedRoster


Out: TypeAlias = Send | Shared
"""What the key schedule gives the shell to carry."""


class MeetingMember:
    """One participant's view: the accepted roster, the epoch secrets it holds, and the
    epoch it sends under."""

    def __init__(self, meeting: bytes, pid: int, verify: Verify) -> None:
        self.meeting = meeting
        self.pid = pid
        self.verify = verify
        self._roster: RosterBody | None = None
        self._secrets: dict[int, bytes] = {}
        self._retiring: dict[int, int] = {}  # epoch -> when it is forgotten
        self._send_epoch: int | None = None
        self._switch_to: int | None = None  # a switch that came before its epoch
        self._pids: frozenset[int] = frozenset()  # the pids of the last roster accepted
        self._departed: set[int] = set()  # pids this participant knows have left
        self._intake = Intake()  # key messages and sealed rosters not accepted yet

    @property
    def roster(self) -> RosterBody | None:
        """The last roster accepted."""
        return self._roster

    @property
    def send_epoch(self) -> int | None:
        """The epoch to send under (None before the first switch)."""
        return self._send_epoch

    @property
    def latest_epoch(self) -> int | None:
        """The newest epoch held."""
        return max(self._secrets, default=None)

    def note_left(self, pid: int) -> None:
        """Participant ``pid`` left (its ``MeetingLeave``, or the node says it went): a
        hand-over that leaves it out may be accepted (``roster.check_roster``)."""
        self._departed.add(pid)

    def on_leave(self, msg: MeetingLeave) -> bool:
        """Another participant says it leaves (``MeetingLeave``, from its pairwise session;
        the shell checks that ``msg.pid`` is the sender's). Whether this participant must
        now take over as leader (:meth:`MeetingLeader.succeed`): the leader left and this
        is the earliest-joined participant still present."""
        if msg.meeting != self.meeting:
            return False
        self.note_left(msg.pid)
        return self.should_lead()

    def should_lead(self) -> bool:
        """Whether the leader is gone and this participant is its rightful successor."""
        roster = self._roster
        if roster is None or roster.leader not in self._departed or roster.leader == self.pid:
            return False
        present = {p.pid for p in roster.participants} - self._departed
        return successor(roster, present) == self.pid

    def present(self) -> set[int]:
        """The last roster's participants not known to have left."""
        roster = self._roster
        return set() if roster is None else {p.pid for p in roster.participants} - self._departed

    @property
    def departed(self) -> frozenset[int]:
        """The pids this participant knows have left."""
        return frozenset(self._departed)

    def holds(self, epoch: int) -> bool:
        """Whether this participant holds ``epoch``'s secret."""
        return epoch in self._secrets

    def on_epoch_key(self, msg: MeetingEpochKey, from_key: bytes, now: int) -> list[Out]:
        """A new epoch's key message from the leader; ``from_key`` is the identity signing
        key of the pairwise session it came over. The ack to send once the epoch's roster
        is here too; :class:`RosterError` or :class:`MeetingKeyError` if what is here
        cannot be accepted (it waits a while: ``client.meetings.intake``)."""
        if msg.meeting != self.meeting:
            raise RosterError("a key message of another meeting")
        self._intake.add_key(msg, from_key, now)
        return self._settle(now)

    def on_sealed_roster(self, sealed: SealedRoster, now: int) -> list[Out]:
        """A roster sealed for every participant (it may come before its key message)."""
        self._intake.add_roster(sealed, now)
        return self._settle(now)

    def retry(self, now: int) -> list[Out]:
        """What waits, tried again (the group's member list may have changed since)."""
        try:
            return self._settle(now) if self._intake else []
        except MeetingError:
            return []

    def _settle(self, now: int) -> list[Out]:
        newest = None if self._roster is None else self._roster.epoch
        self._intake.expire(now, newest)
        acks: list[Out] = []
        refused: MeetingError | None = None
        for pending, sealed, roster, secret in self._intake.candidates(self._secret_for):
            try:
                acks += self._accept(pending, roster, secret, now)
            except MeetingError as exc:
                refused = exc
            else:
                self._intake.accepted(pending.epoch, sealed)
        if refused is not None and not acks:
            raise refused
        return acks

    def _secret_for(self, pending: PendingKey) -> bytes | None:
        """The key message's secret, or the previous epoch's ratcheted (a join)."""
        if pending.msg.secret is not None:
            return check_secret(pending.msg.secret)
        previous = self._secrets.get(pending.epoch - 1)
        return None if previous is None else ratchet(previous, self.meeting)

    def _accept(
        self, pending: PendingKey, roster: SignedRoster, secret: bytes, now: int
    ) -> list[Out]:
        """Accept the epoch of ``pending`` with ``roster`` after every check."""
        body = roster.body
        encoded = encode(body)  # once, for the hash and the signature
        named = hmac.compare_digest(roster_hash(body, encoded), pending.msg.roster)
        if body.epoch != pending.epoch or not named:
            raise RosterError("the roster is not the one its key message names")
        if pending.from_key != roster.key:
            raise RosterError("an epoch must come from its leader")
        check_roster(
            roster, self.verify, previous=self._roster, first_leader_key=pending.from_key,
            departed=self._departed, encoded=encoded,
        )  # fmt: skip
        if body.meeting != self.meeting or all(p.pid != self.pid for p in body.participants):
            raise RosterError("a roster of another meeting, or without this participant")
        if pending.msg.secret is None and body.cause is not EpochCause.JOIN:
            raise MeetingKeyError("no secret to ratchet this epoch from")
        self.adopt(body, secret)
        if self._switch_to is not None and self._switch_to in self._secrets:
            self.on_switch(MeetingSwitch(self.meeting, self._switch_to), now)
        return [Send(body.leader, MeetingAck(self.meeting, body.epoch))]

    def adopt(self, body: RosterBody, secret: bytes) -> None:
        """Hold ``body`` and its epoch's ``secret`` (checked already: the leader's own
        view, or an epoch accepted after every check)."""
        self._roster = body
        self._secrets[body.epoch] = check_secret(secret)
        self._pids = frozenset(p.pid for p in body.participants)
        for old in sorted(self._secrets)[:-MAX_HELD_EPOCHS]:
            if old != self._send_epoch:  # still sending under it until the switch
                self._forget(old)

    def on_switch(self, msg: MeetingSwitch, now: int) -> None:
        """Send under ``msg.epoch`` from now (ignored unless held and newer)."""
        epoch = msg.epoch
        current = self._send_epoch
        if msg.meeting != self.meeting or (current is not None and epoch <= current):
            return
        if epoch not in self._secrets:
            self._switch_to = max(epoch, self._switch_to or 0)
            return
        self._switch_to = None
        for old in self._secrets:
            if old < epoch:
                self._retiring.setdefault(old, now + EPOCH_GRACE_MS)
        self._send_epoch = epoch

    def tick(self, now: int) -> None:
        """Forget the epochs whose grace after a switch has run out."""
        for epoch, until in list(self._retiring.items()):
            if now >= until:
                self._forget(epoch)

    def send_key(self) -> tuple[int, bytes]:
        """``(KID, base_key)`` to send under now; :class:`MeetingKeyError` before any epoch."""
        epoch = self._send_epoch
        if epoch is None:
            raise MeetingKeyError("no epoch to send under yet")
        return kid(epoch, self.pid), sender_base_key(self._secrets[epoch], epoch, self.pid)

    def recv_key(self, key_id: int) -> bytes | None:
        """The base key of a received frame's KID, or None if its epoch is not held or its
        pid is not in the last roster (or is this participant's own)."""
        epoch, pid = kid_parts(key_id)
        secret = self._secrets.get(epoch)
        if secret is None or pid == self.pid or pid not in self._pids:
            return None
        return sender_base_key(secret, epoch, pid)

    def _forget(self, epoch: int) -> None:
        self._secrets.pop(epoch, None)
        self._retiring.pop(epoch, None)
