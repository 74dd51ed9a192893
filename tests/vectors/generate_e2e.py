"""Generate the end-to-end known-answer vectors ``tests/vectors/e2e-<suite>.json``.

Run from the repository root::

    .venv/bin/python -m tests.vectors.generate_e2e            # keep the recorded signatures
    .venv/bin/python -m tests.vectors.generate_e2e --fresh-signatures

For each suite, with deterministic randomness (``DeterministicEntropy``: SHAKE-256 of
``seed || counter``, ML-KEM encapsulation derandomised as FIPS 203 ``Encaps_internal``) and a
fixed clock, it derives Alice's and Bob's keys, runs PQXDH (Alice initiates from Bob's
bundle, Bob responds) and a six-message Double Ratchet conversation whose first reply makes a
KEM step, and records every key, the PQXDH outputs and every ratchet message.

Signatures are the one thing that cannot be replayed: ML-DSA (hedged) and ECDSA in
``cryptography`` draw their own randomness. So the five signatures (both identities' DH-key
signatures and Bob's signed prekey, KEM prekey and sealed-sender key) are *inputs*: made once,
recorded in the file, reused on every later run, and verified (``verify_bundle``) each time.
Everything else (SK, AD, which includes the identity encodings and so the signatures, the
base key, the KEM ciphertext, every ratchet message) is a function of seeds + signatures, and
``tests/client/test_e2e_vectors.py`` regenerates it and compares it with the file.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from client import pqxdh, ratchet
from client.formats import RatchetMessage
from client.identity import Identity, PrekeyPool, new_dh_key, new_mlkem_key, verify_bundle
from client.ratchet import RatchetState
from suites import Suite, get_suite, labels
from suites.dh import DhPrivateKey
from suites.kem import MlKemPrivateKey
from tests.client.pairs import DeterministicEntropy
from wire import encode
from wire.e2e import (
    IdentityKey,
    KemPrekey,
    OneTimePrekey,
    PrekeyBundle,
    PrekeyPayload,
    SealedSenderKey,
    SignedPrekey,
)

VECTORS = Path(__file__).resolve().parent
SUITE_NAMES = ("xwing", "cnsa2")
FORMAT_VERSION = 1
NOW = 1_800_000_000.0
ALICE = ("alice@example.org", 1)
BOB = ("bob@example.org", 7)
# Bob's prekey ids (any values; fixed so the bundle is reproducible).
SIGNED_PREKEY_ID = 1
SEALED_KEY_ID = 2
LAST_RESORT_ID = 3
ONE_TIME_DH_ID = 4
ONE_TIME_KEM_ID = 5
# The conversation: (sender, plaintext). Alice's first two messages are prekey messages;
# Bob's first reply starts his first sending chain, which makes the first KEM step (no step
# has been made yet and Alice advertised her KEM key) and advertises his own KEM key; Alice's
# next chain advertises the key that replaces the one Bob encapsulated to.
CONVERSATION = (
    ("alice", b"Hello Bob, this is Alice."),
    ("alice", b"Second message, same chain."),
    ("bob", b"Hi Alice! (first reply: KEM step)"),
    ("alice", b"Alice's second chain."),
    ("bob", b"Bob's second chain."),
    ("bob", b""),
)
SIGNATURE_NAMES = (
    "alice_identity_dh",
    "bob_identity_dh",
    "bob_signed_prekey",
    "bob_kem_prekey",
    "bob_sealed_key",
)


def seed_for(suite_name: str, who: str) -> bytes:
    return f"sealrelay e2e vectors v{FORMAT_VERSION}/{suite_name}/{who}".encode()


def path_for(suite_name: str) -> Path:
    return VECTORS / f"e2e-{suite_name}.json"


def _payload(suite: Suite, key_id: int, public: bytes) -> bytes:
    return encode(PrekeyPayload(suite=suite.suite_id, id=key_id, public=public))


@dataclass
class Setup:
    """Everything derived from the seeds and the recorded signatures, before any message."""

    suite: Suite
    alice_entropy: DeterministicEntropy
    bob_entropy: DeterministicEntropy
    alice: Identity
    bob: Identity
    pool: PrekeyPool
    one_time: DhPrivateKey  # consumed from the pool by PQXDH
    kem_prekey: MlKemPrivateKey  # likewise
    bundle: PrekeyBundle
    signatures: dict[str, bytes]
    initiator: pqxdh.InitiatorSetup
    responder: pqxdh.ResponderSetup
    alice_state: RatchetState
    bob_state: RatchetState


def _identity(
    suite: Suite, entropy: DeterministicEntropy, signature: bytes | None
) -> tuple[Identity, bytes]:
    sig_key = suite.sig.private_key_from_bytes(entropy.random_bytes(suite.sig.private_len))
    dh_key = new_dh_key(suite, entropy)
    dh_pub = suite.dh.public_key_bytes(dh_key)
    if signature is None:
        signature = suite.sig.sign(sig_key, dh_pub, labels.CTX_IDENTITY_DH)
    public = IdentityKey(
        suite=suite.suite_id,
        sig=suite.sig.public_key_bytes(sig_key),
        dh=dh_pub,
        dh_sig=signature,
    )
    return Identity(suite, sig_key, dh_key, public), signature


def setup(suite_name: str, signatures: dict[str, bytes] | None) -> Setup:
    """Keys, bundle, PQXDH on both sides and both initial ratchet states. ``signatures``
    ``None`` makes fresh ones."""
    suite = get_suite(suite_name)
    given = signatures or {}
    sigs: dict[str, bytes] = {}
    ea = DeterministicEntropy(seed_for(suite_name, "alice"))
    eb = DeterministicEntropy(seed_for(suite_name, "bob"))

    alice, sigs["alice_identity_dh"] = _identity(suite, ea, given.get("alice_identity_dh"))
    bob, sigs["bob_identity_dh"] = _identity(suite, eb, given.get("bob_identity_dh"))
    signed_prekey = new_dh_key(suite, eb)
    one_time = new_dh_key(suite, eb)
    kem_prekey = new_mlkem_key(suite, eb)
    last_resort = new_mlkem_key(suite, eb)
    sealed = suite.kem.private_key_from_seed(eb.random_bytes(32))
    pool = PrekeyPool(
        identity=bob,
        signed_prekey_id=SIGNED_PREKEY_ID,
        signed_prekey=signed_prekey,
        sealed_key_id=SEALED_KEY_ID,
        sealed_key=sealed,
        last_resort_id=LAST_RESORT_ID,
        last_resort=last_resort,
        one_time_dh={ONE_TIME_DH_ID: one_time},
        one_time_kem={ONE_TIME_KEM_ID: kem_prekey},
        next_id=ONE_TIME_KEM_ID + 1,
    )

    def signed(name: str, key_id: int, public: bytes, context: bytes) -> bytes:
        sig = given.get(name)
        if sig is None:
            sig = bob.sign(_payload(suite, key_id, public), context)
        sigs[name] = sig
        return sig

    spk_pub = suite.dh.public_key_bytes(signed_prekey)
    kem_pub = suite.ratchet_kem.public_key_bytes(kem_prekey)
    sealed_pub = suite.kem.public_key_bytes(sealed)
    bundle = PrekeyBundle(
        suite=suite.suite_id,
        address=BOB[0],
        device=BOB[1],
        identity=bob.public,
        signed_prekey=SignedPrekey(
            id=SIGNED_PREKEY_ID,
            public=spk_pub,
            signature=signed(
                "bob_signed_prekey", SIGNED_PREKEY_ID, spk_pub, labels.CTX_SIGNED_PREKEY
            ),
        ),
        one_time=OneTimePrekey(id=ONE_TIME_DH_ID, public=suite.dh.public_key_bytes(one_time)),
        kem_prekey=KemPrekey(
            id=ONE_TIME_KEM_ID,
            public=kem_pub,
            last_resort=False,
            signature=signed("bob_kem_prekey", ONE_TIME_KEM_ID, kem_pub, labels.CTX_KEM_PREKEY),
        ),
        sealed_key=SealedSenderKey(
            id=SEALED_KEY_ID,
            public=sealed_pub,
            signature=signed(
                "bob_sealed_key", SEALED_KEY_ID, sealed_pub, labels.CTX_SEALED_SENDER_KEY
            ),
        ),
    )
    verify_bundle(suite, bundle)  # the recorded signatures are genuine

    initiator = pqxdh.initiate(alice, ALICE[0], ALICE[1], bundle, ea)
    responder = pqxdh.respond(
        pool,
        BOB[0],
        BOB[1],
        alice.public,
        ALICE[0],
        ALICE[1],
        initiator.base_key,
        initiator.signed_prekey_id,
        initiator.one_time_id,
        initiator.kem_id,
        initiator.kem_last_resort,
        initiator.kem_ct,
    )
    if (responder.sk, responder.ad) != (initiator.sk, initiator.ad):
        raise AssertionError("PQXDH: the two sides disagree")
    alice_state = ratchet.init_initiator(
        suite, initiator.sk, initiator.ad, initiator.remote_ratchet_key, ea, NOW
    )
    bob_state = ratchet.init_responder(
        suite, responder.sk, responder.ad, responder.ratchet_key, eb, NOW
    )
    return Setup(
        suite,
        ea,
        eb,
        alice,
        bob,
        pool,
        one_time,
        kem_prekey,
        bundle,
        sigs,
        initiator,
        responder,
        alice_state,
        bob_state,
    )


def receiver_entropy(s: Setup, sender: str) -> DeterministicEntropy:
    return s.bob_entropy if sender == "alice" else s.alice_entropy


def _header(message: RatchetMessage) -> dict[str, Any]:
    h = message.h
    return {
        "dh": h.dh.hex(),
        "pn": h.pn,
        "n": h.n,
        "kc": None if h.kc is None else h.kc.hex(),
        "kp": None if h.kp is None else h.kp.hex(),
    }


def build(suite_name: str, signatures: dict[str, bytes] | None) -> dict[str, Any]:
    """The whole vector file for one suite, as a JSON-ready dict."""
    s = setup(suite_name, signatures)
    suite = s.suite
    alice_ratchet_private = suite.dh.private_key_bytes(s.alice_state.dhs)
    states = {"alice": s.alice_state, "bob": s.bob_state}
    messages = []
    for sender, plaintext in CONVERSATION:
        receiver = "bob" if sender == "alice" else "alice"
        message = ratchet.encrypt(states[sender], plaintext)
        got = ratchet.decrypt(states[receiver], message, receiver_entropy(s, sender), NOW)
        if got != plaintext:
            raise AssertionError("conversation does not decrypt")
        messages.append(
            {
                "sender": sender,
                "plaintext": plaintext.hex(),
                "header": _header(message),
                "encoded": encode(message).hex(),
                "root_key_after": {"alice": s.alice_state.rk.hex(), "bob": s.bob_state.rk.hex()},
            }
        )
    if s.alice_state.kem_steps < 1 or s.bob_state.kem_steps < 1:
        raise AssertionError("the conversation made no KEM step")
    dh, sig, kem, rkem = suite.dh, suite.sig, suite.kem, suite.ratchet_kem
    return {
        "format": FORMAT_VERSION,
        "suite": suite_name,
        "suite_id": suite.suite_id,
        "generator": "tests/vectors/generate_e2e.py",
        "inputs": {
            "alice_seed": seed_for(suite_name, "alice").hex(),
            "bob_seed": seed_for(suite_name, "bob").hex(),
            "now": NOW,
            "alice": {"address": ALICE[0], "device": ALICE[1]},
            "bob": {"address": BOB[0], "device": BOB[1]},
            "signatures": {name: s.signatures[name].hex() for name in SIGNATURE_NAMES},
        },
        "keys": {
            "alice": {
                "sig_private": sig.private_key_bytes(s.alice.sig_key).hex(),
                "dh_private": dh.private_key_bytes(s.alice.dh_key).hex(),
                "identity": encode(s.alice.public).hex(),
                "first_ratchet_private": alice_ratchet_private.hex(),
            },
            "bob": {
                "sig_private": sig.private_key_bytes(s.bob.sig_key).hex(),
                "dh_private": dh.private_key_bytes(s.bob.dh_key).hex(),
                "identity": encode(s.bob.public).hex(),
                "signed_prekey_private": dh.private_key_bytes(s.pool.signed_prekey).hex(),
                "one_time_private": dh.private_key_bytes(s.one_time).hex(),
                "kem_prekey_seed": rkem.private_key_bytes(s.kem_prekey).hex(),
                "last_resort_seed": rkem.private_key_bytes(s.pool.last_resort).hex(),
                "sealed_seed": kem.private_key_bytes(s.pool.sealed_key).hex(),
            },
            "bundle": encode(s.bundle).hex(),
        },
        "pqxdh": {
            "sk": s.initiator.sk.hex(),
            "ad": s.initiator.ad.hex(),
            "base_key": s.initiator.base_key.hex(),
            "kem_ct": s.initiator.kem_ct.hex(),
        },
        "ratchet": {
            "messages": messages,
            "kem_steps": {"alice": s.alice_state.kem_steps, "bob": s.bob_state.kem_steps},
        },
    }


def recorded_signatures(data: dict[str, Any]) -> dict[str, bytes]:
    return {k: bytes.fromhex(v) for k, v in data["inputs"]["signatures"].items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--fresh-signatures",
        action="store_true",
        help="sign anew instead of reusing the signatures recorded in the files",
    )
    parser.add_argument("suites", nargs="*", default=list(SUITE_NAMES))
    args = parser.parse_args(argv)
    for suite_name in args.suites:
        path = path_for(suite_name)
        signatures = None
        if path.exists() and not args.fresh_signatures:
            signatures = recorded_signatures(json.loads(path.read_text()))
        data = build(suite_name, signatures)
        path.write_text(json.dumps(data, indent=1) + "\n")
        print(f"wrote {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
