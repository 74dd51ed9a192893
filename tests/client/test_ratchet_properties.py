"""Property tests of the Double Ratchet + KEM ratchet under reordering, loss and replay.

The states come from a real session (``pair()``: PQXDH from Bob's bundle, one sealed prekey
message delivered through the devices); every example then works on clones of them at the
ratchet level (``client.ratchet.encrypt``/``decrypt``), with deterministic randomness.

Properties (STYLE "Tests": a ratchet under reordering and loss still decrypts; every
(state, input) pair ends in a valid state):

- every message that arrives, in any order and with any others lost, decrypts exactly once
  and to the plaintext it was sent with;
- delivering a message a second time, or a tampered copy, raises ``DecryptionFailed`` and
  leaves the receiving state exactly as it was (and still working);
- the skip window is exactly ``MAX_SKIP`` messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from client import ratchet
from client.errors import DecryptionFailed
from client.formats import RatchetMessage
from client.ratchet import KEM_STEP_SECONDS, MAX_SKIP, MAX_STORED_SKIPPED, RatchetState
from tests.client.envelopes import SUITES, flip, snapshot
from tests.client.pairs import DeterministicEntropy, pair

START = 1_800_000_000.0


@cache
def _established(suite_name: str) -> tuple[RatchetState, RatchetState]:
    """Alice's and Bob's ratchet states right after Bob accepted Alice's prekey message."""
    alice, bob, _ = pair(
        suite_name,
        DeterministicEntropy(f"props/{suite_name}/alice".encode()),
        DeterministicEntropy(f"props/{suite_name}/bob".encode()),
    )
    received = bob.decrypt(alice.encrypt(bob.address, bob.device_id, b"prekey message"))
    assert received.plaintext == b"prekey message"
    return (
        alice.sessions[(bob.address, bob.device_id)].state,
        bob.sessions[(alice.address, alice.device_id)].state,
    )


def fresh_states(suite_name: str) -> dict[str, RatchetState]:
    alice, bob = _established(suite_name)
    return {"A": alice.clone(), "B": bob.clone()}


@dataclass(frozen=True)
class Flight:
    sender: str
    plaintext: bytes
    message: RatchetMessage

    @property
    def receiver(self) -> str:
        return "B" if self.sender == "A" else "A"


