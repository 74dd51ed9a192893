"""The calls of one device, by call id (issue 17): routing, busy and glare. Pure, no I/O.

:class:`CallRegistry` creates calls (:meth:`~CallRegistry.dial`, or an incoming offer in
:meth:`~CallRegistry.receive`), routes every signal to its call by call id, and keeps ended
calls for a while (at most ``max_ended``) so that late signals for them are told from
signals for calls never seen; both are ignored and counted.

Busy: an offer that arrives while another call is live (not ended) ends at once as
``call.busy`` and answers the caller with ``CallBusy``.

Glare: when a live offer (not expired, from an accepted identity) comes from a peer we are
ourselves dialing (our call still DIALING or RINGING), both devices decide the same way:
the call with the smaller call id (compared as bytes) goes on. If it is the peer's, our
call gives way (``call.glare``, a ``CallHangup`` withdraws it) and the peer's call is
accepted at once, since we asked to talk to that peer; if it is ours, the peer's offer is
ignored (counted as ``glare``) and the peer, deciding the same, answers ours.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from typing import Final

from client.calls.signal import Call, ring_deadline, same_address
from client.calls.signal_events import CallConfig, CallState, Event, IgnoreReason, Role
from wire.calls import CALL_ID_LEN, CALL_SECRET_LEN, CallOffer, CallSignal

MAX_ENDED: Final = 64
"""Ended calls kept to recognise their late signals (the oldest are forgotten first)."""


class CallRegistry:
    """Every call of this device. ``random_bytes`` draws call ids and call secrets
    (``os.urandom`` outside tests)."""

    def __init__(
        self,
        random_bytes: Callable[[int], bytes],
        config: CallConfig | None = None,
        max_ended: int = MAX_ENDED,
    ) -> None:
        self._random_bytes = random_bytes
        self.config = config or CallConfig()
        self._max_ended = max_ended
        self._calls: dict[bytes, Call] = {}
        self._ignored: Counter[IgnoreReason] = Counter()

    def dial(
        self, peer: str, video: bool, now_ms: int, *, identity_accepted: bool
    ) -> tuple[Call, list[Event]]:
        """Call ``peer``; ``identity_accepted`` is whether the user accepted the peer's
        current identity key (if not, the call ends as ``call.untrusted_identity``)."""
        events = self.tick(now_ms)
        offer = CallOffer(
            call_id=self._random_bytes(CALL_ID_LEN),
            call_secret=self._random_bytes(CALL_SECRET_LEN),
            video=video,
            sent_ms=now_ms,
            expires_ms=now_ms + self.config.ring_timeout_ms,
        )
        call, more = Call.dial(offer, peer, identity_accepted=identity_accepted, config=self.config)
        self._calls[call.call_id] = call
        self._prune()
        return call, events + more

    def receive(
        self, sender: str, signal: CallSignal, now_ms: int, *, identity_accepted: bool
    ) -> list[Event]:
        """A signal from ``sender``; ``identity_accepted`` as in :meth:`dial`."""
        events = self.tick(now_ms)
        call = self._calls.get(signal.call_id)
        if call is not None:
            events += call.receive(sender, signal, now_ms)
        elif isinstance(signal, CallOffer):
            events += self._offer(sender, signal, now_ms, identity_accepted)
        else:
            self._ignored[IgnoreReason.UNKNOWN_CALL] += 1
        self._prune()
        return events

    def tick(self, now_ms: int) -> list[Event]:
        """Apply every deadline ``now_ms`` reached."""
        events: list[Event] = []
        for call in list(self._calls.values()):
            events += call.tick(now_ms)
        return events

    def next_deadline(self) -> int | None:
        """The earliest deadline of a live call (ms), for the shell to wake up at."""
        deadlines = [c.deadline_ms for c in self._calls.values() if c.deadline_ms is not None]
        return min(deadlines, default=None)

    def get(self, call_id: bytes) -> Call | None:
        """The call ``call_id`` (live, or ended not long ago)."""
        return self._calls.get(call_id)

    def __iter__(self) -> Iterator[Call]:
        return iter(list(self._calls.values()))

    def live(self) -> list[Call]:
        """The calls that have not ended."""
        return [c for c in self._calls.values() if c.live]

    @property
    def ignored(self) -> Counter[IgnoreReason]:
        """Inputs ignored, by reason: the registry's own and those of the calls it holds."""
        total = Counter(self._ignored)
        for call in self._calls.values():
            total.update(call.ignored)
        return total

    def _offer(
        self, sender: str, offer: CallOffer, now_ms: int, identity_accepted: bool
    ) -> list[Event]:
        events: list[Event] = []
        ours = self._dialing(sender)
        ringable = now_ms < ring_deadline(offer, now_ms, self.config)
        if ours is not None and identity_accepted and ringable:
            if ours.call_id < offer.call_id:
                self._ignored[IgnoreReason.GLARE] += 1
                return events
            events += ours.give_way(offer.call_id, now_ms)
        busy = bool(self.live())
        call, more = Call.incoming(
            sender,
            offer,
            now_ms,
            identity_accepted=identity_accepted,
            busy=busy,
            config=self.config,
        )
        self._calls[call.call_id] = call
        events += more
        if ours is not None and not ours.live and call.state is CallState.RINGING:
            events += call.accept(now_ms)
        return events

    def _dialing(self, peer: str) -> Call | None:
        """Our outgoing call to ``peer`` that is not answered yet, if any."""
        for call in self._calls.values():
            unanswered = call.state in (CallState.DIALING, CallState.RINGING)
            if call.role is Role.CALLER and unanswered and same_address(call.peer, peer):
                return call
        return None

    def _prune(self) -> None:
        """Forget the oldest ended calls beyond ``max_ended``."""
        ended = [cid for cid, c in self._calls.items() if not c.live]
        for cid in ended[: max(0, len(ended) - self._max_ended)]:
            del self._calls[cid]
