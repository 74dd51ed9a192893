"""Long conversations through ``Device.encrypt``/``Device.decrypt`` (sealed sender, padding,
PQXDH, Double Ratchet and KEM ratchet together), and when the KEM ratchet steps.

Both suites run the full 10,000 messages through the devices: about 5 s for xwing and 15 s
for cnsa2 on one core, so no suite falls back to the ratchet level.
"""

from __future__ import annotations

import random

import pytest

from client.ratchet import KEM_STEP_MESSAGES, KEM_STEP_SECONDS, RatchetState
from client.session import Device
from tests.client.envelopes import SUITES, open_envelope
from tests.client.pairs import pair

CONVERSATION_LENGTH = 10_000


def _state(device: Device, peer: Device) -> RatchetState:
    return device.sessions[(peer.address, peer.device_id)].state


def _send(sender: Device, recipient: Device, plaintext: bytes) -> None:
    body = sender.encrypt(recipient.address, recipient.device_id, plaintext)
    received = recipient.decrypt(body)
    assert received.plaintext == plaintext
    assert (received.sender, received.device) == (sender.address, sender.device_id)


def _turns(rng: random.Random, total: int, max_run: int) -> list[int]:
    """Run lengths of alternating turns (Alice first): mostly short, some long, adding up
    to ``total``."""
    runs: list[int] = []
    while sum(runs) < total:
        roll = rng.random()
        if roll < 0.6:
            run = rng.randint(1, 3)
        elif roll < 0.95:
            run = rng.randint(4, 12)
        else:
            run = rng.randint(13, max_run)
        runs.append(min(run, total - sum(runs)))
    return runs


def _kem_gaps(history: list[int]) -> list[int]:
    """Message counts between successive changes of a ``kem_steps`` history."""
    changes = [i for i in range(1, len(history)) if history[i] != history[i - 1]]
    return [b - a for a, b in zip([0, *changes], changes, strict=False)]


@pytest.mark.slow
@pytest.mark.parametrize("suite_name", SUITES)
def test_ten_thousand_messages_both_directions(suite_name: str) -> None:
    alice, bob, _ = pair(suite_name)
    rng = random.Random(f"conversation/{suite_name}")
    max_run = 40
    runs = _turns(rng, CONVERSATION_LENGTH, max_run)
    assert len(runs) > 1000  # genuinely mixed turns
    sent = {alice.address: 0, bob.address: 0}
    history: dict[str, list[int]] = {alice.address: [0], bob.address: [0]}
    index = 0
    for turn, run in enumerate(runs):
        sender, recipient = (alice, bob) if turn % 2 == 0 else (bob, alice)
        for _ in range(run):
            # Unique, varying-length plaintexts: a message delivered to the wrong slot, or
            # padded/unpadded wrongly, cannot compare equal.
            plaintext = f"{index}:{sender.address}:".encode() + rng.randbytes(rng.randrange(300))
            _send(sender, recipient, plaintext)
            sent[sender.address] += 1
            index += 1
            history[alice.address].append(_state(alice, bob).kem_steps)
            history[bob.address].append(_state(bob, alice).kem_steps)
    assert index == CONVERSATION_LENGTH
    assert min(sent.values()) > CONVERSATION_LENGTH // 3
    # The session left the prekey phase and stopped sending the full certificate.
    assert alice.sessions[(bob.address, 1)].pending is None
    assert alice.sessions[(bob.address, 1)].cert_acked != b""
    # KEM steps kept happening all along. A step is due after KEM_STEP_MESSAGES messages but
    # can only be made when a side starts a new sending chain, i.e. at the peer's next turn,
    # and the peer observes it one turn later still: at most two runs of delay.
    for device in (alice, bob):
        gaps = _kem_gaps(history[device.address])
        assert sum(gaps) > CONVERSATION_LENGTH - (KEM_STEP_MESSAGES + 2 * max_run)
        assert max(gaps) <= KEM_STEP_MESSAGES + 2 * max_run, device.address
    assert _state(alice, bob).kem_steps >= CONVERSATION_LENGTH // (KEM_STEP_MESSAGES + 2 * max_run)


