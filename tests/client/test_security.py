"""Security properties of the end-to-end core, each tested against the attack it rules out.

Every refusal below comes with a control that shows the same path accepting the genuine
input, so a test cannot pass because the setup was broken or the check vacuous.

- forward secrecy: a state stolen after messages were received does not open them;
- post-compromise security: a stolen state stops working once the conversation has moved
  on, and against an adversary who breaks every DH key (a quantum one) it is the KEM ratchet
  alone that locks the attacker out (with the KEM secrets handed over, it would read on);
- replays and tampering of every layer raise ``DecryptionFailed`` and change nothing;
- downgrades (the other suite's bundle, envelope, prekey message, certificate) are refused;
- sender certificates: expiry, wrong signer, another domain's signer, another identity;
- one-time prekeys are used at most once; the last-resort KEM key and bundles without a
  one-time DH key work;
- a changed identity key blocks sending until accepted;
- a bundle with any signature corrupted is refused.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from client import pqxdh, ratchet
from client.entropy import SYSTEM_ENTROPY, Entropy
from client.errors import (
    CertificateError,
    DecryptionFailed,
    InvalidBundle,
    SuiteMismatch,
    UntrustedIdentity,
)
from client.formats import PrekeyMessage, RatchetHeader, RatchetMessage
from client.identity import Identity, new_dh_key, verify_bundle
from client.ratchet import RatchetState
from client.sealed import certificate_hash, issue_certificate, unseal
from client.session import MAX_CERTIFICATE_BACKDATE_MS, Device
from suites import Suite, get_suite, labels
from suites.dh import DhPrivateKey
from suites.kem import MlKem, MlKemPrivateKey
from tests.client.envelopes import SUITES, flip, open_envelope, reseal, snapshot
from tests.client.pairs import DAY_MS, Domain, keyring_for, pair
from wire import decode, encode
from wire.e2e import PrekeyBundle, SealedEnvelope, SenderDescriptor

SUITE_PAIRS = [("xwing", "cnsa2"), ("cnsa2", "xwing")]


# --- helpers ----------------------------------------------------------------------------


def state_of(device: Device, peer: Device) -> RatchetState:
    return device.sessions[(peer.address, peer.device_id)].state


@dataclass(frozen=True)
class Sent:
    sender: Device
    recipient: Device
    plaintext: bytes
    body: bytes
    message: RatchetMessage


def send(sender: Device, recipient: Device, plaintext: bytes, deliver: bool = True) -> Sent:
    """``sender`` encrypts ``plaintext``; the recipient decrypts it unless ``deliver`` is
    false. The ratchet message is taken out of the envelope for the attacker's use."""
    body = sender.encrypt(recipient.address, recipient.device_id, plaintext)
    message = open_envelope(recipient, body).message
    if deliver:
        received = recipient.decrypt(body)
        assert received.plaintext == plaintext
        assert received.sender == sender.address
    return Sent(sender, recipient, plaintext, body, message)


def exchange(alice: Device, bob: Device, rounds: int, per_turn: int = 2) -> list[Sent]:
    """``rounds`` turns each way (Alice first), ``per_turn`` messages a turn."""
    sent: list[Sent] = []
    for r in range(rounds):
        for sender, recipient in ((alice, bob), (bob, alice)):
            for i in range(per_turn):
                sent.append(send(sender, recipient, f"{sender.address} {r}.{i}".encode()))
    return sent


def established(suite_name: str, **kwargs: Entropy) -> tuple[Device, Device, Domain]:
    """A pair that has exchanged one message each way (the session left the prekey phase)."""
    alice, bob, domain = pair(suite_name, kwargs.get("entropy_a"), kwargs.get("entropy_b"))
    send(alice, bob, b"hello")
    send(bob, alice, b"hello back")
    return alice, bob, domain


def message_keys(suite: Suite, mk: bytes) -> tuple[bytes, bytes]:
    """AES-256-GCM key and nonce from a message key (the ratchet's documented KDF)."""
    out = suite.kdf.derive(mk, bytes(suite.kdf.hash_len), labels.RATCHET_MESSAGE_KEYS_INFO, 44)
    return out[:32], out[32:]


def open_in_chain(
    suite: Suite, ad: bytes, ck: bytes, first_n: int, message: RatchetMessage
) -> bool:
    """Whether chain key ``ck`` (the key for message number ``first_n`` of a chain) opens
    ``message``: what an attacker holding a chain key does."""
    if message.h.n < first_n:
        return False
    mk = b""
    for _ in range(message.h.n - first_n + 1):
        ck, mk = ratchet.kdf_ck(suite, ck)
    key, nonce = message_keys(suite, mk)
    try:
        suite.aead.open(key, nonce, message.c, ad + encode(message.h))
    except Exception:
        return False
    return True


class RecordingEntropy:
    """System randomness that remembers every KEM shared secret it encapsulated (so a test
    can hand an attacker exactly those secrets and nothing else)."""

    def __init__(self) -> None:
        self.kem_secrets: dict[bytes, bytes] = {}

    def random_bytes(self, n: int) -> bytes:
        return SYSTEM_ENTROPY.random_bytes(n)

    def mlkem_encapsulate(self, kem: MlKem, public_key: bytes) -> tuple[bytes, bytes]:
        ct, ss = SYSTEM_ENTROPY.mlkem_encapsulate(kem, public_key)
        self.kem_secrets[ct] = ss
        return ct, ss


# --- forward secrecy --------------------------------------------------------------------


