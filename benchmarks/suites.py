"""Cipher-suite primitives, per suite (``cnsa2``, ``xwing``), plus SFrame.

Per suite: hybrid KEM encapsulate/decapsulate, HPKE single-shot seal/open of 1 KiB, hybrid
signature sign/verify of a 1 KiB message, DH exchange, ratchet ML-KEM
encapsulate/decapsulate, and AES-256-GCM seal/open of 1 KiB.  Then SFrame (RFC 9605,
AES_256_GCM_SHA512_128, the suite DESIGN section 4 uses for calls) protect/unprotect of a
1 KiB frame.  Keys come from fixed seeds where the API takes one; operations that are
randomised by design (encapsulation, HPKE seal, signing) draw from the OS.

Columns: ``in_bytes`` (the payload, public key or ciphertext handed to the call) and
``out_bytes`` (what it returns: the ciphertext, signature, sealed message or frame).
"""

from __future__ import annotations

from typing import Final

from benchmarks.harness import Cases, Result
from suites import SUITE_NAMES, Suite, get_suite, labels
from suites.sframe import AES_256_GCM_SHA512_128, SFrameContext

PAYLOAD: Final = bytes(range(256)) * 4
"""The 1 KiB message, plaintext or frame of every payload case."""

HPKE_INFO: Final = labels.SEALED_SENDER_INFO
HPKE_AAD: Final = labels.SEALED_SENDER_AAD
SIG_CONTEXT: Final = labels.CTX_SENDER_KEY_MESSAGE

_KEM_SEED: Final = bytes(range(32))
_RATCHET_SEED: Final = bytes(range(64))
_AEAD_NONCE: Final = bytes(12)
_SFRAME_KID: Final = 7
_SFRAME_METADATA: Final = b""


def run(quick: bool) -> list[Result]:
    results: list[Result] = []
    for name in SUITE_NAMES:
        suite, cases = get_suite(name), Cases(name, quick)
        for add_cases in (_kem, _hpke, _sig, _dh, _ratchet_kem, _aead):
            add_cases(suite, cases)
        results += cases.results
    return results + _sframe(quick)


def _kem(s: Suite, cases: Cases) -> None:
    sk = s.kem.private_key_from_seed(_KEM_SEED)
    pk = s.kem.public_key_bytes(sk)
    ct, _ = s.kem.encapsulate(pk)
    cases.add("kem.encapsulate", lambda: s.kem.encapsulate(pk), in_bytes=len(pk), out_bytes=len(ct))
    cases.add("kem.decapsulate", lambda: s.kem.decapsulate(sk, ct), in_bytes=len(ct))


def _hpke(s: Suite, cases: Cases) -> None:
    sk = s.kem.private_key_from_seed(_KEM_SEED)
    pk = s.kem.public_key_bytes(sk)
    sealed = s.hpke.seal(pk, HPKE_INFO, HPKE_AAD, PAYLOAD)
    assert s.hpke.open(sk, HPKE_INFO, HPKE_AAD, sealed) == PAYLOAD
    cases.add(
        "hpke.seal 1KiB",
        lambda: s.hpke.seal(pk, HPKE_INFO, HPKE_AAD, PAYLOAD),
        in_bytes=len(PAYLOAD),
        out_bytes=len(sealed),
    )
    cases.add(
        "hpke.open 1KiB",
        lambda: s.hpke.open(sk, HPKE_INFO, HPKE_AAD, sealed),
        in_bytes=len(sealed),
        out_bytes=len(PAYLOAD),
    )


def _sig(s: Suite, cases: Cases) -> None:
    sk, pk = s.sig.generate()
    sig = s.sig.sign(sk, PAYLOAD, SIG_CONTEXT)
    s.sig.verify(pk, PAYLOAD, sig, SIG_CONTEXT)
    cases.add(
        "sig.sign 1KiB",
        lambda: s.sig.sign(sk, PAYLOAD, SIG_CONTEXT),
        in_bytes=len(PAYLOAD),
        out_bytes=len(sig),
    )
    cases.add(
        "sig.verify 1KiB",
        lambda: s.sig.verify(pk, PAYLOAD, sig, SIG_CONTEXT),
        in_bytes=len(PAYLOAD),
    )


def _dh(s: Suite, cases: Cases) -> None:
    ours, theirs = s.dh.generate(), s.dh.public_key_bytes(s.dh.generate())
    cases.add(
        f"dh.exchange ({s.dh.group})",
        lambda: s.dh.exchange(ours, theirs),
        in_bytes=len(theirs),
        out_bytes=s.dh.shared_len,
    )


def _ratchet_kem(s: Suite, cases: Cases) -> None:
    kem = s.ratchet_kem
    sk = kem.private_key_from_seed(_RATCHET_SEED)
    pk = kem.public_key_bytes(sk)
    ct, _ = kem.encapsulate(pk)
    cases.add(
        f"ratchet_kem.encapsulate ({kem.name})",
        lambda: kem.encapsulate(pk),
        in_bytes=len(pk),
        out_bytes=len(ct),
    )
    cases.add(
        f"ratchet_kem.decapsulate ({kem.name})", lambda: kem.decapsulate(sk, ct), in_bytes=len(ct)
    )


def _aead(s: Suite, cases: Cases) -> None:
    key = bytes(range(s.aead.key_len))
    ct = s.aead.seal(key, _AEAD_NONCE, PAYLOAD, HPKE_AAD)
    cases.add(
        f"aead.seal 1KiB ({s.aead.name})",
        lambda: s.aead.seal(key, _AEAD_NONCE, PAYLOAD, HPKE_AAD),
        in_bytes=len(PAYLOAD),
        out_bytes=len(ct),
    )
    cases.add(
        f"aead.open 1KiB ({s.aead.name})",
        lambda: s.aead.open(key, _AEAD_NONCE, ct, HPKE_AAD),
        in_bytes=len(ct),
        out_bytes=len(PAYLOAD),
    )


def _sframe(quick: bool) -> list[Result]:
    suite = AES_256_GCM_SHA512_128
    base_key = bytes(range(suite.nh))
    sender, receiver = SFrameContext(suite), SFrameContext(suite)
    sender.add_send_key(_SFRAME_KID, base_key)
    receiver.add_recv_key(_SFRAME_KID, base_key)
    frame = sender.protect(_SFRAME_KID, _SFRAME_METADATA, PAYLOAD)
    assert receiver.unprotect(frame, _SFRAME_METADATA)[2] == PAYLOAD
    cases = Cases(f"sframe/{suite.suite_id}", quick)
    cases.add(
        "protect 1KiB",
        lambda: sender.protect(_SFRAME_KID, _SFRAME_METADATA, PAYLOAD),
        in_bytes=len(PAYLOAD),
        out_bytes=len(frame),
    )
    cases.add(
        "unprotect 1KiB",
        lambda: receiver.unprotect(frame, _SFRAME_METADATA),
        in_bytes=len(frame),
        out_bytes=len(PAYLOAD),
    )
    return cases.results
