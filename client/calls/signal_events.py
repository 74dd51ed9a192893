"""What the call signalling core (``client.calls.signal``) reports and asks for.

End results are stable codes, defined here and nowhere else. They are client-side outcomes
(no node ever sees a call's signalling), so they live in the client's calls package rather
than in ``trust.errors``, the home of codes that nodes and clients share:

    call.missed              rang out: the callee did not answer within the ring timeout
                             (on the callee's side, an offer whose ring had expired)
    call.offline             no device of the callee rang within the ring timeout, or the
                             offer could not be sent
    call.rejected            the callee declined
    call.busy                the callee was in another call (or we were: automatic Busy)
    call.hangup              either side hung up
    call.untrusted_identity  the peer's identity key changed and the user has not accepted
                             it: the call is refused, as a message would be
    call.failed              media could not be set up (no leg, no bridge, no transport)
    call.glare               both sides called each other at once; this call gave way to
                             the other one (``Ended.replaced_by``)

Events are instructions for the shell that drives the core; it performs them in order.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import Final, TypeAlias

from client.calls.keys import CallSecret, Direction
from wire.calls import CallSignal, LegRef

RING_TIMEOUT_MS: Final = 45_000
"""Default ring timeout (issue 17): an unanswered call ends as ``call.missed``."""
SETUP_TIMEOUT_MS: Final = 15_000
"""How long an accepted call may take to get its media leg and bridge, ms."""


class EndReason(StrEnum):
    """Why a call ended; the value is the stable code."""

    MISSED = "call.missed"
    OFFLINE = "call.offline"
    REJECTED = "call.rejected"
    BUSY = "call.busy"
    HANGUP = "call.hangup"
    UNTRUSTED_IDENTITY = "call.untrusted_identity"
    FAILED = "call.failed"
    GLARE = "call.glare"


class IgnoreReason(StrEnum):
    """Why an input was ignored (counted, never raised)."""

    UNKNOWN_CALL = "unknown_call"
    """A signal for a call id this device does not know."""
    DUPLICATE = "duplicate"
    """A second offer for a known call id."""
    WRONG_SENDER = "wrong_sender"
    """A signal from someone other than the call's peer."""
    UNEXPECTED = "unexpected"
    """An input the transition table does not allow in the call's state (out of order,
    repeated, or from the wrong role)."""
    LATE = "late"
    """An input for a call that has ended."""
    STALE_EPOCH = "stale_epoch"
    """A key update that does not move the epoch forward."""
    GLARE = "glare"
    """The peer's offer, lost to our own call by the tie-break."""


class Role(Enum):
    """Which side of the call this device is."""

    CALLER = "caller"
    CALLEE = "callee"

    @property
    def send_direction(self) -> Direction:
        """The direction of the media this side sends (``client.calls.keys``)."""
        return Direction.CALLER_TO_CALLEE if self is Role.CALLER else Direction.CALLEE_TO_CALLER


class CallState(Enum):
    """States of one call; ``IDLE`` is the state before the first input."""

    IDLE = "idle"
    DIALING = "dialing"
    RINGING = "ringing"
    ANSWERING = "answering"
    CONNECTING = "connecting"
    ACTIVE = "active"
    ENDED = "ended"


@dataclass(frozen=True, slots=True)
class CallConfig:
    """Timeouts in ms (the defaults are the protocol's)."""

    ring_timeout_ms: int = RING_TIMEOUT_MS
    setup_timeout_ms: int = SETUP_TIMEOUT_MS

    def __post_init__(self) -> None:
        if self.ring_timeout_ms <= 0 or self.setup_timeout_ms <= 0:
            raise ValueError("call timeouts are positive")


@dataclass(frozen=True, slots=True)
class SendSignal:
    """Send ``signal`` to ``to`` (every device of that address) end to end."""

    to: str
    signal: CallSignal


@dataclass(frozen=True, slots=True)
class Ringing:
    """Show the call as ringing: an incoming offer (callee), or the callee's device rings
    (caller)."""

    call_id: bytes
    peer: str
    role: Role
    video: bool


@dataclass(frozen=True, slots=True)
class AllocateLeg:
    """(callee) Ask this device's node for a media leg; answer with ``leg_ready`` or
    ``leg_failed``. A leg that comes after the call ended is released by the shell."""

    call_id: bytes


@dataclass(frozen=True, slots=True)
class StartMedia:
    """Start the call's media: the caller asks its node to bridge to the callee's ``leg``,
    the callee binds its own ``leg``; then each connects to its node and sends in
    ``direction`` with keys from ``secret``."""

    call_id: bytes
    secret: CallSecret
    leg: LegRef
    direction: Direction
    video: bool


@dataclass(frozen=True, slots=True)
class Answered:
    """The call is up (the CLI's "answered" line)."""

    call_id: bytes
    peer: str


@dataclass(frozen=True, slots=True)
class PeerKeyEpoch:
    """The peer's media moved to key ``epoch``: receive with it."""

    call_id: bytes
    epoch: int


@dataclass(frozen=True, slots=True)
class StopMedia:
    """Stop the call's media and release its leg."""

    call_id: bytes


@dataclass(frozen=True, slots=True)
class Ended:
    """The call is over; ``replaced_by`` names the peer's call that won a glare."""

    call_id: bytes
    peer: str
    reason: EndReason
    replaced_by: bytes | None = None


Event: TypeAlias = (
    SendSignal | Ringing | AllocateLeg | StartMedia | Answered | PeerKeyEpoch | StopMedia | Ended
)