@pytest.mark.parametrize("suite_name", SUITES)
def test_forward_secrecy_stolen_state_cannot_open_received_messages(suite_name: str) -> None:
    alice, bob, _ = pair(suite_name)
    received_by_bob: list[tuple[RatchetState, RatchetMessage, bytes]] = []
    withheld: list[Sent] = []
    for r in range(12):
        for i in range(3):
            if r == 5 and i == 1:
                # Lost in transit: Bob keeps its key for later, so the thief may open it.
                withheld.append(send(alice, bob, b"withheld", deliver=False))
                continue
            body = alice.encrypt(bob.address, bob.device_id, b"a%d.%d" % (r, i))
            message = open_envelope(bob, body).message
            before = state_of(bob, alice).clone() if bob.sessions else None
            assert bob.decrypt(body).plaintext == b"a%d.%d" % (r, i)
            if before is not None:
                received_by_bob.append((before, message, b"a%d.%d" % (r, i)))
        exchange(bob, alice, 1, per_turn=2)
    assert len(received_by_bob) > 30
    stolen = state_of(bob, alice).clone()
    for before, message, plaintext in received_by_bob:
        # Control: the state from just before the message arrived does open it.
        assert ratchet.decrypt(before.clone(), message, SYSTEM_ENTROPY, 0.0) == plaintext
        # The state stolen afterwards does not, and is not changed by trying.
        thief = stolen.clone()
        with pytest.raises(DecryptionFailed):
            ratchet.decrypt(thief, message, SYSTEM_ENTROPY, 0.0)
        assert snapshot(thief) == snapshot(stolen)
    # The documented limit: a message not yet received is still readable with the state.
    (lost,) = withheld
    assert ratchet.decrypt(stolen.clone(), lost.message, SYSTEM_ENTROPY, 0.0) == b"withheld"


# --- post-compromise security -----------------------------------------------------------


def _run_after_compromise(
    alice: Device, bob: Device, messages: int
) -> tuple[list[Sent], dict[bytes, DhPrivateKey]]:
    """Turns of two or three messages; also every DH ratchet private key either side held
    (what an adversary who breaks DH recovers from the public keys on the wire)."""
    dh_keys: dict[bytes, DhPrivateKey] = {}

    def note() -> None:
        for state in (state_of(alice, bob), state_of(bob, alice)):
            dh_keys[state.suite.dh.public_key_bytes(state.dhs)] = state.dhs

    note()
    sent: list[Sent] = []
    turn = 0
    while len(sent) < messages:
        sender, recipient = (bob, alice) if turn % 2 == 0 else (alice, bob)
        for _ in range(2 + turn % 2):
            sent.append(send(sender, recipient, b"after compromise %d" % len(sent)))
            note()
        turn += 1
    return sent, dh_keys


def _compromise_point(alice: Device, bob: Device) -> None:
    """Talk until Alice has just made a KEM step, then let her send once more: the next
    KEM step is far off, so several DH ratchet steps follow the compromise first."""
    exchange(alice, bob, 3)
    steps = state_of(alice, bob).kem_steps
    while state_of(alice, bob).kem_steps == steps:
        exchange(alice, bob, 1)
    send(alice, bob, b"just before the theft")


@pytest.mark.parametrize("suite_name", SUITES)
def test_post_compromise_security(suite_name: str) -> None:
    """Classical thief: a copy of Alice's whole state at time T, following all later
    traffic. It reads what the stolen chain keys cover, then nothing in either direction."""
    alice, bob, _ = established(suite_name)
    _compromise_point(alice, bob)
    real = state_of(alice, bob)
    stolen = real.clone()
    steps_at_t = (real.kem_steps, state_of(bob, alice).kem_steps)
    suite = real.suite
    own_chain = (suite.dh.public_key_bytes(stolen.dhs), stolen.cks, stolen.ns)
    # Alice sends once more in her current chain, then the conversation goes on.
    same_chain = send(alice, bob, b"still in the stolen chain")
    later, _ = _run_after_compromise(alice, bob, 160)
    assert state_of(alice, bob).kem_steps >= steps_at_t[0] + 2
    assert state_of(bob, alice).kem_steps >= steps_at_t[1] + 2

    # Bob -> Alice: the attacker runs the real decryption on its copy, message by message.
    thief = stolen
    outcomes: list[bool] = []
    for s in later:
        if s.sender is bob:
            try:
                ratchet.decrypt(thief, s.message, SYSTEM_ENTROPY, 0.0)
                outcomes.append(True)
            except DecryptionFailed:
                outcomes.append(False)
    # The theft was real: Bob's first reply chain (to Alice's stolen ratchet key) is read...
    assert outcomes[:2] == [True, True]
    # ...and once Alice has stepped her DH ratchet, never again.
    first_failure = outcomes.index(False)
    assert not any(outcomes[first_failure:])
    assert first_failure <= 3

    # Alice -> Bob: the stolen sending chain key opens the rest of that chain only.
    dh, cks, ns = own_chain
    assert cks is not None
    assert same_chain.message.h.dh == dh
    assert open_in_chain(suite, stolen.ad, cks, ns, same_chain.message)
    for s in later:
        if s.sender is alice:
            assert s.message.h.dh != dh
            assert not open_in_chain(suite, stolen.ad, cks, ns, s.message)


@dataclass
class _Outcome:
    opened: list[bool]
    kem_chain: list[bool]  # the message's chain began with a KEM step


def _quantum_attacker(
    stolen: RatchetState,
    traffic: list[Sent],
    alice: Device,
    dh_keys: dict[bytes, DhPrivateKey],
    kem_oracle: Callable[[bytes], bytes | None],
) -> _Outcome:
    """An attacker with Alice's state at T, every DH private key (it breaks DH), and the KEM
    private key stolen at T. It recomputes the root chain from the traffic: each new chain
    is ``KDF_RK(rk, DH(new key, peer's latest key), kem_ss)``. ``kem_ss`` is what it can get:
    the decapsulation under the stolen KEM key, or whatever ``kem_oracle`` hands it."""
    suite = stolen.suite
    rk = stolen.rk
    own = suite.dh.public_key_bytes(stolen.dhs)
    assert stolen.dhr is not None
    latest = {"alice": own, "bob": stolen.dhr}
    chains: dict[bytes, tuple[bytes, int]] = {}
    if stolen.cks is not None:
        chains[own] = (stolen.cks, stolen.ns)
    if stolen.ckr is not None:
        chains[stolen.dhr] = (stolen.ckr, stolen.nr)
    known_kem: list[MlKemPrivateKey] = [stolen.kem_own]
    outcome = _Outcome([], [])
    started_with_kem: dict[bytes, bool] = {}
    for s in traffic:
        side, other = ("alice", "bob") if s.sender is alice else ("bob", "alice")
        h = s.message.h
        if h.dh not in chains:
            dh_out = suite.dh.exchange(dh_keys[h.dh], latest[other])
            candidates = [b""]
            if h.kc is not None:
                candidates = [suite.ratchet_kem.decapsulate(k, h.kc) for k in known_kem]
                given = kem_oracle(h.kc)
                if given is not None:
                    candidates.insert(0, given)
            best = None
            for ss in candidates:
                new_rk, ck = ratchet.kdf_rk(suite, rk, dh_out, ss)
                if open_in_chain(suite, stolen.ad, ck, 0, s.message):
                    best = (new_rk, ck)
                    break
            if best is None:  # no candidate works: keep a guess and go on trying
                best = ratchet.kdf_rk(suite, rk, dh_out, candidates[0])
            rk, ck = best
            chains[h.dh] = (ck, 0)
            latest[side] = h.dh
            started_with_kem[h.dh] = h.kc is not None
        ck, first = chains[h.dh]
        outcome.opened.append(open_in_chain(suite, stolen.ad, ck, first, s.message))
        outcome.kem_chain.append(started_with_kem.get(h.dh, False))
    return outcome


