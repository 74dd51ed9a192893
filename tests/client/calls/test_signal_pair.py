"""Two devices calling each other with random user actions, slow shells, clock moves and a
network that reorders and repeats (but does not lose) signals: once everything is
delivered and every timer has fired, each call is up on both sides or over on both."""

from __future__ import annotations

from hypothesis import event, given, settings
from hypothesis import strategies as st

from client.calls.signal_events import CallConfig, CallState
from client.calls.signal_registry import CallRegistry
from tests.client.calls.signalkit import ALICE, BOB, FAR, Randomness
from tests.client.calls.test_signal_registry import Device, Net

S = CallState
CONFIG = CallConfig(ring_timeout_ms=10_000, setup_timeout_ms=4_000)


def _devices(seed: int) -> tuple[Net, Device, Device]:
    a = Device(ALICE, CallRegistry(Randomness(b"a%d" % seed), CONFIG))
    b = Device(BOB, CallRegistry(Randomness(b"b%d" % seed), CONFIG))
    return Net({ALICE: a, BOB: b}), a, b


def _act(net: Net, device: Device, pick: int, action: int) -> None:
    calls = list(device.calls)
    if not calls:
        return
    call = calls[pick % len(calls)]
    acts = [
        lambda: call.accept(net.now),
        lambda: call.accept(net.now),
        lambda: call.accept(net.now),
        lambda: call.decline(net.now),
        lambda: call.hangup(net.now),
        lambda: call.media_failed(net.now),
        lambda: call.rekey(pick % 3, net.now),
    ]
    net.collect(device, acts[action % len(acts)]())


def _quiesce(net: Net) -> None:
    """Deliver everything, run the shells, then let every timer fire, until nothing moves."""
    for now in (net.now, FAR):
        net.now = now
        for device in net.devices.values():
            net.collect(device, device.calls.tick(now))
        for _ in range(20):
            net.run_shells()
            if not net.queue:
                break
            net.flush()


@given(
    seed=st.integers(0, 3),
    steps=st.lists(st.tuples(st.integers(0, 7), st.integers(0, 99)), min_size=5, max_size=60),
)
@settings(max_examples=300, deadline=None)
def test_every_call_ends_up_on_both_sides_or_neither(
    seed: int, steps: list[tuple[int, int]]
) -> None:
    net, a, b = _devices(seed)
    net.collect(a, a.calls.dial(BOB, False, net.now, identity_accepted=True)[1])
    dials = 1
    for kind, n in steps:
        device = a if n % 2 else b
        if kind == 0 and dials < 3:
            dials += 1
            other = BOB if device is a else ALICE
            net.collect(device, device.calls.dial(other, False, net.now, identity_accepted=True)[1])
        elif kind in (1, 2) and net.queue:
            net.deliver(n % len(net.queue))
        elif kind == 3 and net.queue:
            net.queue.append(net.queue[n % len(net.queue)])  # a repeat
        elif kind == 4:
            _act(net, device, n, n // 7)
        elif kind == 5:
            net.run_shells()
        elif kind == 6:
            net.now += n * 100
            for d in (a, b):
                net.collect(d, d.calls.tick(net.now))
    _quiesce(net)
    ids = {c.call_id for c in a.calls} | {c.call_id for c in b.calls}
    for cid in ids:
        ours, theirs = a.calls.get(cid), b.calls.get(cid)
        states = {c.state for c in (ours, theirs) if c is not None}
        assert states in ({S.ENDED}, {S.ACTIVE}), (states, cid)
        event("outcomes", ",".join(sorted(str(c.reason or "active") for c in (ours, theirs) if c)))
        if S.ACTIVE in states:
            assert ours is not None
            assert theirs is not None
    assert len(a.calls.live()) <= 1
    assert len(b.calls.live()) <= 1
