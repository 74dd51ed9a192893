"""One call's signalling state machine (issue 17, DESIGN section 9): pure, no I/O.

The signals are ``wire.calls`` messages carried end to end (``client.content.CallNote``).
Inputs are the peer's signals and the local user's and shell's reports; outputs are
``client.calls.signal_events`` events for the shell to perform. Time is ``now_ms`` (Unix
ms) on every input and randomness (call id, call secret) comes from the caller of
:meth:`Call.dial`; nothing here reads a clock or a random source.

Every transition is a row of ``client.calls.signal_table.TRANSITIONS``, keyed by (role,
state, input)::

    caller  IDLE -dial-> DIALING -ringing-> RINGING -answer-> CONNECTING -connected-> ACTIVE
    callee  IDLE -offer-> RINGING -accept-> ANSWERING -leg ready-> ACTIVE
    either  ... -> ENDED (reject, busy, hang-up, timeout, failure, untrusted identity)

An input with no row is ignored and counted (``ignored``), as is a signal from anyone but
the peer or one for an ended call: duplicate, late and out-of-order messages never raise.

Timers: the caller's ring ends ``ring_timeout_ms`` after dialing (``call.offline`` if no
device of the callee rang, ``call.missed`` if one did); the callee rings until the offer's
``expires_ms``, for at most the offer's span and its own ring timeout; an accepted call has
``setup_timeout_ms`` to get its media up (``call.failed``). A deadline is reached when
``now_ms >= deadline``; every input first applies a deadline it finds passed.

Identity: the shell says whether the peer's identity key is accepted (``client.sendpath``
raises ``UntrustedIdentity`` for messages); a call with an unaccepted peer ends at once as
``call.untrusted_identity``, and so does a live call whose signal could not be sent for
that reason.
"""

from __future__ import annotations

from collections import Counter
from typing import Final

from client.calls.keys import CallSecret
from client.calls.signal_events import (
    AllocateLeg,
    Answered,
    CallConfig,
    CallState,
    Ended,
    EndReason,
    Event,
    IgnoreReason,
    PeerKeyEpoch,
    Ringing,
    Role,
    SendSignal,
    StartMedia,
    StopMedia,
)
from client.calls.signal_table import HANG_UP_AGAIN, TRANSITIONS, Input, Reply, Step
from wire.calls import (
    CallAnswer,
    CallBusy,
    CallHangup,
    CallKeyUpdate,
    CallOffer,
    CallReject,
    CallRinging,
    CallSignal,
    LegRef,
    RejectReason,
)

S = CallState

_SIGNAL_INPUTS: Final[dict[type, Input]] = {
    CallRinging: Input.RINGING,
    CallAnswer: Input.ANSWER,
    CallBusy: Input.BUSY,
    CallHangup: Input.HANGUP,
    CallKeyUpdate: Input.KEY_UPDATE,
}


def same_address(a: str, b: str) -> bool:
    """Whether two addresses name one account: the local part exactly, the domain in any
    case (as ``client.receive`` compares domains)."""
    local_a, _, domain_a = a.rpartition("@")
    local_b, _, domain_b = b.rpartition("@")
    return local_a == local_b and domain_a.lower() == domain_b.lower()


def ring_deadline(offer: CallOffer, now_ms: int, config: CallConfig) -> int:
    """When the callee stops ringing: at the offer's ``expires_ms``, and at most its span
    (``expires_ms - sent_ms``) and the callee's own ring timeout after receipt (so a
    caller's clock ahead of ours cannot ring us longer)."""
    span = min(offer.expires_ms - offer.sent_ms, config.ring_timeout_ms)
    return min(offer.expires_ms, now_ms + span)