@pytest.mark.parametrize("suite_name", SUITES)
def test_post_compromise_security_against_a_dh_breaking_adversary(suite_name: str) -> None:
    """Against an adversary who breaks every DH key, the DH ratchet heals nothing: the
    attacker reads on through DH steps. Only the first KEM step to a key it does not hold
    locks it out, in both directions, for good; handed those KEM secrets, it reads all."""
    rec_a, rec_b = RecordingEntropy(), RecordingEntropy()
    alice, bob, _ = established(suite_name, entropy_a=rec_a, entropy_b=rec_b)
    _compromise_point(alice, bob)
    real = state_of(alice, bob)
    stolen = real.clone()
    steps_at_t = (real.kem_steps, state_of(bob, alice).kem_steps)
    traffic, dh_keys = _run_after_compromise(alice, bob, 160)
    assert real.kem_steps >= steps_at_t[0] + 2
    assert state_of(bob, alice).kem_steps >= steps_at_t[1] + 2

    secrets = {**rec_a.kem_secrets, **rec_b.kem_secrets}
    # Control: with the KEM secrets too, the attacker follows the whole conversation, so
    # its root-chain computation is right and nothing but the KEM secret is missing below.
    control = _quantum_attacker(stolen.clone(), traffic, alice, dh_keys, secrets.get)
    assert all(control.opened)

    attack = _quantum_attacker(stolen.clone(), traffic, alice, dh_keys, lambda kc: None)
    healed = attack.opened.index(False)
    # Before healing the attacker read messages of several new DH chains (DH steps alone
    # do not heal against it)...
    chains_read = {traffic[i].message.h.dh for i in range(healed)}
    assert len(chains_read) >= 3
    # ...healing happened exactly at a chain that began with a KEM step...
    assert attack.kem_chain[healed]
    assert traffic[healed].message.h.kc is not None
    # ...and from there on nothing opens, in either direction.
    assert not any(attack.opened[healed:])
    assert {s.sender.address for s in traffic[healed:]} == {alice.address, bob.address}


# --- replay and tampering -----------------------------------------------------------------


@pytest.mark.parametrize("suite_name", SUITES)
def test_replayed_envelopes_are_refused(suite_name: str) -> None:
    alice, bob, _ = pair(suite_name)
    first = send(alice, bob, b"prekey message")
    second = send(alice, bob, b"second prekey message")
    reply = send(bob, alice, b"reply")
    later = exchange(alice, bob, 3)
    for replayed, recipient in [(first, bob), (second, bob), (reply, alice)] + [
        (s, s.recipient) for s in later
    ]:
        state = state_of(recipient, replayed.sender)
        before = snapshot(state)
        pool_before = (set(recipient.pool.one_time_dh), set(recipient.pool.one_time_kem))
        with pytest.raises(DecryptionFailed):
            recipient.decrypt(replayed.body)
        # Nothing changed: the same session object, the same state, the same prekeys.
        assert state_of(recipient, replayed.sender) is state
        assert snapshot(state) == before
        assert (set(recipient.pool.one_time_dh), set(recipient.pool.one_time_kem)) == pool_before
    exchange(alice, bob, 2)  # the session still works both ways


@pytest.mark.parametrize("suite_name", SUITES)
def test_replayed_first_message_without_one_time_keys_is_refused(suite_name: str) -> None:
    """With no one-time DH prekey and the last-resort KEM key, nothing in PQXDH stops a
    replayed first message from setting its session up again (X3DH section 4.2): once Alice
    and Bob are on a newer session, a replay of the old first message must neither be
    delivered twice nor displace the newer session."""
    alice, bob, _ = pair(suite_name)
    bob.pool.one_time_dh.clear()
    bob.pool.one_time_kem.clear()
    alice.start_session(bob.pool.bundle(bob.address, 1))
    old_first = send(alice, bob, b"first session")
    send(bob, alice, b"reply")
    alice.start_session(bob.pool.bundle(bob.address, 1))  # e.g. Alice restored a backup
    send(alice, bob, b"second session")
    send(bob, alice, b"reply again")
    state = state_of(bob, alice)
    before = snapshot(state)
    with pytest.raises(DecryptionFailed):
        bob.decrypt(old_first.body)
    assert state_of(bob, alice) is state
    assert snapshot(state) == before
    exchange(alice, bob, 2)
    # After a signed prekey rotation the old first message names a prekey that is gone.
    bob.pool.rotate_signed_prekey(SYSTEM_ENTROPY)
    with pytest.raises(DecryptionFailed):
        bob.decrypt(old_first.body)
    exchange(alice, bob, 1)


def _envelope(suite: Suite, body: bytes) -> SealedEnvelope:
    return decode(suite.unpad(body), SealedEnvelope)


def _rebuild(suite: Suite, envelope: SealedEnvelope) -> bytes:
    return suite.pad(encode(envelope))


