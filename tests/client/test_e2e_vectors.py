"""The project's own end-to-end vectors (``tests/vectors/e2e-<suite>.json``; how they were made
and checked: ``tests/vectors/README.md``).

Regenerating them from their recorded inputs must give the committed file byte for byte
(any change to a KDF, a label, the wire encoding or the order randomness is drawn in shows
up here); the recorded messages must decrypt, also out of order; and PQXDH run on Bob's side
from the recorded private keys alone must give the recorded SK and AD.
"""

from __future__ import annotations

import hashlib
import hmac

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from kyber_py.ml_kem import ML_KEM_768, ML_KEM_1024

from client import pqxdh, ratchet
from client.formats import AssociatedDataInput, RatchetMessage
from client.identity import Identity, PrekeyPool, verify_bundle
from suites import get_suite
from tests.client.envelopes import SUITES
from tests.vectorfiles import load_own_vectors, unhex
from tests.vectors import generate_e2e
from wire import decode, encode
from wire.e2e import IdentityKey, PrekeyBundle


def _vectors(suite_name: str) -> dict:
    return load_own_vectors(f"e2e-{suite_name}.json")


@pytest.mark.parametrize("suite_name", SUITES)
def test_vectors_regenerate_identically(suite_name: str) -> None:
    committed = _vectors(suite_name)
    assert committed["suite"] == suite_name
    regenerated = generate_e2e.build(suite_name, generate_e2e.recorded_signatures(committed))
    # Section by section first, for a readable failure.
    for section in ("inputs", "keys", "pqxdh"):
        assert regenerated[section] == committed[section], section
    for i, (new, old) in enumerate(
        zip(regenerated["ratchet"]["messages"], committed["ratchet"]["messages"], strict=True)
    ):
        assert new == old, f"message {i}"
    assert regenerated == committed


@pytest.mark.parametrize("suite_name", SUITES)
def test_recorded_messages_decrypt_in_any_order_within_a_chain(suite_name: str) -> None:
    committed = _vectors(suite_name)
    s = generate_e2e.setup(suite_name, generate_e2e.recorded_signatures(committed))
    recorded = committed["ratchet"]["messages"]
    messages = [decode(unhex(m["encoded"]), RatchetMessage) for m in recorded]
    for m, raw in zip(messages, recorded, strict=True):
        assert encode(m).hex() == raw["encoded"]  # canonical
    assert [m["sender"] for m in recorded] == [c[0] for c in generate_e2e.CONVERSATION]
    # Within each chain the later message first; across chains in order.
    schedule = [1, 0, 2, 3, 5, 4]
    states = {"alice": s.alice_state, "bob": s.bob_state}
    for i in schedule:
        sender = recorded[i]["sender"]
        receiver = "bob" if sender == "alice" else "alice"
        plaintext = ratchet.decrypt(
            states[receiver], messages[i], generate_e2e.receiver_entropy(s, sender), 0.0
        )
        assert plaintext == unhex(recorded[i]["plaintext"])
    # The first reply carried the KEM step.
    assert messages[2].h.kc is not None
    assert states["alice"].kem_steps == states["bob"].kem_steps == 1


@pytest.mark.parametrize("suite_name", SUITES)
def test_pqxdh_from_the_recorded_keys(suite_name: str) -> None:
    """Bob's side of PQXDH from the private keys in the file (no entropy stream at all)."""
    suite = get_suite(suite_name)
    v = _vectors(suite_name)
    keys = v["keys"]
    bundle = decode(unhex(keys["bundle"]), PrekeyBundle)
    verify_bundle(suite, bundle)
    bob_public = decode(unhex(keys["bob"]["identity"]), IdentityKey)
    alice_public = decode(unhex(keys["alice"]["identity"]), IdentityKey)
    assert bundle.identity == bob_public
    bob = Identity(
        suite,
        suite.sig.private_key_from_bytes(unhex(keys["bob"]["sig_private"])),
        suite.dh.private_key_from_bytes(unhex(keys["bob"]["dh_private"])),
        bob_public,
    )
    assert suite.sig.public_key_bytes(bob.sig_key) == bob_public.sig
    assert suite.dh.public_key_bytes(bob.dh_key) == bob_public.dh
    alice_sig = suite.sig.private_key_from_bytes(unhex(keys["alice"]["sig_private"]))
    assert suite.sig.public_key_bytes(alice_sig) == alice_public.sig
    one_time = suite.dh.private_key_from_bytes(unhex(keys["bob"]["one_time_private"]))
    assert bundle.one_time is not None
    assert suite.dh.public_key_bytes(one_time) == bundle.one_time.public
    kem_prekey = suite.ratchet_kem.private_key_from_seed(unhex(keys["bob"]["kem_prekey_seed"]))
    assert suite.ratchet_kem.public_key_bytes(kem_prekey) == bundle.kem_prekey.public
    pool = PrekeyPool(
        identity=bob,
        signed_prekey_id=bundle.signed_prekey.id,
        signed_prekey=suite.dh.private_key_from_bytes(unhex(keys["bob"]["signed_prekey_private"])),
        sealed_key_id=bundle.sealed_key.id,
        sealed_key=suite.kem.private_key_from_seed(unhex(keys["bob"]["sealed_seed"])),
        last_resort_id=generate_e2e.LAST_RESORT_ID,
        last_resort=suite.ratchet_kem.private_key_from_seed(unhex(keys["bob"]["last_resort_seed"])),
        one_time_dh={bundle.one_time.id: one_time},
        one_time_kem={bundle.kem_prekey.id: kem_prekey},
    )
    alice_address, alice_device = v["inputs"]["alice"]["address"], v["inputs"]["alice"]["device"]
    responder = pqxdh.respond(
        pool,
        bundle.address,
        bundle.device,
        alice_public,
        alice_address,
        alice_device,
        unhex(v["pqxdh"]["base_key"]),
        bundle.signed_prekey.id,
        bundle.one_time.id,
        bundle.kem_prekey.id,
        False,
        unhex(v["pqxdh"]["kem_ct"]),
    )
    assert responder.sk.hex() == v["pqxdh"]["sk"]
    assert responder.ad.hex() == v["pqxdh"]["ad"]
    assert len(responder.sk) == suite.kdf.hash_len


