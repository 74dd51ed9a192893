"""The calls of a device (client/calls/signal_registry.py), and two devices calling each
other over an in-memory network: busy, glare, duplicates, reordering, forgetting."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from client.calls.signal_events import (
    AllocateLeg,
    CallConfig,
    CallState,
    Ended,
    EndReason,
    Event,
    IgnoreReason,
    Role,
    SendSignal,
    StartMedia,
)
from client.calls.signal_registry import CallRegistry
from tests.client.calls.signalkit import ALICE, BOB, MALLORY, T0, Randomness, offer
from wire.calls import CallAnswer, CallBusy, CallHangup, CallOffer, CallSignal, LegRef

S = CallState


@dataclass
class Device:
    """One person's device: a registry, and what it was asked to do."""

    address: str
    calls: CallRegistry
    events: list[Event] = field(default_factory=list)

    def take(self, events: list[Event]) -> list[Event]:
        self.events += events
        return events


@dataclass
class Net:
    """Delivers the SendSignal events of two devices to each other, in order by default."""

    devices: dict[str, Device]
    queue: list[tuple[str, str, CallSignal]] = field(default_factory=list)
    now: int = T0

    def collect(self, sender: Device, events: list[Event]) -> None:
        for e in sender.take(events):
            if isinstance(e, SendSignal):
                self.queue.append((sender.address, e.to, e.signal))

    def deliver(self, i: int = 0) -> None:
        frm, to, signal = self.queue.pop(i)
        device = self.devices[to]
        self.collect(device, device.calls.receive(frm, signal, self.now, identity_accepted=True))

    def flush(self) -> None:
        while self.queue:
            self.deliver()

    def run_shells(self) -> None:
        """Perform the shell's part: a leg for each AllocateLeg, a bridge for each
        StartMedia of a caller (every event once)."""
        for device in self.devices.values():
            for e in list(device.events):
                device.events.remove(e)
                call = device.calls.get(getattr(e, "call_id", b""))
                if call is None or not call.live:
                    continue
                if isinstance(e, AllocateLeg):
                    leg = LegRef(device.address.partition("@")[2], call.call_id)
                    self.collect(device, call.leg_ready(leg, self.now))
                elif isinstance(e, StartMedia) and call.role is Role.CALLER:
                    self.collect(device, call.connected(self.now))


def _pair(seed_a: bytes = b"a", seed_b: bytes = b"b") -> tuple[Net, Device, Device]:
    a = Device(ALICE, CallRegistry(Randomness(seed_a)))
    b = Device(BOB, CallRegistry(Randomness(seed_b)))
    return Net({ALICE: a, BOB: b}), a, b


def _ended(device: Device) -> list[Ended]:
    return [e for e in device.events if isinstance(e, Ended)]


def test_a_whole_call_between_two_devices() -> None:
    net, a, b = _pair()
    call, events = a.calls.dial(BOB, True, net.now, identity_accepted=True)
    net.collect(a, events)
    net.flush()
    incoming = b.calls.get(call.call_id)
    assert incoming is not None
    assert incoming.state is S.RINGING
    assert call.state is S.RINGING
    net.collect(b, incoming.accept(net.now))
    net.run_shells()
    net.flush()
    net.run_shells()
    assert call.state is S.ACTIVE
    assert incoming.state is S.ACTIVE
    net.collect(b, incoming.hangup(net.now))
    net.flush()
    assert call.reason is EndReason.HANGUP
    assert incoming.reason is EndReason.HANGUP
    assert a.calls.live() == []
    assert b.calls.live() == []


def test_a_second_incoming_call_gets_busy() -> None:
    b = CallRegistry(Randomness(b"b"))
    first = offer(call_id=b"\x01" * 16)
    b.receive(ALICE, first, T0, identity_accepted=True)
    second = offer(call_id=b"\x02" * 16)
    events = b.receive(MALLORY, second, T0 + 1, identity_accepted=True)
    assert events == [
        SendSignal(MALLORY, CallBusy(second.call_id)),
        Ended(second.call_id, MALLORY, EndReason.BUSY),
    ]
    ringing = b.get(first.call_id)
    assert ringing is not None
    assert ringing.state is S.RINGING
    assert [c.call_id for c in b.live()] == [first.call_id]


