"""The key schedule of a meeting (DESIGN section 9; issue 18, "keys for a meeting of 200").

Per-sender key redistribution on every change costs about N² messages at 200 people. So a
*key leader* draws a 32-byte epoch secret and sends it pairwise over the post-quantum
sessions (N-1 small messages, ``wire.meeting.MeetingEpochKey``: the epoch, its secret and
the hash of its roster), and the signed roster once for everyone (one shared upload,
``wire.meeting.SealedRoster``, :class:`Shared`); every sender's SFrame key is
derived from it and the sender's participant id (``pid``, stable for the meeting and end to
end, unlike the node-assigned datagram sender ids). With HKDF-SHA512 (RFC 5869, through
:class:`suites.kdf.Kdf`) and the labels of :mod:`suites.labels`::

    base_key(epoch n, pid) = HKDF(secret_n, info = MEETING_SENDER_INFO || n u32 || pid u32)
    secret_n+1 (join)      = HKDF(secret_n, info = MEETING_RATCHET_INFO || meeting id)
    secret_n+1 (otherwise) = 32 fresh random bytes
    KID                    = n << 32 | pid

``base_key`` is RFC 9605 section 4.4.2's, under ``AES_256_GCM_SHA512_128`` (as 1:1 calls,
``client.calls.keys``); :mod:`suites.sframe` derives the key and salt and does all
encryption (``client.meetings.media``).

* **Join**: the leader ratchets the secret forward (one-way) and sends the newcomer only
  the new one, with the new roster; the others get the roster alone and ratchet
  themselves. A newcomer cannot derive an earlier epoch.
* **Leave**: a fresh random secret to everyone still present. Leaves within
  :data:`LEAVE_BATCH_MS` of the first are batched into one new epoch.
* **Removal**: a participant removed from the group (the shell sees it leave the group's
  member list, ``client.meetings.group``) is dropped like a leaver, in the same batch, and
  the epoch's cause says so (``EpochCause.REMOVE``). Its node leg may stay up: it keeps
  receiving the datagrams, and from the switch on it holds no key for any of them.
* **Switch**: participants acknowledge an epoch (``MeetingAck``); the leader tells everyone
  to send under it (``MeetingSwitch``) once all have acknowledged, or after
  :data:`SWITCH_TIMEOUT_MS`. A removed participant never had the new secret, so it
  decrypts nothing sent after the switch. Receivers keep an older epoch
  :data:`EPOCH_GRACE_MS` after the switch away from it, for frames in flight, then forget it;
  but from a roster on, they open no frame of a participant it no longer lists (a leaver
  or a removed participant that goes on sending under an old epoch is not heard).
* **Rotation**: a fresh secret every :data:`ROTATE_INTERVAL_MS`.
* **Roster**: every epoch comes with the participant list signed by the leader
  (``client.meetings.roster``), sealed under a key derived from the epoch's secret (a
  removed participant cannot open it) and named by hash in each key message. A participant
  accepts an epoch only with both, in either order (``client.meetings.intake``).
* **Hand-over**: when the leader goes, the earliest-joined remaining participant takes over
  with a fresh secret (:meth:`MeetingLeader.succeed`); the others accept it only from
  that participant (``roster.check_roster``).

Pure state machines: time (``now``, ms) and randomness (``random(n)``) are arguments, and
what to send comes out as :class:`Send` values for the pairwise sessions to carry. The
leader is also a participant: its own :class:`MeetingMember` is :attr:`MeetingLeader.member`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from client.meetings.derive import (
    BASE_KEY_LEN,
    PID_BITS,
    SUITE,
    check_secret,
    kid,
    kid_parts,
    ratchet,
    sender_base_key,
)
from client.meetings.errors import RosterError
from client.meetings.member import (
    EPOCH_GRACE_MS,
    MAX_HELD_EPOCHS,
    MeetingMember,
    Out,
    Send,
    Shared,
)
from client.meetings.roster import Signer, Verify, roster_hash, seal_roster, sign_roster, successor
from wire.meeting import (
    EPOCH_SECRET_LEN,
    ROSTER_NONCE_LEN,
    EpochCause,
    MeetingAck,
    MeetingEpochKey,
    MeetingLeave,
    MeetingSwitch,
    RosterBody,
    RosterEntry,
    SignedRoster,
)

LEAVE_BATCH_MS: Final = 200
"""Leaves within this long of the first are folded into one new epoch."""
SWITCH_TIMEOUT_MS: Final = 1000
"""The leader switches senders to a new epoch after this long even without every ack."""
ROTATE_INTERVAL_MS: Final = 300_000
"""A fresh epoch secret at least this often (5 minutes)."""


__all__ = [
    "BASE_KEY_LEN", "EPOCH_GRACE_MS", "LEAVE_BATCH_MS", "MAX_HELD_EPOCHS", "PID_BITS",
    "ROTATE_INTERVAL_MS", "SUITE", "SWITCH_TIMEOUT_MS", "MeetingLeader", "MeetingMember",
    "Out", "Send", "Shared", "check_secret", "kid", "kid_parts", "ratchet", "sender_base_key",
]  # fmt: skip
"""The participant (``client.meetings.member``) and the derivations
(``client.meetings.derive``) are re-exported: this is where they are looked up."""


# --- the key leader --------------------------------------------------------------------------
class MeetingLeader:
    """The key leader of a meeting: the participant list, the epochs and the switches.

    ``me`` is the leader's own roster entry (its ``pid`` included), ``key`` its identity
    signing public key and ``signer`` what signs with it; ``random(n)`` gives ``n`` random
    bytes. Every method returns the :class:`Send` values to carry out.
    """

    def __init__(
        self,
        meeting: bytes,
        me: RosterEntry,
        key: bytes,
        signer: Signer,
        verify: Verify,
        random: Callable[[int], bytes],
        now: int,
        *,
        participants: tuple[RosterEntry, ...] | None = None,
        epoch: int = 0,
        cause: EpochCause = EpochCause.START,
        member: MeetingMember | None = None,
    ) -> None:
        self.meeting = meeting
        self.pid = me.pid
        self._key, self._signer, self._random = key, signer, random
        self.member = member if member is not None else MeetingMember(meeting, me.pid, verify)
        self._participants: dict[int, RosterEntry] = {
            p.pid: p for p in (participants if participants is not None else (me,))
        }
        self._next_pid = max(self._participants) + 1
        self._epoch = epoch
        self._secret = b""
        self._acks: set[int] = set()
        self._switch_at: int | None = None
        self._leave_at: int | None = None
        self._removing = False  # the pending leave batch holds a removal
        self._rotate_at = now + ROTATE_INTERVAL_MS
        self._sends = self._fresh(cause, now)

    @classmethod
    def succeed(
        cls,
        member: MeetingMember,
        key: bytes,
        signer: Signer,
        random: Callable[[int], bytes],
        now: int,
        *,
        present: set[int],
    ) -> MeetingLeader:
        """``member`` takes over from a leader that left: the rightful successor only
        (:func:`client.meetings.roster.successor`); ``present`` is who is still in the
        meeting. A fresh epoch for everyone (:attr:`sends`)."""
        roster = member.roster
        if roster is None or successor(roster, present) != member.pid:
            raise RosterError("only the earliest-joined remaining participant takes over")
        kept = tuple(p for p in roster.participants if p.pid in present and p.pid != roster.leader)
        me = next(p for p in kept if p.pid == member.pid)
        return cls(
            member.meeting, me, key, signer, member.verify, random, now,
            participants=kept, epoch=roster.epoch + 1, cause=EpochCause.HANDOVER, member=member,
        )  # fmt: skip

    @property
    def epoch(self) -> int:
        """The newest epoch."""
        return self._epoch

    @property
    def participants(self) -> tuple[RosterEntry, ...]:
        """Who is in the meeting, in joining order."""
        return tuple(self._participants.values())

    def sends(self) -> list[Out]:
        """What the constructor (or :meth:`succeed`) produced: the first epoch's messages."""
        sends, self._sends = self._sends, []
        return sends

    def join(self, address: str, device: int, fp: bytes, now: int) -> tuple[int, list[Out]]:
        """A participant joins: its pid, and the messages of the ratcheted epoch (the
        newcomer alone gets the secret). Folded into a pending leave batch if there is one."""
        pid = self._next_pid
        self._next_pid += 1
        self._participants[pid] = RosterEntry(pid, address, device, fp)
        if self._leave_at is not None:
            return pid, []  # the batch's fresh epoch reaches the newcomer too
        return pid, self._ratchet(pid, now)

    def on_leave(self, pid: int, msg: MeetingLeave, now: int) -> list[Out]:
        """Participant ``pid`` says it leaves; :meth:`leave` if the message is its own."""
        if msg.meeting != self.meeting or msg.pid != pid:
            return []
        return self.leave(pid, now)

    def depart(self) -> list[Out]:
        """The leader itself leaves: tell everyone, so that the earliest-joined takes over."""
        msg = MeetingLeave(self.meeting, self.pid)
        return [Send(pid, msg) for pid in sorted(self._others())]

    def leave(self, pid: int, now: int, *, removed: bool = False) -> list[Out]:
        """Participant ``pid`` left, or was ``removed`` from the group: a fresh epoch for
        the others within :data:`LEAVE_BATCH_MS` (at :meth:`tick`), its cause
        ``EpochCause.REMOVE`` if the batch holds a removal."""
        if pid == self.pid or self._participants.pop(pid, None) is None:
            return []
        self._acks.discard(pid)
        self._removing |= removed
        if self._leave_at is None:
            self._leave_at = now + LEAVE_BATCH_MS
        return []

    def remove(self, pids: set[int], now: int) -> list[Out]:
        """Participants ``pids`` were removed from the group (:meth:`leave` of each)."""
        for pid in sorted(pids):
            self.leave(pid, now, removed=True)
        return []

    def on_ack(self, pid: int, msg: MeetingAck, now: int) -> list[Out]:
        """Participant ``pid`` holds ``msg.epoch``; the switch once everyone does."""
        if msg.meeting != self.meeting or msg.epoch != self._epoch or pid not in self._participants:
            return []
        self._acks.add(pid)
        if self._switch_at is not None and self._acks >= self._others():
            return self._switch(now)
        return []

    def next_deadline(self) -> int | None:
        """When :meth:`tick` has something to do next (ms): a leave batch to flush, a
        switch timeout, a rotation. A shell that wakes then, not at its next regular
        tick, puts no tick's worth of delay on a rekey."""
        times = (self._leave_at, self._switch_at, self._rotate_at)
        return min((t for t in times if t is not None), default=None)

    def tick(self, now: int) -> list[Out]:
        """Flush a leave batch, rotate, or switch after the timeout, when due."""
        sends: list[Out] = []
        if self._leave_at is not None and now >= self._leave_at:
            sends += self._fresh(EpochCause.REMOVE if self._removing else EpochCause.LEAVE, now)
        elif now >= self._rotate_at:
            sends += self._fresh(EpochCause.ROTATE, now)
        if self._switch_at is not None and now >= self._switch_at:
            sends += self._switch(now)
        return sends

    # --- internals ---------------------------------------------------------------------------
    def _others(self) -> set[int]:
        return set(self._participants) - {self.pid}

    def _fresh(self, cause: EpochCause, now: int) -> list[Out]:
        """A fresh random secret to everyone (a start, leave, rotation or hand-over)."""
        if cause is not EpochCause.START and cause is not EpochCause.HANDOVER:
            self._epoch += 1
        self._secret = check_secret(self._random(EPOCH_SECRET_LEN))
        self._rotate_at = now + ROTATE_INTERVAL_MS  # ratchets do not count: fresh only
        return self._out(self._new_roster(cause, now), None)

    def _ratchet(self, newcomer: int, now: int) -> list[Out]:
        """The secret ratcheted forward: the secret to ``newcomer`` only, the others
        ratchet theirs."""
        self._epoch += 1
        self._secret = ratchet(self._secret, self.meeting)
        return self._out(self._new_roster(EpochCause.JOIN, now), newcomer)

    def _out(self, roster: SignedRoster, newcomer: int | None) -> list[Out]:
        """The epoch's roster sealed once for every other participant, then a key message
        to each: the secret to all (``newcomer`` None) or to ``newcomer`` alone."""
        others = tuple(sorted(self._others()))
        if not others:
            return []
        nonce = self._random(ROSTER_NONCE_LEN)
        out: list[Out] = [Shared(others, seal_roster(roster, self._secret, self._epoch, nonce))]
        digest = roster_hash(roster.body)
        for pid in others:
            secret = self._secret if newcomer is None or pid == newcomer else None
            out.append(Send(pid, MeetingEpochKey(self.meeting, self._epoch, digest, secret)))
        return out

    def _new_roster(self, cause: EpochCause, now: int) -> SignedRoster:
        self._body = RosterBody(self.meeting, self._epoch, self.pid, cause, now, self.participants)
        self.member.adopt(self._body, self._secret)
        self._acks = set()
        self._leave_at, self._removing = None, False
        if self._switch_at is None:  # a switch pending keeps its deadline: joins in a row
            self._switch_at = now + SWITCH_TIMEOUT_MS  # do not put it off forever
        if not self._others():
            self._switch(now)  # alone: nobody to wait for
        return sign_roster(self._body, self._key, self._signer)

    def _switch(self, now: int) -> list[Out]:
        self._switch_at = None
        msg = MeetingSwitch(self.meeting, self._epoch)
        self.member.on_switch(msg, now)
        return [Send(pid, msg) for pid in sorted(self._others())]
