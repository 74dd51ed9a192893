"""Call signalling formats (DESIGN section 9; issue 17): end to end only.

A 1:1 call is set up with ordinary end-to-end messages over the pairwise ratchet sessions,
so no node reads them; like the group formats (``wire.group``) they live here because they
are protocol, and :class:`LegRef` is also what a client hands its own node to bridge to the
other side's leg. Every signal names its call by a random, pseudonymous :data:`CallId`.

    CallOffer      caller -> callee   call id, the 32-byte call secret (the media keys are
                                      derived from it: ``client.calls.keys``), audio or video,
                                      the caller's clock when sent and when ringing ends
    CallRinging    callee -> caller   a device of the callee received the offer and rings
    CallAnswer     callee -> caller   accepted; ``leg`` is the leg the callee's node
                                      allocated (domain + opaque leg id), for the caller's
                                      node to bridge to
    CallReject     callee -> caller   declined (or the callee could not set up media)
    CallBusy       callee -> caller   the callee is in another call
    CallHangup     either side        the call is over (or, before an answer, withdrawn)
    CallKeyUpdate  either side        the sender's media moved to key epoch ``epoch``

``CallRinging`` is what tells a callee that is offline (the offer waits in its mailbox)
from one that does not answer. :func:`decode_signal` raises only
:class:`wire.errors.WireError`.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final, TypeAlias

from wire.codec import decode
from wire.relay_common import Domain
from wire.schema import message
from wire.types import U32, U64, Bytes16, Bytes32

CALL_ID_LEN: Final = 16
"""Bytes of a call id (random; it names the call only to its two parties)."""
LEG_ID_LEN: Final = 16
"""Bytes of a leg id (random, opaque; chosen by the node that allocated the leg)."""
CALL_SECRET_LEN: Final = 32
"""Bytes of the random call secret carried in an offer (the one home of this bound)."""
MAX_RING_MS: Final = 300_000
"""Longest ring an offer may ask for, in ms (``expires_ms - sent_ms``)."""

CallId: TypeAlias = Bytes16
LegId: TypeAlias = Bytes16


class RejectReason(IntEnum):
    """Why a callee refused an offer (``CallReject.reason``)."""

    DECLINED = 1
    """The user declined."""
    UNAVAILABLE = 2
    """The callee's device could not set up media (no leg from its node, no transport)."""


@message("call.leg")
class LegRef:
    """A call leg on a node: the node's ``domain`` and the ``leg_id`` it allocated."""

    domain: Domain
    leg_id: LegId

    def __post_init__(self) -> None:
        if not self.domain:
            raise ValueError("a leg names its node's domain")


@message("call.offer")
class CallOffer:
    """An invitation to call. ``sent_ms`` and ``expires_ms`` are the caller's clock (Unix
    ms); the callee rings until ``expires_ms`` at most, for at most ``expires_ms -
    sent_ms`` (a positive span of at most :data:`MAX_RING_MS`)."""

    call_id: CallId
    call_secret: Bytes32
    video: bool
    sent_ms: U64
    expires_ms: U64

    def __post_init__(self) -> None:
        if not 0 < self.expires_ms - self.sent_ms <= MAX_RING_MS:
            raise ValueError(f"an offer rings for 1 to {MAX_RING_MS} ms")

    def __repr__(self) -> str:
        """Everything but the call secret, so that a logged offer shows no key."""
        return (
            f"CallOffer(call_id={self.call_id.hex()}, video={self.video}, "
            f"sent_ms={self.sent_ms}, expires_ms={self.expires_ms})"
        )


@message("call.ringing")
class CallRinging:
    """A device of the callee received the offer and is ringing."""

    call_id: CallId


@message("call.answer")
class CallAnswer:
    """The callee accepted; ``leg`` is its leg, for the caller's node to bridge to."""

    call_id: CallId
    leg: LegRef


@message("call.reject")
class CallReject:
    """The callee refused the offer."""

    call_id: CallId
    reason: RejectReason


@message("call.busy")
class CallBusy:
    """The callee is in another call."""

    call_id: CallId


@message("call.hangup")
class CallHangup:
    """The sender ended the call (or, before it was answered, withdrew the offer)."""

    call_id: CallId


@message("call.key-update")
class CallKeyUpdate:
    """The sender's media keys moved to ``epoch`` (``client.calls.keys``)."""

    call_id: CallId
    epoch: U32


CallSignal: TypeAlias = (
    CallOffer | CallRinging | CallAnswer | CallReject | CallBusy | CallHangup | CallKeyUpdate
)
SIGNAL_TYPES: Final[tuple[type, ...]] = (
    CallOffer,
    CallRinging,
    CallAnswer,
    CallReject,
    CallBusy,
    CallHangup,
    CallKeyUpdate,
)


def decode_signal(data: bytes) -> CallSignal:
    """The call signal encoded in ``data``; :class:`~wire.errors.WireError` otherwise."""
    signal: CallSignal = decode(data, SIGNAL_TYPES)  # type: ignore[assignment]
    return signal
