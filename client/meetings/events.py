"""What :class:`~client.meetings.group.GroupMeeting` gives out and takes in (issue 18,
"meetings of sealrelay groups"): its phase, the notes to send, the events for the media side
and the JSON lines, and this device's identity. ``client.meetings.group`` re-exports them.
Pure."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from client.content import MeetingSignal
from client.meetings.keys import MeetingMember
from client.meetings.roster import Signer, Verify, key_fingerprint
from wire.meeting import SealedRoster


class Phase(Enum):
    """Where this device is: ``IDLE`` (not started, or left), ``REQUESTED`` (asked a leader
    to join; no epoch yet) or ``IN`` (a participant, the leader too)."""

    IDLE = "idle"
    REQUESTED = "requested"
    IN = "in"


@dataclass(frozen=True)
class Note:
    """Send ``signal`` to ``to`` (an address) over the pairwise sessions."""

    to: str
    signal: MeetingSignal


@dataclass(frozen=True)
class SharedNote:
    """Send ``signal`` once to every one of ``to`` (addresses): one shared upload."""

    to: tuple[str, ...]
    signal: SealedRoster


@dataclass(frozen=True)
class EnterRoom:
    """Join room ``room`` on the node and start media with ``member``'s keys (this device
    holds a send epoch)."""

    meeting: bytes
    room: bytes
    host: bool
    member: MeetingMember
    anchor: str = ""
    """The domain of the node that holds the room (the inviting host's) when it is not
    this device's: its own node joins the room there (``MeetingJoinAt``, a cascade)."""


@dataclass(frozen=True)
class LeaveRoom:
    """Stop media in room ``room`` (this device left that meeting for another)."""

    room: bytes


@dataclass(frozen=True)
class Roster:
    """The participants changed: ``joined`` and ``left`` as (pid, address)."""

    joined: tuple[tuple[int, str], ...]
    left: tuple[tuple[int, str], ...]


@dataclass(frozen=True)
class Leading:
    """This device took over as key leader (the previous one left)."""

    meeting: bytes


Event = Note | SharedNote | EnterRoom | LeaveRoom | Roster | Leading


@dataclass(frozen=True)
class Me:
    """This device: address, device id, identity signing key and what signs with it."""

    address: str
    device: int
    key: bytes
    signer: Signer
    verify: Verify

    @property
    def fp(self) -> bytes:
        return key_fingerprint(self.key)