@pytest.mark.parametrize("suite_name", SUITES)
def test_kem_step_at_least_every_fifty_messages_when_interactive(suite_name: str) -> None:
    """Turns of one to three messages: both sides see a KEM step at least every
    KEM_STEP_MESSAGES + 6 messages, and each step is an actual KEM ciphertext on the wire."""
    alice, bob, _ = pair(suite_name)
    rng = random.Random(f"interactive/{suite_name}")
    history: dict[str, list[int]] = {alice.address: [0], bob.address: [0]}
    kem_ciphertexts: set[bytes] = set()
    turn = 0
    total = 0
    while total < 600:
        sender, recipient = (alice, bob) if turn % 2 == 0 else (bob, alice)
        for _ in range(rng.randint(1, 3)):
            plaintext = f"{total}".encode()
            body = sender.encrypt(recipient.address, recipient.device_id, plaintext)
            header = open_envelope(recipient, body).message.h
            if header.kc is not None:
                kem_ciphertexts.add(header.kc)
            assert recipient.decrypt(body).plaintext == plaintext
            total += 1
            history[alice.address].append(_state(alice, bob).kem_steps)
            history[bob.address].append(_state(bob, alice).kem_steps)
        turn += 1
    for device in (alice, bob):
        gaps = _kem_gaps(history[device.address])
        assert len(gaps) >= 8
        assert max(gaps) <= KEM_STEP_MESSAGES + 2 * 3, (device.address, gaps)
        # ...and not wastefully often either: no two steps within half the interval.
        assert min(gaps[1:]) >= KEM_STEP_MESSAGES // 2, (device.address, gaps)
    # Every step both sides counted is a distinct KEM ciphertext seen in the headers.
    assert len(kem_ciphertexts) == _state(alice, bob).kem_steps == _state(bob, alice).kem_steps


@pytest.mark.parametrize("suite_name", SUITES)
def test_kem_step_after_an_hour_even_with_few_messages(suite_name: str) -> None:
    alice, bob, domain = pair(suite_name)
    _send(alice, bob, b"hello")
    _send(bob, alice, b"hi")  # the first KEM step (none had been made yet)
    _send(alice, bob, b"how are you")
    _send(bob, alice, b"fine")
    steps = _state(alice, bob).kem_steps
    assert steps >= 1
    # Few messages: no further step without the clock.
    for i in range(4):
        _send(alice, bob, b"quick %d" % i)
        _send(bob, alice, b"reply %d" % i)
    assert _state(alice, bob).kem_steps == steps
    domain.clock.now += KEM_STEP_SECONDS + 1
    _send(alice, bob, b"an hour later")
    _send(bob, alice, b"still here")
    _send(alice, bob, b"good")
    assert _state(alice, bob).kem_steps == steps + 1
    assert _state(bob, alice).kem_steps == _state(alice, bob).kem_steps


@pytest.mark.parametrize("suite_name", SUITES)
def test_one_way_stream_steps_at_the_peers_reply(suite_name: str) -> None:
    """The documented limit: the DH ratchet alternates, so a one-way stream cannot make a KEM
    step; the first chain the sender starts after a reply carries one."""
    alice, bob, _ = pair(suite_name)
    _send(alice, bob, b"first")
    _send(bob, alice, b"reply")
    _send(alice, bob, b"second")
    before = _state(alice, bob).kem_steps
    for i in range(3 * KEM_STEP_MESSAGES):
        _send(alice, bob, b"stream %d" % i)
    assert _state(alice, bob).kem_steps == before
    _send(bob, alice, b"ack")
    assert _state(alice, bob).kem_steps == before + 1  # Alice encapsulated on her new chain
    body = alice.encrypt(bob.address, bob.device_id, b"after")
    assert open_envelope(bob, body).message.h.kc is not None
    bob.decrypt(body)
    assert _state(bob, alice).kem_steps == _state(alice, bob).kem_steps