@pytest.mark.parametrize("suite_name", SUITES)
def test_what_the_recorded_signatures_determine(suite_name: str) -> None:
    """With fresh (randomised) signatures SK and the KEM ciphertext stay the same, while AD
    (which binds the identity encodings) and so every ratchet ciphertext change: this is why
    the signatures are recorded inputs."""
    committed = _vectors(suite_name)
    fresh = generate_e2e.build(suite_name, None)
    assert fresh["pqxdh"]["sk"] == committed["pqxdh"]["sk"]
    assert fresh["pqxdh"]["kem_ct"] == committed["pqxdh"]["kem_ct"]
    assert fresh["pqxdh"]["ad"] != committed["pqxdh"]["ad"]
    for new, old in zip(
        fresh["ratchet"]["messages"], committed["ratchet"]["messages"], strict=True
    ):
        assert new["header"] == old["header"]
        assert new["encoded"] != old["encoded"]


# --- an independent derivation --------------------------------------------------------------
# Straight from the specifications (Signal PQXDH section 3.3, Double Ratchet section 5.2,
# docs/protocol.md) with ``cryptography``'s raw primitives and kyber-py's ML-KEM, and the
# label strings written out: none of client/ or suites/ is used except the wire encoding.

_HASH = {"xwing": hashes.SHA256, "cnsa2": hashes.SHA384}
_ML_KEM = {"xwing": ML_KEM_768, "cnsa2": ML_KEM_1024}


def _dh(suite_name: str, private: bytes, public: bytes) -> bytes:
    if suite_name == "xwing":
        return x25519.X25519PrivateKey.from_private_bytes(private).exchange(
            x25519.X25519PublicKey.from_public_bytes(public)
        )
    key = ec.derive_private_key(int.from_bytes(private, "big"), ec.SECP384R1())
    peer = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP384R1(), public)
    return key.exchange(ec.ECDH(), peer)


def _hkdf(suite_name: str, ikm: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=_HASH[suite_name](), length=length, salt=salt, info=info).derive(ikm)


@pytest.mark.parametrize("suite_name", SUITES)
def test_independent_derivation_of_sk_and_first_messages(suite_name: str) -> None:
    v = _vectors(suite_name)
    keys, bob = v["keys"], v["keys"]["bob"]
    n = _HASH[suite_name].digest_size
    bundle = decode(unhex(keys["bundle"]), PrekeyBundle)
    alice = decode(unhex(keys["alice"]["identity"]), IdentityKey)
    base_key = unhex(v["pqxdh"]["base_key"])
    spk = unhex(bob["signed_prekey_private"])
    assert bundle.one_time is not None
    # PQXDH, Bob's side: DH1 = DH(IK_A, SPK_B), DH2 = DH(EK_A, IK_B), DH3 = DH(EK_A, SPK_B),
    # DH4 = DH(EK_A, OPK_B), SS = Decaps(PQPK_B, CT).
    _, dk = _ML_KEM[suite_name].key_derive(unhex(bob["kem_prekey_seed"]))
    ss = _ML_KEM[suite_name].decaps(dk, unhex(v["pqxdh"]["kem_ct"]))
    km = (
        _dh(suite_name, spk, alice.dh)
        + _dh(suite_name, unhex(bob["dh_private"]), base_key)
        + _dh(suite_name, spk, base_key)
        + _dh(suite_name, unhex(bob["one_time_private"]), base_key)
        + ss
    )
    f = b"\xff" * len(spk)
    sk = _hkdf(suite_name, f + km, bytes(n), b"sealrelay-pqxdh-v1", n)
    assert sk.hex() == v["pqxdh"]["sk"]
    ad_input = AssociatedDataInput(
        suite=v["suite_id"],
        ik_a=alice,
        ik_b=bundle.identity,
        addr_a=v["inputs"]["alice"]["address"],
        dev_a=v["inputs"]["alice"]["device"],
        addr_b=bundle.address,
        dev_b=bundle.device,
    )
    ad = hashlib.new(_HASH[suite_name].name, encode(ad_input)).digest()
    assert ad.hex() == v["pqxdh"]["ad"]
    # Alice's first sending chain: KDF_RK(SK, DH(first ratchet key, SPK_B)), no KEM secret.
    dh_out = _dh(
        suite_name, unhex(keys["alice"]["first_ratchet_private"]), bundle.signed_prekey.public
    )
    root = _hkdf(suite_name, dh_out, sk, b"sealrelay-ratchet-root-v1", 2 * n)
    ck = root[n:]
    for raw in v["ratchet"]["messages"][:2]:  # Alice's first chain
        message = decode(unhex(raw["encoded"]), RatchetMessage)
        mk = hmac.digest(ck, b"\x01", _HASH[suite_name].name)
        ck = hmac.digest(ck, b"\x02", _HASH[suite_name].name)
        okm = _hkdf(suite_name, mk, bytes(n), b"sealrelay-ratchet-message-keys-v1", 44)
        plaintext = AESGCM(okm[:32]).decrypt(okm[32:], message.c, ad + encode(message.h))
        assert plaintext.hex() == raw["plaintext"]
    assert v["ratchet"]["messages"][0]["root_key_after"]["alice"] == root[:n].hex()