def test_busy_while_in_an_active_call_ends_the_callers_call() -> None:
    net, a, b = _pair()
    b.calls.receive(MALLORY, offer(call_id=b"\x07" * 16), T0, identity_accepted=True)
    call, events = a.calls.dial(BOB, False, T0, identity_accepted=True)
    net.collect(a, events)
    net.flush()
    assert call.reason is EndReason.BUSY
    assert _ended(a) == [Ended(call.call_id, BOB, EndReason.BUSY)]


def test_a_call_after_the_first_one_ended_is_not_busy() -> None:
    b = CallRegistry(Randomness(b"b"))
    b.receive(ALICE, offer(call_id=b"\x01" * 16), T0, identity_accepted=True)
    b.receive(ALICE, CallHangup(b"\x01" * 16), T0 + 1, identity_accepted=True)
    b.receive(MALLORY, offer(call_id=b"\x02" * 16, sent=T0 + 2), T0 + 2, identity_accepted=True)
    call = b.get(b"\x02" * 16)
    assert call is not None
    assert call.state is S.RINGING


@pytest.mark.parametrize("seeds", [(b"a", b"b"), (b"b", b"a"), (b"x", b"y"), (b"y", b"x")])
def test_glare_leaves_one_call_chosen_by_the_smaller_call_id(seeds: tuple[bytes, bytes]) -> None:
    net, a, b = _pair(*seeds)
    ours, events_a = a.calls.dial(BOB, False, T0, identity_accepted=True)
    theirs, events_b = b.calls.dial(ALICE, False, T0, identity_accepted=True)
    net.collect(a, events_a)
    net.collect(b, events_b)
    net.flush()  # both offers cross
    net.run_shells()
    net.flush()
    net.run_shells()
    winner, loser = sorted([ours, theirs], key=lambda c: c.call_id)
    assert winner.state is S.ACTIVE
    assert loser.reason is EndReason.GLARE
    assert loser.replaced_by == winner.call_id
    answering = b if winner is ours else a
    accepted = answering.calls.get(winner.call_id)
    assert accepted is not None
    assert accepted.role is Role.CALLEE
    assert accepted.state is S.ACTIVE
    assert [c.call_id for c in a.calls.live()] == [winner.call_id]
    assert [c.call_id for c in b.calls.live()] == [winner.call_id]
    assert (a if winner is ours else b).calls.ignored[IgnoreReason.GLARE] == 1


def test_glare_with_an_unaccepted_identity_refuses_the_offer_and_keeps_ours() -> None:
    a = CallRegistry(Randomness(b"a"))
    ours, _ = a.dial(BOB, False, T0, identity_accepted=True)
    smaller = offer(call_id=b"\x00" * 16)
    events = a.receive(BOB, smaller, T0 + 1, identity_accepted=False)
    assert events == [Ended(smaller.call_id, BOB, EndReason.UNTRUSTED_IDENTITY)]
    assert ours.state is S.DIALING


def test_unknown_call_ids_are_counted() -> None:
    a = CallRegistry(Randomness(b"a"))
    assert a.receive(BOB, CallHangup(b"\x09" * 16), T0, identity_accepted=True) == []
    answer = CallAnswer(b"\x09" * 16, LegRef("b", b"\x00" * 16))
    assert a.receive(BOB, answer, T0, identity_accepted=True) == []
    assert a.ignored[IgnoreReason.UNKNOWN_CALL] == 2


def test_a_duplicate_offer_rings_once() -> None:
    b = CallRegistry(Randomness(b"b"))
    o = offer()
    first = b.receive(ALICE, o, T0, identity_accepted=True)
    assert b.receive(ALICE, o, T0 + 1, identity_accepted=True) == []
    assert len(first) == 2
    assert b.ignored[IgnoreReason.DUPLICATE] == 1
    assert len(b.live()) == 1


def test_an_offer_reusing_a_call_id_of_someone_else_is_ignored() -> None:
    b = CallRegistry(Randomness(b"b"))
    b.receive(ALICE, offer(), T0, identity_accepted=True)
    assert b.receive(MALLORY, offer(), T0 + 1, identity_accepted=True) == []
    assert b.receive(MALLORY, CallHangup(offer().call_id), T0 + 2, identity_accepted=True) == []
    assert b.ignored[IgnoreReason.WRONG_SENDER] == 2
    assert len(b.live()) == 1


