"""The meeting of a sealrelay group, seen from one device: who hosts, who joins, and the key
schedule's messages between them (issue 18, "meetings of sealrelay groups"). Pure.

Signalling rides the pairwise sessions (``client.content.MeetingNote``), never the node:

* **Host**: a device that starts ``meet`` for a group and holds no live invite for it draws
  a 16-byte meeting id (end to end) and a 16-byte room id (what its node sees), becomes the
  key leader (:class:`~client.meetings.keys.MeetingLeader`, pid 0) and sends every other
  member a :class:`~client.content.MeetingInvite`: meeting, room, the room's domain (its
  own; a successor keeps it) and its signing key's fingerprint, live for
  :data:`INVITE_TTL_MS`, renewed at half that while it leads.
* **Join**: a device that starts ``meet`` while it holds a live invite for the group (one
  that came over the session of the key it names, from a member of the group) sends the
  leader a :class:`~client.content.MeetingRequest`. The leader gives it the next pid
  (``MeetingLeader.join``, the fingerprint taken from the *session's* identity key, never
  from the request) and ratchets the epoch; the newcomer finds its pid in the first signed
  roster that verifies against its key message (``intake.first_roster``). A request
  unanswered for :data:`REQUEST_TIMEOUT_MS` drops that invite and the device starts again
  (another invite, or it hosts).
* **Keys**: ``MeetingEpochKey`` / ``MeetingAck`` / ``MeetingSwitch`` / ``MeetingLeave`` of
  ``wire.meeting`` between the leader and each participant, and each epoch's
  ``SealedRoster`` once for all (:class:`SharedNote`: one shared upload), as
  :mod:`client.meetings.keys` produces them; a switch counts only from the leader's device;
  when the leader leaves, its rightful successor takes over and invites the group again.
  The older ``MeetingEpoch`` is refused (``meeting.old_shape``).
* **Removal**: the leader drops a participant removed from the group, the others count it
  gone, a removed leader hands over (``client.meetings.membership``).
* **Glare**: two devices that host at once each see the other's invite; the meeting with
  the smaller meeting id (as bytes) goes on, the other's devices leave and ask to join it.

Media starts (:class:`EnterRoom`) once this device sends under an epoch: at once for the
host, after the first switch for a newcomer, so that it never sends a frame the others
cannot open. Time (``now``, Unix ms) and randomness are arguments; what to send comes out as
:class:`Note` values, what happened as :class:`Event` values.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final

from client.content import MeetingInvite, MeetingRequest, MeetingSignal
from client.meetings.errors import MeetingError, MeetingShapeError
from client.meetings.events import (
    EnterRoom,
    Event,
    Leading,
    LeaveRoom,
    Me,
    Note,
    Phase,
    Roster,
    SharedNote,
)
from client.meetings.intake import Intake, first_roster
from client.meetings.keys import MeetingLeader, MeetingMember, Out, Send
from client.meetings.membership import removed
from client.meetings.roster import key_fingerprint
from wire.meeting import (
    MEETING_ID_LEN,
    MeetingAck,
    MeetingEpoch,
    MeetingEpochKey,
    MeetingLeave,
    MeetingSwitch,
    RosterEntry,
    SealedRoster,
)

INVITE_TTL_MS: Final = 120_000
"""How long an invite stays live (renewed at half that while its sender leads)."""
REQUEST_TIMEOUT_MS: Final = 3_000
"""A join request unanswered this long drops its invite."""
LISTEN_MS: Final = 1_000
"""How long a device that found no live invite listens for one before it hosts (members
starting a moment apart then meet in the first one's meeting, not in a glare)."""
ROOM_ID_LEN: Final = 16
"""Bytes of a room id (``wire.relay_meetings.RoomId``)."""

__all__ = [
    "INVITE_TTL_MS", "LISTEN_MS", "REQUEST_TIMEOUT_MS", "ROOM_ID_LEN", "EnterRoom", "Event",
    "GroupMeeting", "Leading", "LeaveRoom", "Me", "Note", "Phase", "Roster", "SharedNote",
]  # fmt: skip


@dataclass(frozen=True)
class _Invite:
    invite: MeetingInvite
    sender: str
    received_ms: int

    def live(self, now: int) -> bool:
        span = self.invite.expires_ms - self.invite.sent_ms
        return now < self.received_ms + min(span, INVITE_TTL_MS)


class GroupMeeting:
    """This device's part in the meeting of one group (module docstring).

    ``members()`` gives the group's member addresses now (this one's included or not);
    ``random(n)`` gives ``n`` random bytes."""

    def __init__(
        self,
        group: bytes,
        me: Me,
        members: Callable[[], Iterable[str]],
        random: Callable[[int], bytes],
    ) -> None:
        self.group = group
        self.me = me
        self._members = members
        self._random = random
        self.phase = Phase.IDLE
        self.meeting: bytes | None = None
        self.room: bytes | None = None
        self.anchor = ""
        self.leader: MeetingLeader | None = None
        self.member: MeetingMember | None = None
        self._started = False
        self._invites: dict[bytes, _Invite] = {}
        self._requested_at = 0
        self._host_at: int | None = None
        self._invite_at: int | None = None  # next renewal (leader)
        self._entered = False
        self._announced: dict[int, str] = {}
        self._early = Intake()  # epochs that came before this device knew its pid
        self.epochs: set[int] = set()
        self.most_participants = 0
        self.ignored = 0
        """Signals ignored: another group, a sender not in it, a bad roster, out of place."""

    # --- inputs ----------------------------------------------------------------------------
    def start(self, now: int) -> list[Event]:
        """``meet`` started (after the mailbox was read): join a live invite, or host if
        none comes within :data:`LISTEN_MS`."""
        self._started = True
        self._host_at = now + LISTEN_MS
        return self._settle(now)

    def receive(
        self, sender: str, device: int, key: bytes, signal: MeetingSignal, now: int
    ) -> list[Event]:
        """A meeting signal of this group from ``sender``'s ``device`` over the session of
        identity signing key ``key``."""
        if sender == self.me.address or sender not in set(self._members()):
            self.ignored += 1
            return []
        out = self._removals(now)  # the member list as it is now judges this signal
        try:
            return out + self._receive(sender, device, key, signal, now)
        except MeetingError:
            self.ignored += 1
            return out

    def receive_shared(self, sealed: SealedRoster, now: int) -> list[Event]:
        """A roster sealed for every participant (a shared upload: no sender to judge; only
        holders of its epoch open it, and its key message vouches for it)."""
        try:
            return self._on_sealed(sealed, now)
        except MeetingError:
            self.ignored += 1
            return []

    def tick(self, now: int) -> list[Event]:
        """Timers: the key schedule's, invite renewal, an unanswered request."""
        out: list[Event] = self._removals(now)
        self._early.expire(now, None)
        if self.leader is None and self.member is not None:  # an epoch acceptable now
            out += self._sends(self.member.retry(now))
        if self.leader is not None:
            out += self._sends(self.leader.tick(now))
            if self._invite_at is not None and now >= self._invite_at:
                out += self._invite(now)
        if self.member is not None:
            self.member.tick(now)
        if self.phase is Phase.REQUESTED and now >= self._requested_at + REQUEST_TIMEOUT_MS:
            if self.meeting is not None:
                self._invites.pop(self.meeting, None)
            self._reset()
            out += self._settle(now)
        elif self.phase is Phase.IDLE and self._started:
            out += self._settle(now)
        return out + self._after(now)

    def leave(self, now: int) -> list[Event]:
        """``meet`` ends: tell the leader (or, as leader, everyone) and stop."""
        out = self._depart()
        self._started = False
        self._reset()
        return out

    def next_deadline(self) -> int | None:
        """When :meth:`tick` has something to do at the latest (ms); None: nothing pending."""
        times = [t for t in (self._invite_at,) if t is not None]
        if self.phase is Phase.IDLE and self._started and self._host_at is not None:
            times.append(self._host_at)
        if self.phase is Phase.REQUESTED:
            times.append(self._requested_at + REQUEST_TIMEOUT_MS)
        leading = None if self.leader is None else self.leader.next_deadline()
        times += [] if leading is None else [leading]
        return min(times, default=None)

    # --- state shown -----------------------------------------------------------------------
    @property
    def participants(self) -> dict[int, str]:
        """pid -> address of the current roster (empty before one)."""
        member = self.member
        roster = None if member is None else member.roster
        if member is None or roster is None:
            return {}
        present = member.present()
        return {p.pid: p.address for p in roster.participants if p.pid in present}

    @property
    def pid(self) -> int | None:
        return None if self.member is None else self.member.pid

    # --- internals -------------------------------------------------------------------------
    def _receive(
        self, sender: str, device: int, key: bytes, signal: MeetingSignal, now: int
    ) -> list[Event]:
        if isinstance(signal, MeetingInvite):
            return self._on_invite(sender, key, signal, now)
        if isinstance(signal, MeetingRequest):
            return self._on_request(sender, device, key, signal, now)
        if isinstance(signal, MeetingEpoch):
            raise MeetingShapeError("an epoch of the older shape: the roster inside")
        if isinstance(signal, MeetingEpochKey):
            return self._on_epoch_key(key, signal, now)
        if isinstance(signal, SealedRoster):
            return self._on_sealed(signal, now)
        if isinstance(signal, MeetingLeave) and self._withdrawn(sender, signal.meeting):
            return self._settle(now)
        pid = self._pid_of(sender, device)
        if pid is None or getattr(signal, "meeting", None) != self.meeting:
            self.ignored += 1
            return []
        out: list[Event] = []
        if isinstance(signal, MeetingAck) and self.leader is not None:
            out += self._sends(self.leader.on_ack(pid, signal, now))
        elif isinstance(signal, MeetingSwitch) and self.member is not None:
            roster = self.member.roster
            if roster is None or roster.leader != pid:
                self.ignored += 1
                return []
            self.member.on_switch(signal, now)
        elif isinstance(signal, MeetingLeave):
            out += self._on_leave(pid, signal, now)
        else:
            self.ignored += 1
        return out + self._after(now)

    def _withdrawn(self, sender: str, meeting: bytes) -> bool:
        """The host of ``meeting`` left it: forget its invite; whether this device was
        still only asking to join it (it then looks again)."""
        held = self._invites.get(meeting)
        if held is None or held.sender != sender:
            return False
        del self._invites[meeting]
        if self.phase is Phase.REQUESTED and self.meeting == meeting:
            self._reset()
            return True
        return False

    def _on_invite(self, sender: str, key: bytes, invite: MeetingInvite, now: int) -> list[Event]:
        if key_fingerprint(key) != invite.leader_fp:
            self.ignored += 1
            return []
        self._invites[invite.meeting] = _Invite(invite, sender, now)
        current = self.meeting
        if current is None:
            return self._settle(now)
        if not self._started or current == invite.meeting:
            return []
        if invite.meeting >= current:
            return []  # glare: ours goes on
        out: list[Event] = self._depart()  # glare: the smaller meeting id wins
        self._reset()
        return out + self._settle(now)

    def _on_request(
        self, sender: str, device: int, key: bytes, req: MeetingRequest, now: int
    ) -> list[Event]:
        leader = self.leader
        if leader is None or req.meeting != self.meeting:
            self.ignored += 1
            return []
        if self._pid_of(sender, device) is not None:
            return []  # already in: a repeated request
        _, sends = leader.join(sender, device, key_fingerprint(key), now)
        return self._sends(sends) + self._after(now)

    def _on_epoch_key(self, key: bytes, msg: MeetingEpochKey, now: int) -> list[Event]:
        if self.phase is Phase.IDLE or msg.meeting != self.meeting or self.leader is not None:
            self.ignored += 1
            return []
        if self.member is None:
            self._early.add_key(msg, key, now)
            return self._first_epoch(now)
        return self._in(self.member.on_epoch_key(msg, key, now), now)

    def _on_sealed(self, sealed: SealedRoster, now: int) -> list[Event]:
        if self.phase is Phase.IDLE or self.leader is not None:
            return []  # not for this device: a leader makes its own
        if self.member is None:
            self._early.add_roster(sealed, now)
            return self._first_epoch(now)
        return self._in(self.member.on_sealed_roster(sealed, now), now)

    def _first_epoch(self, now: int) -> list[Event]:
        """The first epoch naming this device makes its member; what waited goes to it."""
        me = (self.me.address, self.me.device)
        assert self.meeting is not None  # noqa: S101 - not IDLE
        pid = first_roster(self._early, self.meeting, me, self.me.verify)
        if pid is None:
            return []
        member = self.member = MeetingMember(self.meeting, pid, self.me.verify)
        early, self._early = self._early, Intake()
        acks: list[Out] = []
        for sealed in early.rosters():
            acks += member.on_sealed_roster(sealed, now)
        for pending in early.waiting_keys():
            acks += member.on_epoch_key(pending.msg, pending.from_key, now)
        return self._in(acks, now)

    def _in(self, acks: list[Out], now: int) -> list[Event]:
        if acks:
            self.phase = Phase.IN
        return self._sends(acks) + self._after(now)

    def _on_leave(self, pid: int, msg: MeetingLeave, now: int) -> list[Event]:
        if self.leader is not None:
            return self._sends(self.leader.on_leave(pid, msg, now))
        member = self.member
        if member is None or msg.pid != pid or not member.on_leave(msg):
            return []
        return self._take_over(member, now)

    def _removals(self, now: int) -> list[Event]:
        """Participants no longer in the group's member list: removed (module docstring)."""
        member = self.member
        if member is None or member.roster is None:
            return []
        entries = self.leader.participants if self.leader else member.roster.participants
        gone = removed(entries, self._members(), self.me.address, member.departed)
        if self.leader is not None:
            return self._sends(self.leader.remove(gone, now))
        for pid in gone:
            member.note_left(pid)
        return self._take_over(member, now) if gone and member.should_lead() else []

    def _take_over(self, member: MeetingMember, now: int) -> list[Event]:
        """This device is the rightful successor of a leader that went: it leads."""
        self.leader = MeetingLeader.succeed(
            member, self.me.key, self.me.signer, self._random, now, present=member.present()
        )
        out: list[Event] = [Leading(member.meeting)]
        return out + self._sends(self.leader.sends()) + self._invite(now)

    def _settle(self, now: int) -> list[Event]:
        """Not in a meeting: ask the leader of the best live invite, or host."""
        if not self._started or self.phase is not Phase.IDLE:
            return []
        live = sorted((m, i) for m, i in self._invites.items() if i.live(now))
        if live:
            meeting, chosen = live[0]
            self.phase, self.meeting, self.room = Phase.REQUESTED, meeting, chosen.invite.room
            self.anchor = _anchor(chosen.invite.anchor or chosen.sender, self.me.address)
            self._requested_at = now
            return [Note(chosen.sender, MeetingRequest(meeting))]
        if self._host_at is not None and now < self._host_at:
            return []  # listening for an invite a little longer
        return self._host(now)

    def _host(self, now: int) -> list[Event]:
        meeting, room = self._random(MEETING_ID_LEN), self._random(ROOM_ID_LEN)
        me = RosterEntry(0, self.me.address, self.me.device, self.me.fp)
        self.leader = MeetingLeader(
            meeting, me, self.me.key, self.me.signer, self.me.verify, self._random, now
        )
        self.member = self.leader.member
        self.phase, self.meeting, self.room = Phase.IN, meeting, room
        self.anchor = ""
        self.leader.sends()  # alone: nobody to send the first epoch to
        return self._invite(now) + self._after(now)

    def _invite(self, now: int) -> list[Event]:
        """The invite to every other member of the group (a renewal too)."""
        if self.meeting is None or self.room is None:
            return []
        self._invite_at = now + INVITE_TTL_MS // 2
        expires, anchor = now + INVITE_TTL_MS, self.anchor or _anchor(self.me.address, "")
        invite = MeetingInvite(self.meeting, self.room, self.me.fp, now, expires, anchor)
        others = sorted(set(self._members()) - {self.me.address})
        return [Note(to, invite) for to in others]

    def _depart(self) -> list[Event]:
        """The messages that say this device leaves its meeting, and the room to leave."""
        out: list[Event] = []
        if self.room is not None and self._entered:
            out.append(LeaveRoom(self.room))
        if self.leader is not None:
            out += self._sends(self.leader.depart())
        elif self.member is not None and self.meeting is not None:
            roster = self.member.roster
            if roster is not None:
                out += self._sends(
                    [Send(roster.leader, MeetingLeave(self.meeting, self.member.pid))]
                )
        return out

    def _reset(self) -> None:
        self.phase = Phase.IDLE
        self.meeting = self.room = None
        self.anchor = ""
        self.leader = self.member = None
        self._early.clear()
        self._invite_at = None
        self._entered = False
        self._announced = {}

    def _sends(self, sends: list[Out]) -> list[Event]:
        """Notes for the key schedule's sends (to the pids' addresses): pairwise, or one
        shared upload."""
        roster = None if self.member is None else self.member.roster
        entries = {} if roster is None else {p.pid: p.address for p in roster.participants}
        if self.leader is not None:
            entries.update({p.pid: p.address for p in self.leader.participants})
        out: list[Event] = []
        for s in sends:
            if isinstance(s, Send):
                out += [Note(entries[s.to], s.message)] if s.to in entries else []
            else:
                to = tuple(sorted({entries[pid] for pid in s.to if pid in entries}))
                out += [SharedNote(to, s.message)] if to else []
        return out

    def _pid_of(self, address: str, device: int) -> int | None:
        """The pid of ``address``'s ``device`` in the meeting (leader's list or roster)."""
        entries: tuple[RosterEntry, ...] = ()
        if self.leader is not None:
            entries = self.leader.participants
        elif self.member is not None and self.member.roster is not None:
            entries = self.member.roster.participants
        for entry in entries:
            if (entry.address, entry.device) == (address, device):
                return entry.pid
        return None

    def _after(self, now: int) -> list[Event]:
        """Room entry once there is a send epoch; roster changes; epochs counted."""
        out: list[Event] = []
        member = self.member
        if member is None or self.meeting is None or self.room is None:
            return out
        if member.latest_epoch is not None:
            self.epochs.add(member.latest_epoch)
        if not self._entered and member.send_epoch is not None:
            self._entered = True
            host = self.leader is not None
            out.append(EnterRoom(self.meeting, self.room, host, member, self.anchor))
        now_in = self.participants
        self.most_participants = max(self.most_participants, len(now_in))
        joined = tuple(sorted((p, a) for p, a in now_in.items() if p not in self._announced))
        left = tuple(sorted((p, a) for p, a in self._announced.items() if p not in now_in))
        if joined or left:
            self._announced = dict(now_in)
            out.append(Roster(joined, left))
        return out


def _anchor(anchor: str, me: str) -> str:
    """The domain of ``anchor`` (an address or a domain) unless it is ``me``'s: empty."""
    theirs = anchor.rpartition("@")[2].lower()
    return "" if theirs == me.rpartition("@")[2].lower() else theirs