@pytest.mark.parametrize("suite_name", SUITES)
@pytest.mark.parametrize("phase", ["prekey message", "ratchet message"])
def test_tampered_sealed_layer_is_refused(suite_name: str, phase: str) -> None:
    if phase == "prekey message":
        alice, bob, _ = pair(suite_name)
    else:
        alice, bob, _ = established(suite_name)
    suite = alice.suite
    body = alice.encrypt(bob.address, bob.device_id, b"sealed")
    envelope = _envelope(suite, body)
    enc_len = suite.hpke.enc_len
    assert len(envelope.c) > enc_len + 16
    positions = {
        "enc first byte (ML-KEM ciphertext)": 0,
        "enc middle": enc_len // 2,
        "enc last byte (classical share)": enc_len - 1,
        "ciphertext first byte": enc_len,
        "ciphertext middle": (enc_len + len(envelope.c)) // 2,
        "tag last byte": len(envelope.c) - 1,
    }
    forgeries = {
        name: _rebuild(suite, dataclasses.replace(envelope, c=flip(envelope.c, i)))
        for name, i in positions.items()
    }
    forgeries["truncated"] = _rebuild(suite, dataclasses.replace(envelope, c=envelope.c[:-1]))
    forgeries["key id"] = _rebuild(suite, dataclasses.replace(envelope, i=envelope.i + 1))
    encoded_len = len(encode(envelope))
    forgeries["padding byte"] = flip(body, -1)
    forgeries["padding marker"] = body[:encoded_len] + bytes(len(body) - encoded_len)
    forgeries["cut to a non-bucket length"] = body[:512]
    forgeries["empty"] = b""
    before = snapshot(state_of(bob, alice)) if bob.sessions else None
    for name, forged in forgeries.items():
        assert forged != body, name
        with pytest.raises(DecryptionFailed):
            bob.decrypt(forged)
        if before is None:
            assert bob.sessions == {}, name
        else:
            assert snapshot(state_of(bob, alice)) == before, name
    assert bob.decrypt(body).plaintext == b"sealed"
    # The key id is bound into the HPKE AAD: even a recipient that would answer any id with
    # the same key (say, one keeping its previous key after a rotation) refuses a changed id.
    sealed_key = bob.pool.sealed_key
    relabelled = _rebuild(suite, dataclasses.replace(envelope, i=envelope.i + 1))
    with pytest.raises(DecryptionFailed):
        unseal(suite, lambda key_id: sealed_key, relabelled)
    assert unseal(suite, lambda key_id: sealed_key, body).s.a == alice.address


def _with_header(message: RatchetMessage, **changes: object) -> RatchetMessage:
    return RatchetMessage(h=dataclasses.replace(message.h, **changes), c=message.c)


def _header_variants(suite: Suite, m: RatchetMessage) -> dict[str, RatchetMessage]:
    other_dh = suite.dh.public_key_bytes(new_dh_key(suite, SYSTEM_ENTROPY))
    other_kem = suite.ratchet_kem.generate()
    other_kp = suite.ratchet_kem.public_key_bytes(other_kem)
    other_kc, _ = suite.ratchet_kem.encapsulate(other_kp)
    variants = {
        "ciphertext first byte": RatchetMessage(h=m.h, c=flip(m.c, 0)),
        "ciphertext tag": RatchetMessage(h=m.h, c=flip(m.c, -1)),
        "ciphertext truncated": RatchetMessage(h=m.h, c=m.c[:-1]),
        "n + 1": _with_header(m, n=m.h.n + 1),
        "n far ahead": _with_header(m, n=m.h.n + 5000),
        "pn": _with_header(m, pn=m.h.pn + 1),
        "dh flipped": _with_header(m, dh=flip(m.h.dh, 1)),
        "dh replaced": _with_header(m, dh=other_dh),
        "kc replaced": _with_header(m, kc=other_kc),
        "kp replaced": _with_header(m, kp=other_kp),
    }
    if m.h.n > 0:
        variants["n - 1"] = _with_header(m, n=m.h.n - 1)
    if m.h.kc is not None:
        variants["kc flipped"] = _with_header(m, kc=flip(m.h.kc, 5))
        variants["kc removed"] = _with_header(m, kc=None)
    if m.h.kp is not None:
        variants["kp flipped"] = _with_header(m, kp=flip(m.h.kp, 5))
        variants["kp removed"] = _with_header(m, kp=None)
    return variants


@pytest.mark.parametrize("suite_name", SUITES)
def test_tampered_ratchet_message_is_refused(suite_name: str) -> None:
    """Someone who can seal to Alice (anyone: the key is public) holds Bob's ratchet message
    and changes any part of it: refused, and Alice's state is unchanged. Targets: the first
    and the second message of Bob's first chain, which carry a KEM ciphertext (the first KEM
    step) and Bob's advertised KEM key."""
    alice, bob, _ = pair(suite_name)
    send(alice, bob, b"hello")
    bodies = [bob.encrypt(alice.address, 1, b"reply %d" % i) for i in range(2)]
    state = state_of(alice, bob)
    for i, body in enumerate(bodies):
        target = open_envelope(alice, body)
        m = target.message
        assert m.h.n == i
        assert m.h.kc is not None
        assert m.h.kp is not None
        variants = _header_variants(alice.suite, m)
        assert len(variants) >= 14
        for name, forged in variants.items():
            assert forged != m, name
            before = snapshot(state)
            with pytest.raises(DecryptionFailed):
                alice.decrypt(reseal(alice, forged, target.content.s))
            assert snapshot(state) == before, name
        # Control: the untouched message, resealed the same way, is accepted.
        assert alice.decrypt(reseal(alice, m, target.content.s)).plaintext == b"reply %d" % i
    send(alice, bob, b"and on")


@pytest.mark.parametrize("suite_name", SUITES)
def test_tampered_prekey_message_is_refused(suite_name: str) -> None:
    alice, bob, _ = pair(suite_name)
    body = alice.encrypt(bob.address, bob.device_id, b"first")
    opened = open_envelope(bob, body)
    pm = opened.prekey
    assert pm is not None
    suite = alice.suite
    other_dh = suite.dh.public_key_bytes(new_dh_key(suite, SYSTEM_ENTROPY))
    variants = {
        "ratchet ciphertext": dataclasses.replace(
            pm, m=RatchetMessage(h=pm.m.h, c=flip(pm.m.c, 3))
        ),
        "ratchet header n": dataclasses.replace(pm, m=_with_header(pm.m, n=1)),
        "base key": dataclasses.replace(pm, ek=other_dh),
        "kem ciphertext": dataclasses.replace(pm, kc=flip(pm.kc, 7)),
        "signed prekey id": dataclasses.replace(pm, spk=pm.spk + 1000),
        "kem prekey id": dataclasses.replace(pm, kem=pm.kem + 1000),
        "one-time id": dataclasses.replace(pm, opk=(pm.opk or 0) + 1000),
        "sealed key signature": dataclasses.replace(
            pm, sk=dataclasses.replace(pm.sk, signature=flip(pm.sk.signature, -1))
        ),
    }
    for name, forged in variants.items():
        # Each forgery goes to a fresh Bob with the same keys, so the cases are independent
        # (that a refused one consumes no prekey is tested in test_prekeys.py).
        fresh_bob = _clone_device(bob)
        with pytest.raises(DecryptionFailed):
            fresh_bob.decrypt(reseal(fresh_bob, forged, opened.content.s))
        assert fresh_bob.sessions == {}, name
        assert fresh_bob.trust == {}, name
    assert bob.decrypt(body).plaintext == b"first"