def test_ended_calls_are_forgotten_oldest_first() -> None:
    b = CallRegistry(Randomness(b"b"), max_ended=2)
    ids = [bytes([i]) * 16 for i in range(1, 6)]
    for i, cid in enumerate(ids):
        b.receive(ALICE, offer(call_id=cid, sent=T0 + i), T0 + i, identity_accepted=True)
        b.receive(ALICE, CallHangup(cid), T0 + i, identity_accepted=True)
    assert [c.call_id for c in b] == ids[-2:]
    b.receive(ALICE, CallHangup(ids[0]), T0 + 9, identity_accepted=True)
    b.receive(ALICE, CallHangup(ids[-1]), T0 + 9, identity_accepted=True)
    assert b.ignored[IgnoreReason.UNKNOWN_CALL] == 1
    assert b.ignored[IgnoreReason.LATE] == 1


def test_deadlines_and_tick() -> None:
    a = CallRegistry(Randomness(b"a"), CallConfig(ring_timeout_ms=10_000))
    assert a.next_deadline() is None
    first, _ = a.dial(BOB, False, T0, identity_accepted=True)
    second, _ = a.dial(MALLORY, False, T0 + 3_000, identity_accepted=True)
    assert a.next_deadline() == T0 + 10_000
    assert a.tick(T0 + 9_999) == []
    events = a.tick(T0 + 10_000)
    assert events[-1] == Ended(first.call_id, BOB, EndReason.OFFLINE)
    assert a.next_deadline() == T0 + 13_000
    a.tick(T0 + 13_000)
    assert second.reason is EndReason.OFFLINE
    assert a.next_deadline() is None


def test_dial_draws_fresh_ids_and_secrets() -> None:
    a = CallRegistry(Randomness(b"a"))
    one, ev1 = a.dial(BOB, False, T0, identity_accepted=True)
    two, ev2 = a.dial(BOB, False, T0, identity_accepted=True)
    assert one.call_id != two.call_id
    offers = [e.signal for e in ev1 + ev2 if isinstance(e, SendSignal)]
    assert all(isinstance(o, CallOffer) for o in offers)
    assert len({o.call_secret for o in offers if isinstance(o, CallOffer)}) == 2


@given(
    order=st.lists(st.integers(0, 100), max_size=40),
    dupes=st.lists(st.integers(0, 100), max_size=6),
)
@settings(max_examples=150, deadline=None)
def test_reordered_and_repeated_delivery_still_connects(order: list[int], dupes: list[int]) -> None:
    """Whatever order the network delivers in, and whatever it repeats, a call that both
    sides want ends up active on both, with the same call id."""
    net, a, b = _pair()
    call, events = a.calls.dial(BOB, True, T0, identity_accepted=True)
    net.collect(a, events)
    picks, repeats = iter(order), iter(dupes)
    for _ in range(60):
        if not net.queue:
            net.run_shells()
            incoming = b.calls.get(call.call_id)
            if incoming is not None and incoming.state is S.RINGING:
                net.collect(b, incoming.accept(net.now))
                continue
            if not net.queue:
                break
        repeat = next(repeats, None)
        if repeat is not None:
            net.queue.append(net.queue[repeat % len(net.queue)])
        net.deliver(next(picks, 0) % len(net.queue))
    incoming = b.calls.get(call.call_id)
    assert incoming is not None
    assert call.state is S.ACTIVE
    assert incoming.state is S.ACTIVE
    assert not a.calls.ignored[IgnoreReason.UNKNOWN_CALL]


def test_an_expired_offer_does_not_make_our_call_give_way() -> None:
    a = CallRegistry(Randomness(b"a"))
    ours, _ = a.dial(BOB, False, T0 + 60_000, identity_accepted=True)
    stale = offer(call_id=b"\x00" * 16, sent=T0)
    events = a.receive(BOB, stale, T0 + 60_000, identity_accepted=True)
    assert events == [Ended(stale.call_id, BOB, EndReason.MISSED)]
    assert ours.state is S.DIALING
