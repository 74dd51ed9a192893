"""The key schedule of a meeting (DESIGN section 9; issue 18, "keys for a meeting of 200").

Per-sender key redistribution on every change costs about N² messages at 200 people. So a
*key leader* draws a 32-byte epoch secret and sends it pairwise over the post-quantum
sessions (N-1 messages, ``wire.meeting.MeetingEpoch``); every sender's SFrame key is
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
  (``client.meetings.roster``).
* **Hand-over**: when the leader goes, the earliest-joined remaining participant takes over
  with a fresh secret (:meth:`MeetingLeader.succeed`); the others accept it only from
  that participant (``roster.check_roster``).

Pure state machines: time (``now``, ms) and randomness (``random(n)``) are arguments, and
what to send comes out as :class:`Send` values for the pairwise sessions to carry. The
leader is also a participant: its own :class:`MeetingMember` is :attr:`MeetingLeader.member`.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from client.meetings.errors import MeetingKeyError, RosterError
from client.meetings.roster import Signer, Verify, check_roster, sign_roster, successor
from suites import labels, sframe
from suites.kdf import Kdf
from wire.meeting import (
    EPOCH_SECRET_LEN,
    EpochCause,
    MeetingAck,
    MeetingEpoch,
    MeetingLeave,
    MeetingMessage,
    MeetingSwitch,
    RosterBody,
    RosterEntry,
    SignedRoster,
)

SUITE: Final = sframe.AES_256_GCM_SHA512_128
"""The SFrame cipher suite of meetings (RFC 9605 section 4.5, id 5)."""
BASE_KEY_LEN: Final = 64
"""Bytes of a sender's SFrame base key (SHA-512 output, Nh)."""
LEAVE_BATCH_MS: Final = 200
"""Leaves within this long of the first are folded into one new epoch."""
SWITCH_TIMEOUT_MS: Final = 1000
"""The leader switches senders to a new epoch after this long even without every ack."""
ROTATE_INTERVAL_MS: Final = 300_000
"""A fresh epoch secret at least this often (5 minutes)."""
EPOCH_GRACE_MS: Final = 10_000
"""How long a receiver keeps an epoch after the switch away from it."""
MAX_HELD_EPOCHS: Final = 8
"""Most epoch secrets a participant holds at once (bounds what a flood of epochs costs)."""
PID_BITS: Final = 32

_HKDF: Final = Kdf("sha512")
_U32: Final = struct.Struct(">I")


@dataclass(frozen=True, slots=True)
class Send:
    """Send ``message`` to participant ``to`` over the pairwise session with it."""

    to: int
    message: MeetingMessage


# --- derivations -----------------------------------------------------------------------------
def check_secret(secret: bytes) -> bytes:
    """``secret`` if it is :data:`EPOCH_SECRET_LEN` bytes; :class:`MeetingKeyError` if not."""
    if not isinstance(secret, bytes) or len(secret) != EPOCH_SECRET_LEN:
        raise MeetingKeyError(f"an epoch secret is {EPOCH_SECRET_LEN} bytes")
    return secret


def ratchet(secret: bytes, meeting: bytes) -> bytes:
    """The next epoch's secret after a join (one-way: it does not give ``secret`` back)."""
    info = labels.MEETING_RATCHET_INFO + meeting
    return _HKDF.derive(check_secret(secret), b"", info, EPOCH_SECRET_LEN)


def sender_base_key(secret: bytes, epoch: int, pid: int) -> bytes:
    """The SFrame ``base_key`` of participant ``pid`` in ``epoch`` (64 bytes)."""
    info = labels.MEETING_SENDER_INFO + _U32.pack(epoch) + _U32.pack(pid)
    return _HKDF.derive(check_secret(secret), b"", info, BASE_KEY_LEN)


def kid(epoch: int, pid: int) -> int:
    """The SFrame KID of ``pid``'s frames in ``epoch``."""
    if not (0 <= epoch < 1 << 31 and 0 <= pid < 1 << PID_BITS):
        raise MeetingKeyError("an epoch is 0..2^31-1 and a pid 32 bits")
    return epoch << PID_BITS | pid


def kid_parts(key_id: int) -> tuple[int, int]:
    """``(epoch, pid)`` of a KID made by :func:`kid`."""
    return key_id >> PID_BITS, key_id & (1 << PID_BITS) - 1