def _clone_device(device: Device) -> Device:
    """A device with the same keys and fresh session bookkeeping (pool dicts copied)."""
    pool = dataclasses.replace(
        device.pool,
        one_time_dh=dict(device.pool.one_time_dh),
        one_time_kem=dict(device.pool.one_time_kem),
        published_dh=set(device.pool.published_dh),
        published_kem=set(device.pool.published_kem),
        base_keys_seen=set(device.pool.base_keys_seen),
    )
    return dataclasses.replace(device, pool=pool, sessions={}, trust={}, peer_certs={})


@pytest.mark.parametrize("suite_name", SUITES)
def test_forged_prekey_message_does_not_replace_a_session(suite_name: str) -> None:
    """Mallory knows Alice's certificate (she is Alice's contact), identity and sealed key
    (public) and Bob's bundle: she can make a prekey message that names Alice and reaches
    PQXDH. It must not cost Alice and Bob their session."""
    alice, bob, _ = established(suite_name)
    suite = alice.suite
    state = state_of(bob, alice)
    before = snapshot(state)
    upload = bob.pool.upload()
    kc, _ = suite.ratchet_kem.encapsulate(upload.last_resort.public)
    ek = suite.dh.public_key_bytes(new_dh_key(suite, SYSTEM_ENTROPY))
    ratchet_key = suite.dh.public_key_bytes(new_dh_key(suite, SYSTEM_ENTROPY))
    forged = PrekeyMessage(
        v=suite.suite_id,
        ik=alice.identity.public,
        ek=ek,
        spk=upload.signed_prekey.id,
        opk=None,
        kem=upload.last_resort.id,
        lr=True,
        kc=kc,
        sk=alice.pool.sealed_key_public(),
        m=RatchetMessage(h=RatchetHeader(dh=ratchet_key, pn=0, n=0, kc=None, kp=None), c=bytes(40)),
    )
    sender = SenderDescriptor(
        a=alice.address,
        d=alice.device_id,
        cert=alice.certificate,
        h=certificate_hash(alice.certificate),
    )
    with pytest.raises(DecryptionFailed):
        bob.decrypt(reseal(bob, forged, sender))
    assert state_of(bob, alice) is state
    assert snapshot(state) == before
    exchange(alice, bob, 2)


# --- downgrade --------------------------------------------------------------------------


@pytest.mark.parametrize(("suite_name", "other_name"), SUITE_PAIRS)
def test_bundle_of_another_suite_is_refused(suite_name: str, other_name: str) -> None:
    alice, bob, _ = pair(suite_name)
    _, other_bob, _ = pair(other_name)
    other = get_suite(other_name)
    foreign = other_bob.pool.bundle(other_bob.address, other_bob.device_id)
    relabelled = dataclasses.replace(bob.pool.bundle(bob.address, 1), suite=other.suite_id)
    foreign_identity = dataclasses.replace(
        bob.pool.bundle(bob.address, 1), identity=foreign.identity
    )
    carol = Domain.create(suite_name, "example.org").device("carol", keyring_for())
    for bundle in (foreign, relabelled, foreign_identity):
        with pytest.raises(SuiteMismatch):
            verify_bundle(alice.suite, bundle)
        with pytest.raises(SuiteMismatch):
            carol.start_session(bundle)
        assert carol.sessions == {}
    carol.start_session(bob.pool.bundle(bob.address, 1))  # control
    assert carol.has_session(bob.address, 1)


@pytest.mark.parametrize(("suite_name", "other_name"), SUITE_PAIRS)
def test_envelope_of_another_suite_is_refused(suite_name: str, other_name: str) -> None:
    alice, bob, _ = established(suite_name)
    other_alice, other_bob, _ = pair(other_name)
    foreign = other_alice.encrypt(other_bob.address, 1, b"other suite")
    body = alice.encrypt(bob.address, 1, b"genuine")
    envelope = _envelope(alice.suite, body)
    relabelled = _rebuild(
        alice.suite, dataclasses.replace(envelope, v=get_suite(other_name).suite_id)
    )
    state = state_of(bob, alice)
    before = snapshot(state)
    for forged in (foreign, relabelled):
        with pytest.raises(SuiteMismatch):
            bob.decrypt(forged)
        assert snapshot(state) == before
    assert bob.decrypt(body).plaintext == b"genuine"
    # And the foreign envelope was genuine for its own suite.
    assert other_bob.decrypt(foreign).plaintext == b"other suite"


@pytest.mark.parametrize(("suite_name", "other_name"), SUITE_PAIRS)
def test_prekey_message_of_another_suite_is_refused(suite_name: str, other_name: str) -> None:
    alice, bob, _ = pair(suite_name)
    body = alice.encrypt(bob.address, 1, b"first")
    opened = open_envelope(bob, body)
    assert opened.prekey is not None
    other = get_suite(other_name)
    relabelled = dataclasses.replace(opened.prekey, v=other.suite_id)
    fresh_bob = _clone_device(bob)
    with pytest.raises(SuiteMismatch):
        fresh_bob.decrypt(reseal(fresh_bob, relabelled, opened.content.s))
    assert fresh_bob.sessions == {}
    # PQXDH itself refuses an initiator identity of the other suite.
    _, other_bob, _ = pair(other_name)
    with pytest.raises(SuiteMismatch):
        pqxdh.respond(
            bob.pool,
            bob.address,
            1,
            other_bob.identity.public,
            alice.address,
            1,
            opened.prekey.ek,
            opened.prekey.spk,
            opened.prekey.opk,
            opened.prekey.kem,
            opened.prekey.lr,
            opened.prekey.kc,
        )
    assert bob.decrypt(body).plaintext == b"first"