class Call:
    """One call as this device sees it. Create with :meth:`dial` or :meth:`incoming`;
    every method takes ``now_ms`` and returns the events to perform, in order."""

    def __init__(
        self,
        call_id: bytes,
        peer: str,
        role: Role,
        secret: CallSecret,
        video: bool,
        config: CallConfig,
    ) -> None:
        self.call_id, self.peer, self.role, self.config = call_id, peer, role, config
        self.secret, self.video = secret, video
        self.state = CallState.IDLE
        self.reason: EndReason | None = None
        self.deadline_ms: int | None = None
        self.leg: LegRef | None = None
        self.media = False
        self.peer_epoch = -1
        self.own_epoch = 0
        self.replaced_by: bytes | None = None
        self.ignored: Counter[IgnoreReason] = Counter()

    # -- creation --------------------------------------------------------------------------

    @classmethod
    def dial(
        cls,
        offer: CallOffer,
        peer: str,
        *,
        identity_accepted: bool,
        config: CallConfig,
    ) -> tuple[Call, list[Event]]:
        """An outgoing call made of ``offer`` (its ``sent_ms`` is now)."""
        call = cls(offer.call_id, peer, Role.CALLER, _secret(offer), offer.video, config)
        kind = Input.DIAL if identity_accepted else Input.DIAL_UNTRUSTED
        events = call._apply(kind, offer.sent_ms)
        if call.state is S.DIALING:
            call.deadline_ms = offer.expires_ms
            events.insert(0, SendSignal(peer, offer))
        return call, events

    @classmethod
    def incoming(
        cls,
        sender: str,
        offer: CallOffer,
        now_ms: int,
        *,
        identity_accepted: bool,
        busy: bool,
        config: CallConfig,
    ) -> tuple[Call, list[Event]]:
        """An incoming call made of ``offer`` from ``sender``."""
        call = cls(offer.call_id, sender, Role.CALLEE, _secret(offer), offer.video, config)
        deadline = ring_deadline(offer, now_ms, config)
        if not identity_accepted:
            kind = Input.OFFER_UNTRUSTED
        elif now_ms >= deadline:
            kind = Input.OFFER_EXPIRED
        else:
            kind = Input.OFFER_BUSY if busy else Input.OFFER
        events = call._apply(kind, now_ms)
        if call.state is S.RINGING:
            call.deadline_ms = deadline
            events = [SendSignal(sender, CallRinging(offer.call_id)), *events]
        return call, events

    # -- inputs ----------------------------------------------------------------------------

    def receive(self, sender: str, signal: CallSignal, now_ms: int) -> list[Event]:
        """A signal of this call from ``sender``."""
        events = self.tick(now_ms)
        if signal.call_id != self.call_id:
            return self._ignore(IgnoreReason.UNKNOWN_CALL, events)
        if not same_address(sender, self.peer):
            return self._ignore(IgnoreReason.WRONG_SENDER, events)
        if isinstance(signal, CallOffer):
            return self._ignore(IgnoreReason.DUPLICATE, events)
        if isinstance(signal, CallReject):
            kind = Input.REJECT
            if signal.reason is RejectReason.UNAVAILABLE:
                kind = Input.REJECT_UNAVAILABLE
            return events + self._apply(kind, now_ms)
        kind = _SIGNAL_INPUTS[type(signal)]
        if isinstance(signal, CallAnswer):
            return events + self._apply(kind, now_ms, leg=signal.leg)
        if isinstance(signal, CallKeyUpdate):
            return events + self._apply(kind, now_ms, epoch=signal.epoch)
        return events + self._apply(kind, now_ms)

    def accept(self, now_ms: int) -> list[Event]:
        """(callee) The user answers."""
        return self.tick(now_ms) + self._apply(Input.ACCEPT, now_ms)

    def decline(self, now_ms: int) -> list[Event]:
        """(callee) The user declines."""
        return self.tick(now_ms) + self._apply(Input.DECLINE, now_ms)

    def hangup(self, now_ms: int) -> list[Event]:
        """The user hangs up (a ringing callee declines)."""
        return self.tick(now_ms) + self._apply(Input.HANGUP_LOCAL, now_ms)

    def leg_ready(self, leg: LegRef, now_ms: int) -> list[Event]:
        """(callee) The node allocated ``leg``."""
        return self.tick(now_ms) + self._apply(Input.LEG_READY, now_ms, leg=leg)

    def leg_failed(self, now_ms: int) -> list[Event]:
        """(callee) The node gave no leg."""
        return self.tick(now_ms) + self._apply(Input.LEG_FAILED, now_ms)

    def connected(self, now_ms: int) -> list[Event]:
        """(caller) The bridge is up and media flows."""
        return self.tick(now_ms) + self._apply(Input.CONNECTED, now_ms)

    def media_failed(self, now_ms: int) -> list[Event]:
        """The media leg, bridge or transport failed."""
        return self.tick(now_ms) + self._apply(Input.MEDIA_FAILED, now_ms)

    def send_failed(self, now_ms: int, *, untrusted: bool) -> list[Event]:
        """A signal of this call could not be sent; ``untrusted`` if the send path refused
        it because the peer's identity change is not accepted."""
        kind = Input.SEND_UNTRUSTED if untrusted else Input.SEND_FAILED
        return self.tick(now_ms) + self._apply(kind, now_ms)

    def rekey(self, epoch: int, now_ms: int) -> list[Event]:
        """Our media moved to key ``epoch``: tell the peer."""
        return self.tick(now_ms) + self._apply(Input.REKEY, now_ms, epoch=epoch)

    def give_way(self, replaced_by: bytes, now_ms: int) -> list[Event]:
        """(caller) The peer called us at the same time and its call won the tie-break
        (``client.calls.signal_registry``): withdraw ours."""
        events = self.tick(now_ms)
        if self.state in (S.DIALING, S.RINGING):
            self.replaced_by = replaced_by
        return events + self._apply(Input.GLARE, now_ms)

    def tick(self, now_ms: int) -> list[Event]:
        """Apply the state's deadline if ``now_ms`` reached it."""
        if self.deadline_ms is None or now_ms < self.deadline_ms:
            return []
        return self._apply(Input.TIMEOUT, now_ms)

    @property
    def live(self) -> bool:
        """Whether the call has not ended."""
        return self.state is not S.ENDED

    # -- the table -------------------------------------------------------------------------

    def _apply(
        self, kind: Input, now_ms: int, *, leg: LegRef | None = None, epoch: int = 0
    ) -> list[Event]:
        step = TRANSITIONS.get((self.role, self.state, kind))
        if step is None:
            late = self.state is S.ENDED
            ignored = self._ignore(IgnoreReason.LATE if late else IgnoreReason.UNEXPECTED, [])
            if late and kind in HANG_UP_AGAIN:
                return [SendSignal(self.peer, CallHangup(self.call_id))]
            return ignored
        if kind is Input.KEY_UPDATE and epoch <= self.peer_epoch:
            return self._ignore(IgnoreReason.STALE_EPOCH, [])
        if kind is Input.REKEY and epoch <= self.own_epoch:
            return self._ignore(IgnoreReason.STALE_EPOCH, [])
        events = self._effects(kind, now_ms, leg, epoch)
        if step.to is not self.state:
            self.deadline_ms = self._deadline(step.to, now_ms)
        self.state = step.to
        if step.reason is not None:
            events += self._finish(step)
        return events

    def _effects(self, kind: Input, now_ms: int, leg: LegRef | None, epoch: int) -> list[Event]:
        """The events of a non-ending input (before the state changes)."""
        cid, peer = self.call_id, self.peer
        if kind is Input.OFFER or kind is Input.RINGING:
            return [Ringing(cid, peer, self.role, self.video)]
        if kind is Input.ACCEPT:
            return [AllocateLeg(cid)]
        if kind is Input.ANSWER and leg is not None:
            self.leg, self.media = leg, True
            return [StartMedia(cid, self.secret, leg, self.role.send_direction, self.video)]
        if kind is Input.LEG_READY and leg is not None:
            self.leg, self.media = leg, True
            start = StartMedia(cid, self.secret, leg, self.role.send_direction, self.video)
            return [SendSignal(peer, CallAnswer(cid, leg)), start, Answered(cid, peer)]
        if kind is Input.CONNECTED:
            return [Answered(cid, peer)]
        if kind is Input.KEY_UPDATE:
            self.peer_epoch = epoch
            return [PeerKeyEpoch(cid, epoch)]
        if kind is Input.REKEY:
            self.own_epoch = epoch
            return [SendSignal(peer, CallKeyUpdate(cid, epoch))]
        return []

    def _deadline(self, state: CallState, now_ms: int) -> int | None:
        """The deadline on entering ``state`` (the caller's ring keeps its dial deadline)."""
        if state is S.CONNECTING or state is S.ANSWERING:
            return now_ms + self.config.setup_timeout_ms
        if state is S.RINGING and self.role is Role.CALLER:
            return self.deadline_ms
        return None

    def _finish(self, step: Step) -> list[Event]:
        assert step.reason is not None  # noqa: S101 - only ending rows call this
        self.reason, self.deadline_ms = step.reason, None
        events: list[Event] = []
        if step.reply is not None:
            events.append(SendSignal(self.peer, _reply(step.reply, self.call_id)))
        if self.media:
            self.media = False
            events.append(StopMedia(self.call_id))
        events.append(Ended(self.call_id, self.peer, step.reason, self.replaced_by))
        return events

    def _ignore(self, why: IgnoreReason, events: list[Event]) -> list[Event]:
        self.ignored[why] += 1
        return events


def _secret(offer: CallOffer) -> CallSecret:
    return CallSecret.from_bytes(offer.call_secret)


def _reply(reply: Reply, call_id: bytes) -> CallSignal:
    if reply is Reply.BUSY:
        return CallBusy(call_id)
    if reply is Reply.DECLINE:
        return CallReject(call_id, RejectReason.DECLINED)
    if reply is Reply.UNAVAILABLE:
        return CallReject(call_id, RejectReason.UNAVAILABLE)
    return CallHangup(call_id)