# --- a participant ---------------------------------------------------------------------------
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

    def on_epoch(self, msg: MeetingEpoch, from_key: bytes, now: int) -> list[Send]:
        """A new epoch from the leader; ``from_key`` is the identity signing key of the
        pairwise session it came over. The ack to send. :class:`RosterError` or
        :class:`MeetingKeyError` if it cannot be accepted (nothing changes then)."""
        body = check_roster(
            msg.roster, self.verify, previous=self._roster, first_leader_key=from_key,
            departed=self._departed,
        )  # fmt: skip
        if from_key != msg.roster.key:
            raise RosterError("an epoch must come from its leader")
        if body.meeting != self.meeting or all(p.pid != self.pid for p in body.participants):
            raise RosterError("a roster of another meeting, or without this participant")
        if msg.secret is not None:
            secret = check_secret(msg.secret)
        elif body.epoch - 1 in self._secrets and body.cause is EpochCause.JOIN:
            secret = ratchet(self._secrets[body.epoch - 1], self.meeting)
        else:
            raise MeetingKeyError("no secret to ratchet this epoch from")
        self.adopt(body, secret)
        if self._switch_to is not None and self._switch_to in self._secrets:
            self.on_switch(MeetingSwitch(self.meeting, self._switch_to), now)
        return [Send(body.leader, MeetingAck(self.meeting, body.epoch))]

    def adopt(self, body: RosterBody, secret: bytes) -> None:
        """Hold ``body`` and its epoch's ``secret`` (checked already: the leader's own
        view, or :meth:`on_epoch` after its checks)."""
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

    def sends(self) -> list[Send]:
        """What the constructor (or :meth:`succeed`) produced: the first epoch's messages."""
        sends, self._sends = self._sends, []
        return sends

    def join(self, address: str, device: int, fp: bytes, now: int) -> tuple[int, list[Send]]:
        """A participant joins: its pid, and the messages of the ratcheted epoch (the
        newcomer alone gets the secret). Folded into a pending leave batch if there is one."""
        pid = self._next_pid
        self._next_pid += 1
        self._participants[pid] = RosterEntry(pid, address, device, fp)
        if self._leave_at is not None:
            return pid, []  # the batch's fresh epoch reaches the newcomer too
        return pid, self._ratchet(pid, now)

    def on_leave(self, pid: int, msg: MeetingLeave, now: int) -> list[Send]:
        """Participant ``pid`` says it leaves; :meth:`leave` if the message is its own."""
        if msg.meeting != self.meeting or msg.pid != pid:
            return []
        return self.leave(pid, now)

    def depart(self) -> list[Send]:
        """The leader itself leaves: tell everyone, so that the earliest-joined takes over."""
        msg = MeetingLeave(self.meeting, self.pid)
        return [Send(pid, msg) for pid in sorted(self._others())]

    def leave(self, pid: int, now: int, *, removed: bool = False) -> list[Send]:
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

    def remove(self, pids: set[int], now: int) -> list[Send]:
        """Participants ``pids`` were removed from the group (:meth:`leave` of each)."""
        for pid in sorted(pids):
            self.leave(pid, now, removed=True)
        return []

    def on_ack(self, pid: int, msg: MeetingAck, now: int) -> list[Send]:
        """Participant ``pid`` holds ``msg.epoch``; the switch once everyone does."""
        if msg.meeting != self.meeting or msg.epoch != self._epoch or pid not in self._participants:
            return []
        self._acks.add(pid)
        if self._switch_at is not None and self._acks >= self._others():
            return self._switch(now)
        return []

    def tick(self, now: int) -> list[Send]:
        """Flush a leave batch, rotate, or switch after the timeout, when due."""
        sends: list[Send] = []
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

    def _fresh(self, cause: EpochCause, now: int) -> list[Send]:
        """A fresh random secret to everyone (a start, leave, rotation or hand-over)."""
        if cause is not EpochCause.START and cause is not EpochCause.HANDOVER:
            self._epoch += 1
        self._secret = check_secret(self._random(EPOCH_SECRET_LEN))
        self._rotate_at = now + ROTATE_INTERVAL_MS  # ratchets do not count: fresh only
        roster = self._new_roster(cause, now)
        return [Send(pid, MeetingEpoch(roster, self._secret)) for pid in sorted(self._others())]

    def _ratchet(self, newcomer: int, now: int) -> list[Send]:
        """The secret ratcheted forward: the roster to the others, the secret to ``newcomer``."""
        self._epoch += 1
        self._secret = ratchet(self._secret, self.meeting)
        roster = self._new_roster(EpochCause.JOIN, now)
        return [
            Send(pid, MeetingEpoch(roster, self._secret if pid == newcomer else None))
            for pid in sorted(self._others())
        ]

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

    def _switch(self, now: int) -> list[Send]:
        self._switch_at = None
        msg = MeetingSwitch(self.meeting, self._epoch)
        self.member.on_switch(msg, now)
        return [Send(pid, msg) for pid in sorted(self._others())]