@pytest.mark.parametrize(("suite_name", "other_name"), SUITE_PAIRS)
def test_certificate_of_another_suite_is_refused(suite_name: str, other_name: str) -> None:
    alice, bob, domain = pair(suite_name)
    other_domain = Domain.create(other_name, domain.name, clock=domain.clock)
    alice.certificate = issue_certificate(
        other_domain.suite,
        other_domain.server_key,
        other_domain.key_id,
        alice.address,
        alice.device_id,
        alice.identity.public,
        int(domain.clock.now * 1000) + DAY_MS,
    )
    bob.keyring = keyring_for(domain, other_domain)  # even if Bob trusted that key
    with pytest.raises(SuiteMismatch):
        bob.decrypt(alice.encrypt(bob.address, 1, b"hello"))
    assert bob.sessions == {}


# --- sender certificates ----------------------------------------------------------------


def _reissue(
    domain: Domain,
    device: Device,
    *,
    address: str | None = None,
    identity: Identity | None = None,
    expires_ms: int | None = None,
    server: Domain | None = None,
) -> None:
    signer = server or domain
    device.certificate = issue_certificate(
        domain.suite,
        signer.server_key,
        signer.key_id,
        address or device.address,
        device.device_id,
        (identity or device.identity).public,
        expires_ms if expires_ms is not None else int(domain.clock.now * 1000) + DAY_MS,
    )


@pytest.mark.parametrize("suite_name", SUITES)
def test_expired_certificate_in_full_is_refused(suite_name: str) -> None:
    alice, bob, domain = pair(suite_name)
    expires = alice.certificate.body.expires
    domain.clock.now = expires / 1000
    body = alice.encrypt(bob.address, 1, b"late")
    with pytest.raises(CertificateError):
        bob.decrypt(body)
    assert bob.sessions == {}
    domain.clock.now = (expires - 1) / 1000  # control: one millisecond earlier
    assert bob.decrypt(body).plaintext == b"late"


@pytest.mark.parametrize("suite_name", SUITES)
def test_expired_certificate_by_hash_is_refused(suite_name: str) -> None:
    alice, bob, domain = established(suite_name)
    body = alice.encrypt(bob.address, 1, b"hash only")
    assert open_envelope(bob, body).content.s.cert is None  # the cached path
    domain.clock.now = alice.certificate.body.expires / 1000
    state = state_of(bob, alice)
    before = snapshot(state)
    with pytest.raises(CertificateError):
        bob.decrypt(body)
    assert snapshot(state) == before
    domain.clock.now -= 0.001
    assert bob.decrypt(body).plaintext == b"hash only"


@pytest.mark.parametrize("suite_name", SUITES)
def test_certificate_is_checked_as_of_the_envelopes_node_time(suite_name: str) -> None:
    """A message that waited in the mailbox past the certificate's expiry still opens when
    the node received it in time; a later node time, or a backdating beyond the longest
    envelope life, does not help."""
    alice, bob, domain = pair(suite_name)
    expires = alice.certificate.body.expires
    body = alice.encrypt(bob.address, 1, b"waited")
    domain.clock.now = (expires + 3 * DAY_MS) / 1000  # the recipient comes back late
    with pytest.raises(CertificateError):
        bob.decrypt(body, sent_ms=expires)  # stored at the expiry instant: too late
    with pytest.raises(CertificateError):
        bob.decrypt(body)  # no node time: checked as of now
    assert bob.decrypt(body, sent_ms=expires - 1).plaintext == b"waited"


@pytest.mark.parametrize("suite_name", SUITES)
def test_node_time_cannot_revive_a_long_expired_certificate(suite_name: str) -> None:
    alice, bob, domain = pair(suite_name)
    expires = alice.certificate.body.expires
    body = alice.encrypt(bob.address, 1, b"old")
    domain.clock.now = (expires + MAX_CERTIFICATE_BACKDATE_MS + DAY_MS) / 1000
    with pytest.raises(CertificateError):
        bob.decrypt(body, sent_ms=expires - 1)


@pytest.mark.parametrize("suite_name", SUITES)
def test_certificate_needs_a_current_server_key(suite_name: str) -> None:
    alice, bob, domain = pair(suite_name)
    (server_key,) = bob.keyring.server_keys(domain.name)
    not_after = server_key.not_after
    _reissue(domain, alice, expires_ms=not_after + 10 * DAY_MS)
    body = alice.encrypt(bob.address, 1, b"hello")
    domain.clock.now = not_after / 1000  # the certificate is valid, its signer's key not
    with pytest.raises(CertificateError):
        bob.decrypt(body)
    domain.clock.now = (not_after - 1) / 1000
    assert bob.decrypt(body).plaintext == b"hello"


@pytest.mark.parametrize("suite_name", SUITES)
def test_certificate_signed_by_a_wrong_key_is_refused(suite_name: str) -> None:
    alice, bob, domain = pair(suite_name)
    impostor = Domain.create(suite_name, domain.name, clock=domain.clock)  # same key id
    assert impostor.key_id == domain.key_id
    genuine = alice.certificate
    forgeries = {
        "other key": (impostor.server_key, domain.key_id),
        "unknown key id": (domain.server_key, b"k2"),
    }
    for name, (key, key_id) in forgeries.items():
        alice.certificate = issue_certificate(
            domain.suite,
            key,
            key_id,
            alice.address,
            1,
            alice.identity.public,
            genuine.body.expires,
        )
        with pytest.raises(CertificateError):
            bob.decrypt(alice.encrypt(bob.address, 1, b"hello"))
        assert bob.sessions == {}, name
    alice.certificate = dataclasses.replace(genuine, signature=flip(genuine.signature, -1))
    with pytest.raises(CertificateError):
        bob.decrypt(alice.encrypt(bob.address, 1, b"hello"))
    alice.certificate = dataclasses.replace(
        genuine, body=dataclasses.replace(genuine.body, expires=genuine.body.expires + 1)
    )
    with pytest.raises(CertificateError):
        bob.decrypt(alice.encrypt(bob.address, 1, b"hello"))
    alice.certificate = genuine
    assert bob.decrypt(alice.encrypt(bob.address, 1, b"hello")).plaintext == b"hello"