class RatchetNetwork(RuleBasedStateMachine):
    """Two ratchet states and an adversarial network between them: it delays, reorders,
    drops, replays and tampers with messages."""

    suite_name = "xwing"

    def __init__(self) -> None:
        super().__init__()
        self.states = fresh_states(self.suite_name)
        self.entropy = {
            side: DeterministicEntropy(f"props/{self.suite_name}/run/{side}".encode())
            for side in "AB"
        }
        self.now = START
        self.counter = 0
        self.in_flight: list[Flight] = []
        self.delivered: list[Flight] = []
        self.dropped = 0

    def _decrypt(self, flight: Flight) -> bytes:
        return ratchet.decrypt(
            self.states[flight.receiver], flight.message, self.entropy[flight.receiver], self.now
        )

    def _refused(self, flight: Flight, message: RatchetMessage) -> None:
        state = self.states[flight.receiver]
        before = snapshot(state)
        with pytest.raises(DecryptionFailed):
            ratchet.decrypt(state, message, self.entropy[flight.receiver], self.now)
        assert snapshot(state) == before

    @rule(sender=st.sampled_from("AB"), count=st.integers(1, 3))
    def send(self, sender: str, count: int) -> None:
        for _ in range(count):
            self.counter += 1
            plaintext = f"{sender}{self.counter}".encode()
            message = ratchet.encrypt(self.states[sender], plaintext)
            self.in_flight.append(Flight(sender, plaintext, message))

    @precondition(lambda self: self.in_flight)
    @rule(pick=st.integers(min_value=0))
    def deliver(self, pick: int) -> None:
        flight = self.in_flight.pop(pick % len(self.in_flight))
        assert self._decrypt(flight) == flight.plaintext
        self.delivered.append(flight)

    @precondition(lambda self: self.in_flight)
    @rule(picks=st.lists(st.integers(min_value=0), min_size=1, max_size=4))
    def deliver_several(self, picks: list[int]) -> None:
        for pick in picks:
            if self.in_flight:
                self.deliver(pick)

    @rule(first=st.sampled_from("AB"))
    def round_trip(self, first: str) -> None:
        """One message each way, delivered at once: moves the DH ratchet on."""
        second = "B" if first == "A" else "A"
        for sender in (first, second):
            self.send(sender, 1)
            self.deliver(len(self.in_flight) - 1)

    @precondition(lambda self: self.in_flight)
    @rule(pick=st.integers(min_value=0))
    def drop(self, pick: int) -> None:
        self.in_flight.pop(pick % len(self.in_flight))
        self.dropped += 1

    @precondition(lambda self: self.delivered)
    @rule(pick=st.integers(min_value=0))
    def replay(self, pick: int) -> None:
        flight = self.delivered[pick % len(self.delivered)]
        self._refused(flight, flight.message)

    @precondition(lambda self: self.in_flight)
    @rule(
        pick=st.integers(min_value=0),
        part=st.sampled_from(["c", "n", "pn", "dh", "kc", "kp"]),
        offset=st.integers(min_value=0),
    )
    def tamper(self, pick: int, part: str, offset: int) -> None:
        """A modified copy of an in-flight message is refused; the original stays deliverable
        (it remains in flight)."""
        flight = self.in_flight[pick % len(self.in_flight)]
        m = flight.message
        h = m.h
        if part == "c":
            forged = RatchetMessage(h=h, c=flip(m.c, offset % len(m.c)))
        elif part == "n":
            forged = RatchetMessage(h=type(h)(h.dh, h.pn, h.n + 1 + offset % 3, h.kc, h.kp), c=m.c)
        elif part == "pn":
            forged = RatchetMessage(h=type(h)(h.dh, h.pn + 1, h.n, h.kc, h.kp), c=m.c)
        elif part == "dh":
            forged = RatchetMessage(h=type(h)(flip(h.dh, 1), h.pn, h.n, h.kc, h.kp), c=m.c)
        elif part == "kc":
            kc = flip(h.kc, offset % len(h.kc)) if h.kc is not None else self.some_kc()
            forged = RatchetMessage(h=type(h)(h.dh, h.pn, h.n, kc, h.kp), c=m.c)
        else:
            kp = flip(h.kp, offset % len(h.kp)) if h.kp is not None else None
            forged = RatchetMessage(h=type(h)(h.dh, h.pn, h.n, h.kc, kp), c=m.c)
        if forged == m:  # nothing to change in this header field
            return
        self._refused(flight, forged)

    def some_kc(self) -> bytes:
        kem = self.states["A"].suite.ratchet_kem
        public = kem.public_key_bytes(self.states["A"].kem_own)
        return kem.encapsulate(public)[0]

    @rule()
    def an_hour_passes(self) -> None:
        self.now += KEM_STEP_SECONDS + 1

    @invariant()
    def bounded(self) -> None:
        for state in self.states.values():
            assert len(state.skipped) <= MAX_STORED_SKIPPED
            assert state.ns >= 0
            assert state.nr >= 0

    def teardown(self) -> None:
        # Everything still in flight arrives at last, newest first: all of it decrypts.
        for flight in reversed(self.in_flight):
            assert self._decrypt(flight) == flight.plaintext
            self.delivered.append(flight)
        assert len(self.delivered) + self.dropped == self.counter
        # And the states still talk to each other both ways afterwards.
        for sender, receiver in (("A", "B"), ("B", "A")):
            message = ratchet.encrypt(self.states[sender], b"after")
            got = ratchet.decrypt(self.states[receiver], message, self.entropy[receiver], self.now)
            assert got == b"after"


@pytest.mark.slow
@pytest.mark.parametrize("suite_name", SUITES)
def test_ratchet_under_an_adversarial_network(suite_name: str) -> None:
    machine = type(f"RatchetNetwork_{suite_name}", (RatchetNetwork,), {"suite_name": suite_name})
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=50,
            stateful_step_count=50,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )


@st.composite
def chain_schedule(draw: st.DrawFn) -> tuple[int, list[int], set[int]]:
    """A chain of ``n`` messages, the order they arrive in, and the ones lost."""
    n = draw(st.integers(1, 120))
    order = draw(st.permutations(range(n)))
    lost = draw(st.sets(st.integers(0, n - 1), max_size=n // 2))
    return n, order, lost


@pytest.mark.parametrize("suite_name", SUITES)
@settings(max_examples=40, deadline=None)
@given(schedule=chain_schedule(), direction=st.sampled_from(["AB", "BA"]))
def test_one_chain_any_order_any_loss(
    suite_name: str, schedule: tuple[int, list[int], set[int]], direction: str
) -> None:
    n, order, lost = schedule
    states = fresh_states(suite_name)
    entropy = DeterministicEntropy(b"chain")
    sender, receiver = states[direction[0]], states[direction[1]]
    messages = [ratchet.encrypt(sender, b"m%d" % i) for i in range(n)]
    seen: list[int] = []
    for i in order:
        if i in lost:
            continue
        assert ratchet.decrypt(receiver, messages[i], entropy, START) == b"m%d" % i
        seen.append(i)
    for i in seen:
        before = snapshot(receiver)
        with pytest.raises(DecryptionFailed):
            ratchet.decrypt(receiver, messages[i], entropy, START)
        assert snapshot(receiver) == before
    # The lost ones are exactly the keys still held for later.
    held = {n for (_, n) in receiver.skipped}
    last = max(seen, default=-1)
    assert held == {messages[i].h.n for i in lost if i < last}


@pytest.mark.parametrize("suite_name", SUITES)
def test_skip_window_is_max_skip(suite_name: str) -> None:
    states = fresh_states(suite_name)
    alice, bob = states["A"], states["B"]
    entropy = DeterministicEntropy(b"window")
    # Bob's receiving chain from Alice is at nr == 1 (he has the prekey message, n = 0).
    assert bob.nr == 1
    messages = {}
    plaintexts = {}
    for i in range(MAX_SKIP + 2):
        m = ratchet.encrypt(alice, b"message %d" % i)
        messages[m.h.n], plaintexts[m.h.n] = m, b"message %d" % i
    inside = messages[bob.nr + MAX_SKIP]  # skips exactly MAX_SKIP keys
    too_far = messages[bob.nr + MAX_SKIP + 1]  # one more
    before = snapshot(bob)
    with pytest.raises(DecryptionFailed):
        ratchet.decrypt(bob, too_far, entropy, START)
    assert snapshot(bob) == before
    # The last one inside the window decrypts, and so do all it skipped, in any order.
    assert ratchet.decrypt(bob, inside, entropy, START) == plaintexts[inside.h.n]
    assert len(bob.skipped) == MAX_SKIP
    for n in sorted(messages, reverse=True):
        if n < inside.h.n:
            assert ratchet.decrypt(bob, messages[n], entropy, START) == plaintexts[n]
    assert bob.skipped == {}
    # Now the formerly too-far message is simply the next one.
    assert ratchet.decrypt(bob, too_far, entropy, START) == plaintexts[too_far.h.n]


@pytest.mark.parametrize("suite_name", SUITES)
def test_skip_window_across_a_chain_change(suite_name: str) -> None:
    """``pn`` in a new chain's header makes the receiver keep the rest of the old chain; a
    claimed ``pn`` beyond the window is refused like any other over-long skip."""
    states = fresh_states(suite_name)
    alice, bob = states["A"], states["B"]
    entropy = DeterministicEntropy(b"pn")
    old_chain = [ratchet.encrypt(alice, b"old %d" % i) for i in range(5)]
    reply = ratchet.encrypt(bob, b"reply")
    assert ratchet.decrypt(alice, reply, entropy, START) == b"reply"
    new_chain = ratchet.encrypt(alice, b"new")
    assert new_chain.h.pn == 6  # the prekey message and the five above
    forged = RatchetMessage(h=type(new_chain.h)(**{**_fields(new_chain.h), "pn": 5000}), c=b"x")
    before = snapshot(bob)
    with pytest.raises(DecryptionFailed):
        ratchet.decrypt(bob, forged, entropy, START)
    assert snapshot(bob) == before
    assert ratchet.decrypt(bob, new_chain, entropy, START) == b"new"
    for i, message in reversed(list(enumerate(old_chain))):
        assert ratchet.decrypt(bob, message, entropy, START) == b"old %d" % i


def _fields(header: object) -> dict[str, object]:
    return {name: getattr(header, name) for name in ("dh", "pn", "n", "kc", "kp")}
