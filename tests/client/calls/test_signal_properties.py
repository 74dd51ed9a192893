"""Random event sequences against a device's calls (hypothesis state machine): whatever
arrives, in whatever order, from whomever, no exception escapes and every call stays in a
state of the table, with the bookkeeping that state implies."""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from client.calls.signal import Call
from client.calls.signal_events import (
    CallConfig,
    CallState,
    Ended,
    Event,
    Role,
    SendSignal,
    StartMedia,
    StopMedia,
)
from client.calls.signal_registry import CallRegistry
from client.calls.signal_table import STATES
from tests.client.calls.signalkit import ALICE, BOB, MALLORY, T0, Randomness
from wire.calls import (
    MAX_RING_MS,
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
PEERS = st.sampled_from([BOB, MALLORY, "Bob@B.EXAMPLE", "carol@c.example"])
LEG = LegRef("b.example", b"\x0b" * 16)
FIXED_IDS = [b"\x00" * 16, b"\x80" * 16, b"\xff" * 16]
TRUSTED = st.sampled_from([True, True, True, False])
WAITING = {S.DIALING, S.RINGING, S.ANSWERING, S.CONNECTING}


class Calls(RuleBasedStateMachine):
    """One device (ALICE) whose registry gets random user actions, shell reports, signals
    and clock moves."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = CallRegistry(Randomness(b"p"), CallConfig(10_000, 5_000), max_ended=4)
        self.now = T0
        self.media: set[bytes] = set()
        self.ended: set[bytes] = set()

    def _ids(self) -> list[bytes]:
        return [c.call_id for c in self.calls] + FIXED_IDS

    def _step(self, act: Callable[[], list[Event]]) -> None:
        """Run one input and check its events; an id the registry had forgotten may come
        back as a new call (a new offer), which may end again."""
        before = {c.call_id for c in self.calls}
        events = act()
        self.ended -= {c.call_id for c in self.calls} - before
        self._check(events)

    def _check(self, events: list[Event]) -> None:
        for e in events:
            if isinstance(e, StartMedia):
                assert e.call_id not in self.media
                self.media.add(e.call_id)
            elif isinstance(e, StopMedia):
                self.media.remove(e.call_id)
            elif isinstance(e, Ended):
                assert e.call_id not in self.ended
                assert e.call_id not in self.media  # media stops before the end
                self.ended.add(e.call_id)
            elif isinstance(e, SendSignal):
                assert e.to != ALICE

    @rule(peer=PEERS, video=st.booleans(), trusted=TRUSTED)
    def dial(self, peer: str, video: bool, trusted: bool) -> None:
        self._step(lambda: self.calls.dial(peer, video, self.now, identity_accepted=trusted)[1])

    @rule(
        sender=PEERS,
        pick=st.integers(0, 50),
        kind=st.sampled_from(
            [CallRinging, CallAnswer, CallReject, CallBusy, CallHangup, CallKeyUpdate]
        ),
        n=st.integers(0, 3),
        trusted=TRUSTED,
    )
    def signal(self, sender: str, pick: int, kind: type, n: int, trusted: bool) -> None:
        calls = list(self.calls)
        if calls and pick % 5:  # mostly a signal of a call we hold, from its peer
            call = calls[pick % len(calls)]
            cid, sender = call.call_id, (sender if pick % 7 == 0 else call.peer)
        else:
            cid = FIXED_IDS[pick % len(FIXED_IDS)]
        signal: CallSignal
        if kind is CallAnswer:
            signal = CallAnswer(cid, LEG)
        elif kind is CallReject:
            signal = CallReject(cid, list(RejectReason)[n % 2])
        elif kind is CallKeyUpdate:
            signal = CallKeyUpdate(cid, n)
        else:
            signal = kind(cid)
        self._step(lambda: self.calls.receive(sender, signal, self.now, identity_accepted=trusted))

    @rule(
        sender=PEERS,
        pick=st.integers(0, 50),
        skew=st.integers(-MAX_RING_MS, MAX_RING_MS) | st.just(0),
        span=st.integers(1, MAX_RING_MS) | st.just(45_000),
        trusted=TRUSTED,
    )
    def offer(self, sender: str, pick: int, skew: int, span: int, trusted: bool) -> None:
        ids = self._ids()
        cid = ids[pick % len(ids)] if pick % 3 else Randomness(bytes([pick]))(16)
        sent = self.now + skew
        o = CallOffer(cid, b"\x01" * 32, False, sent, sent + span)
        self._step(lambda: self.calls.receive(sender, o, self.now, identity_accepted=trusted))

    @rule(pick=st.integers(0, 50), action=st.integers(0, 8), untrusted=st.booleans())
    def local(self, pick: int, action: int, untrusted: bool) -> None:
        calls = list(self.calls)
        if not calls:
            return
        call = calls[pick % len(calls)]
        acts = [
            lambda: call.accept(self.now),
            lambda: call.decline(self.now),
            lambda: call.hangup(self.now),
            lambda: call.leg_ready(LEG, self.now),
            lambda: call.leg_failed(self.now),
            lambda: call.connected(self.now),
            lambda: call.media_failed(self.now),
            lambda: call.send_failed(self.now, untrusted=untrusted),
            lambda: call.rekey(pick % 4, self.now),
        ]
        self._step(acts[action])

    @rule(ms=st.integers(0, 20_000))
    def wait(self, ms: int) -> None:
        self.now += ms
        self._step(lambda: self.calls.tick(self.now))

    @invariant()
    def every_call_is_in_a_state_of_its_role(self) -> None:
        for call in self.calls:
            _consistent(call, self.now)

    @invariant()
    def at_most_one_incoming_call_is_live(self) -> None:
        incoming = [c for c in self.calls.live() if c.role is Role.CALLEE]
        assert len(incoming) <= 1

    @invariant()
    def media_runs_only_for_live_calls(self) -> None:
        live = {c.call_id for c in self.calls.live()}
        assert self.media <= live


def _consistent(call: Call, now: int) -> None:
    assert call.state in STATES[call.role]
    assert call.state is not S.IDLE
    assert (call.state is S.ENDED) == (call.reason is not None)
    assert (call.deadline_ms is not None) == (call.state in WAITING)
    if call.deadline_ms is not None:
        assert call.deadline_ms > now - 20_001  # a passed deadline fires at the next input
    if call.replaced_by is not None:
        assert call.reason is not None


TestCalls = Calls.TestCase
TestCalls.settings = settings(
    max_examples=150,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