@pytest.mark.parametrize("suite_name", SUITES)
@pytest.mark.parametrize("separate_key_ids", [False, True])
def test_domain_cannot_certify_another_domains_users(
    suite_name: str, separate_key_ids: bool
) -> None:
    x = Domain.create(suite_name, "x.example")
    y = Domain.create(suite_name, "y.example", clock=x.clock)
    if separate_key_ids:
        x.key_id = b"x-key"
    keyring = keyring_for(x, y)
    bob = x.device("bob", keyring)
    alice = y.device("alice", keyring)
    # Control: cross-domain certificates from each user's own domain are accepted.
    alice.start_session(bob.pool.bundle(bob.address, 1))
    send(alice, bob, b"from y")
    send(bob, alice, b"from x")
    # Domain X signs a certificate for a user of Y, for a device of its own making.
    mallory = x.device("mallory", keyring)
    _reissue(x, mallory, address="alice@y.example", server=x)
    mallory.address = "alice@y.example"
    mallory.device_id = 1
    assert mallory.certificate.body.address == alice.address
    mallory.start_session(bob.pool.bundle(bob.address, 1))
    with pytest.raises(CertificateError):
        bob.decrypt(mallory.encrypt(bob.address, 1, b"I am alice"))
    send(alice, bob, b"still the real alice")


@pytest.mark.parametrize("suite_name", SUITES)
def test_certificate_for_another_identity_is_refused_at_session_setup(suite_name: str) -> None:
    alice, bob, domain = pair(suite_name)
    other = Identity.generate(alice.suite, SYSTEM_ENTROPY)
    _reissue(domain, alice, identity=other)
    prekeys = (set(bob.pool.one_time_dh), set(bob.pool.one_time_kem))
    with pytest.raises(CertificateError):
        bob.decrypt(alice.encrypt(bob.address, 1, b"hello"))
    assert bob.sessions == {}
    assert bob.trust == {}
    # Refused before PQXDH: no one-time prekey was spent on it.
    assert (set(bob.pool.one_time_dh), set(bob.pool.one_time_kem)) == prekeys


@pytest.mark.parametrize("suite_name", SUITES)
def test_certificate_for_another_identity_is_refused_in_a_session(suite_name: str) -> None:
    """A certificate the domain really issued for Alice's address, but naming another
    identity key (her next one, or one the domain made up), does not pass in a session with
    her current key; nor does it displace the certificate Bob has for her."""
    alice, bob, domain = established(suite_name)
    genuine = alice.certificate
    state = state_of(bob, alice)
    before = snapshot(state)
    _reissue(domain, alice, identity=Identity.generate(alice.suite, SYSTEM_ENTROPY))
    with pytest.raises(CertificateError):
        bob.decrypt(alice.encrypt(bob.address, 1, b"other identity"))
    assert snapshot(state) == before
    alice.certificate = genuine
    body = alice.encrypt(bob.address, 1, b"back to normal")
    assert open_envelope(bob, body).content.s.cert is None  # Bob acked it: hash only
    assert bob.decrypt(body).plaintext == b"back to normal"


@pytest.mark.parametrize("suite_name", SUITES)
def test_certificate_for_another_sender_is_refused(suite_name: str) -> None:
    alice, bob, domain = pair(suite_name)
    genuine = alice.certificate
    _reissue(domain, alice, address=f"carol@{domain.name}")
    with pytest.raises(CertificateError):
        bob.decrypt(alice.encrypt(bob.address, 1, b"hello"))
    alice.certificate = dataclasses.replace(
        genuine, body=dataclasses.replace(genuine.body, device=2)
    )
    with pytest.raises(CertificateError):
        bob.decrypt(alice.encrypt(bob.address, 1, b"hello"))
    assert bob.sessions == {}


@pytest.mark.parametrize("suite_name", SUITES)
def test_unauthenticated_certificate_does_not_displace_the_cached_one(suite_name: str) -> None:
    """Mallory has an older, still valid certificate of Alice (certificates are renewed and
    every contact of Alice sees hers) and seals it to Bob with garbage. Bob must not start
    expecting that certificate from Alice: her next hash-only message still goes through."""
    alice, bob, domain = pair(suite_name)
    old = alice.certificate
    domain.clock.now += 3600
    _reissue(domain, alice)
    assert alice.certificate != old
    send(alice, bob, b"hello")
    send(bob, alice, b"hi")
    body = alice.encrypt(bob.address, 1, b"by hash")
    assert open_envelope(bob, body).content.s.cert is None
    junk = RatchetMessage(
        h=RatchetHeader(dh=state_of(alice, bob).dhr or b"", pn=0, n=7, kc=None, kp=None),
        c=bytes(32),
    )
    sender = SenderDescriptor(a=alice.address, d=1, cert=old, h=certificate_hash(old))
    with pytest.raises(DecryptionFailed):
        bob.decrypt(reseal(bob, junk, sender))
    assert bob.decrypt(body).plaintext == b"by hash"


# --- prekeys ------------------------------------------------------------------------------


@pytest.mark.parametrize("suite_name", SUITES)
def test_one_time_prekeys_are_used_at_most_once(suite_name: str) -> None:
    alice, bob, domain = pair(suite_name)
    bundle = bob.pool.bundle(bob.address, 1)  # the bundle Alice used: lowest ids
    assert alice.sessions[(bob.address, 1)].pending is not None
    assert bundle.one_time is not None
    assert not bundle.kem_prekey.last_resort
    assert bundle.one_time.id in bob.pool.one_time_dh
    assert bundle.kem_prekey.id in bob.pool.one_time_kem
    send(alice, bob, b"first")
    assert bundle.one_time.id not in bob.pool.one_time_dh
    assert bundle.kem_prekey.id not in bob.pool.one_time_kem
    # Carol got the same bundle (a misbehaving node): Bob refuses her prekey message.
    carol = domain.device("carol", bob.keyring)
    carol.start_session(bundle)
    with pytest.raises(DecryptionFailed):
        bob.decrypt(carol.encrypt(bob.address, 1, b"me too"))
    assert not bob.has_session(carol.address, 1)
    # Alice herself starting over from the same bundle fares no better.
    alice.start_session(bundle)
    with pytest.raises(DecryptionFailed):
        bob.decrypt(alice.encrypt(bob.address, 1, b"again"))
    # Control: a fresh bundle (the next one-time keys) works for Carol.
    fresh = bob.pool.bundle(bob.address, 1)
    assert fresh.one_time is not None
    assert fresh.one_time.id != bundle.one_time.id
    carol.start_session(fresh)
    send(carol, bob, b"with fresh keys")


@pytest.mark.parametrize("suite_name", SUITES)
@pytest.mark.parametrize("missing", ["kem", "dh", "both"])
def test_sessions_without_one_time_keys(suite_name: str, missing: str) -> None:
    alice, bob, domain = pair(suite_name)
    if missing in ("kem", "both"):
        bob.pool.one_time_kem.clear()
    if missing in ("dh", "both"):
        bob.pool.one_time_dh.clear()
    kem_ids = []
    for initiator in [alice, domain.device("carol", bob.keyring)]:
        bundle = bob.pool.bundle(bob.address, 1)
        assert bundle.kem_prekey.last_resort == (missing in ("kem", "both"))
        assert (bundle.one_time is None) == (missing in ("dh", "both"))
        kem_ids.append(bundle.kem_prekey.id)
        initiator.start_session(bundle)
        send(initiator, bob, b"hello from " + initiator.address.encode())
        send(bob, initiator, b"hi " + initiator.address.encode())
        exchange(initiator, bob, 2)
    if missing in ("kem", "both"):
        # The last-resort key served both and is kept.
        assert kem_ids == [bob.pool.last_resort_id] * 2
        assert bob.pool.take_kem(bob.pool.last_resort_id, last_resort=True) is not None
    else:
        assert kem_ids[0] != kem_ids[1]
        assert not set(kem_ids) & set(bob.pool.one_time_kem)


@pytest.mark.parametrize("suite_name", SUITES)
def test_kem_prekey_kind_must_match(suite_name: str) -> None:
    """A one-time KEM key id claimed as last resort, or the last-resort id claimed as one-time,
    is not found: the flag cannot make Bob reuse a one-time key or consume the last resort."""
    alice, bob, _ = pair(suite_name)
    pm = open_envelope(bob, alice.encrypt(bob.address, 1, b"x")).prekey
    assert pm is not None
    assert not pm.lr
    last_resort_id = bob.pool.last_resort_id
    for kem_id, lr in ((pm.kem, True), (last_resort_id, False)):
        with pytest.raises(DecryptionFailed):
            pqxdh.respond(
                bob.pool,
                bob.address,
                1,
                alice.identity.public,
                alice.address,
                1,
                pm.ek,
                pm.spk,
                None,
                kem_id,
                lr,
                pm.kc,
            )
    assert bob.pool.last_resort_id == last_resort_id


# --- identity changes ---------------------------------------------------------------------


@pytest.mark.parametrize("suite_name", SUITES)
def test_changed_identity_blocks_sending_until_accepted(suite_name: str) -> None:
    alice, bob, domain = established(suite_name)
    assert not alice.identity_changed(bob.address)
    # Bob re-registers: a new device with a new identity at the same address.
    new_bob = domain.device("bob", bob.keyring)
    assert new_bob.identity.public != bob.identity.public
    alice.start_session(new_bob.pool.bundle(new_bob.address, 1))
    assert alice.identity_changed(bob.address)
    with pytest.raises(UntrustedIdentity) as info:
        alice.encrypt(bob.address, 1, b"blocked")
    assert info.value.address == bob.address
    alice.accept_identity(bob.address)
    assert not alice.identity_changed(bob.address)
    send(alice, new_bob, b"hello new bob")
    send(new_bob, alice, b"hello alice")


# --- bundles ------------------------------------------------------------------------------


def _corrupt(bundle: PrekeyBundle, part: str, index: int) -> PrekeyBundle:
    if part == "identity dh":
        identity = bundle.identity
        return dataclasses.replace(
            bundle, identity=dataclasses.replace(identity, dh_sig=flip(identity.dh_sig, index))
        )
    field_name = {
        "signed prekey": "signed_prekey",
        "kem prekey": "kem_prekey",
        "sealed key": "sealed_key",
    }[part]
    key = getattr(bundle, field_name)
    return dataclasses.replace(
        bundle, **{field_name: dataclasses.replace(key, signature=flip(key.signature, index))}
    )


@pytest.mark.parametrize("suite_name", SUITES)
@pytest.mark.parametrize("part", ["signed prekey", "kem prekey", "sealed key", "identity dh"])
@pytest.mark.parametrize("index", [0, -1], ids=["ml-dsa half", "classical half"])
def test_bundle_with_a_bad_signature_is_refused(suite_name: str, part: str, index: int) -> None:
    _, bob, domain = pair(suite_name)
    carol = domain.device("carol", bob.keyring)
    bundle = bob.pool.bundle(bob.address, 1)
    verify_bundle(bob.suite, bundle)  # control
    bad = _corrupt(bundle, part, index)
    with pytest.raises(InvalidBundle):
        verify_bundle(bob.suite, bad)
    with pytest.raises(InvalidBundle):
        carol.start_session(bad)
    assert carol.sessions == {}
    assert carol.trust == {}


@pytest.mark.parametrize("suite_name", SUITES)
def test_bundle_with_swapped_keys_is_refused(suite_name: str) -> None:
    """Valid signatures over other keys, or a signature moved to another kind of key."""
    _, bob, _ = pair(suite_name)
    suite = bob.suite
    bundle = bob.pool.bundle(bob.address, 1)
    other = bob.pool.upload()
    spare_kem = other.kem_one_time[1]
    variants = [
        dataclasses.replace(
            bundle,
            signed_prekey=dataclasses.replace(
                bundle.signed_prekey,
                public=suite.dh.public_key_bytes(new_dh_key(suite, SYSTEM_ENTROPY)),
            ),
        ),
        dataclasses.replace(
            bundle, kem_prekey=dataclasses.replace(bundle.kem_prekey, public=spare_kem.public)
        ),
        dataclasses.replace(
            bundle, kem_prekey=dataclasses.replace(bundle.kem_prekey, id=spare_kem.id)
        ),
        # a one-time KEM prekey passed off as the last-resort one (another signing context)
        dataclasses.replace(
            bundle, kem_prekey=dataclasses.replace(bundle.kem_prekey, last_resort=True)
        ),
        # the signed prekey's signature presented for the sealed key
        dataclasses.replace(
            bundle,
            sealed_key=dataclasses.replace(
                bundle.sealed_key, signature=bundle.signed_prekey.signature
            ),
        ),
    ]
    for bad in variants:
        with pytest.raises(InvalidBundle):
            verify_bundle(suite, bad)
