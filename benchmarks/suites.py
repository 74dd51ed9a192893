"""Cipher-suite primitives, per suite (``cnsa2``, ``xwing``), plus SFrame.

Per suite: hybrid KEM encapsulate/decapsulate, HPKE single-shot seal/open of 1 KiB, hybrid
signature sign/verify of a 1 KiB message, DH exchange, ratchet ML-KEM
encapsulate/decapsulate, and AES-256-GCM seal/open of 1 KiB.  Then SFrame (RFC 9605,
AES_256_GCM_SHA512_128, the suite DESIGN section 4 uses for calls) protect/unprotect of a
1 KiB frame.  Keys come from fixed seeds where the API takes one; operations that are
randomised by design (encapsulation, HPKE seal, ML-DSA hedged signing) draw from the OS.

Columns: ``in_bytes`` (payload per call) and ``out_bytes`` (what the call returns: the
ciphertext, signature, sealed message or frame).
"""

from __future__ import annotations

from typing import Final

from benchmarks.harness import Result, measure
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
        suite = get_suite(name)
        for cases in (_kem, _hpke, _sig, _dh, _ratchet_kem, _aead):
            results += cases(suite, quick)
    results += _sframe(quick)
    return results


def _kem(s: Suite, quick: bool) -> list[Result]:
    sk = s.kem.private_key_from_seed(_KEM_SEED)
    pk = s.kem.public_key_bytes(sk)
    ct, _ = s.kem.encapsulate(pk)
    sizes = {"out_bytes": len(ct)}
    return [
        measure(
            "kem.encapsulate", lambda: s.kem.encapsulate(pk), quick=quick, group=s.name, extra=sizes
        ),
        measure("kem.decapsulate", lambda: s.kem.decapsulate(sk, ct), quick=quick, group=s.name),
    ]


def _hpke(s: Suite, quick: bool) -> list[Result]:
    sk = s.kem.private_key_from_seed(_KEM_SEED)
    pk = s.kem.public_key_bytes(sk)
    sealed = s.hpke.seal(pk, HPKE_INFO, HPKE_AAD, PAYLOAD)
    assert s.hpke.open(sk, HPKE_INFO, HPKE_AAD, sealed) == PAYLOAD
    seal_sizes = {"in_bytes": len(PAYLOAD), "out_bytes": len(sealed)}
    open_sizes = {"in_bytes": len(sealed), "out_bytes": len(PAYLOAD)}
    return [
        measure(
            "hpke.seal 1KiB",
            lambda: s.hpke.seal(pk, HPKE_INFO, HPKE_AAD, PAYLOAD),
            quick=quick,
            group=s.name,
            extra=seal_sizes,
        ),
        measure(
            "hpke.open 1KiB",
            lambda: s.hpke.open(sk, HPKE_INFO, HPKE_AAD, sealed),
            quick=quick,
            group=s.name,
            extra=open_sizes,
        ),
    ]


def _sig(s: Suite, quick: bool) -> list[Result]:
    sk, pk = s.sig.generate()
    sig = s.sig.sign(sk, PAYLOAD, SIG_CONTEXT)
    s.sig.verify(pk, PAYLOAD, sig, SIG_CONTEXT)
    sizes = {"in_bytes": len(PAYLOAD), "out_bytes": len(sig)}
    return [
        measure(
            "sig.sign 1KiB",
            lambda: s.sig.sign(sk, PAYLOAD, SIG_CONTEXT),
            quick=quick,
            group=s.name,
            extra=sizes,
        ),
        measure(
            "sig.verify 1KiB",
            lambda: s.sig.verify(pk, PAYLOAD, sig, SIG_CONTEXT),
            quick=quick,
            group=s.name,
            extra={"in_bytes": len(PAYLOAD)},
        ),
    ]


def _dh(s: Suite, quick: bool) -> list[Result]:
    ours, theirs = s.dh.generate(), s.dh.public_key_bytes(s.dh.generate())
    sizes = {"in_bytes": len(theirs), "out_bytes": s.dh.shared_len}
    return [
        measure(
            f"dh.exchange ({s.dh.group})",
            lambda: s.dh.exchange(ours, theirs),
            quick=quick,
            group=s.name,
            extra=sizes,
        ),
    ]


def _ratchet_kem(s: Suite, quick: bool) -> list[Result]:
    kem = s.ratchet_kem
    sk = kem.private_key_from_seed(_RATCHET_SEED)
    pk = kem.public_key_bytes(sk)
    ct, _ = kem.encapsulate(pk)
    return [
        measure(
            f"ratchet_kem.encapsulate ({kem.name})",
            lambda: kem.encapsulate(pk),
            quick=quick,
            group=s.name,
            extra={"out_bytes": len(ct)},
        ),
        measure(
            f"ratchet_kem.decapsulate ({kem.name})",
            lambda: kem.decapsulate(sk, ct),
            quick=quick,
            group=s.name,
        ),
    ]


def _aead(s: Suite, quick: bool) -> list[Result]:
    key = bytes(range(s.aead.key_len))
    ct = s.aead.seal(key, _AEAD_NONCE, PAYLOAD, HPKE_AAD)
    return [
        measure(
            f"aead.seal 1KiB ({s.aead.name})",
            lambda: s.aead.seal(key, _AEAD_NONCE, PAYLOAD, HPKE_AAD),
            quick=quick,
            group=s.name,
            extra={"in_bytes": len(PAYLOAD), "out_bytes": len(ct)},
        ),
        measure(
            f"aead.open 1KiB ({s.aead.name})",
            lambda: s.aead.open(key, _AEAD_NONCE, ct, HPKE_AAD),
            quick=quick,
            group=s.name,
            extra={"in_bytes": len(ct), "out_bytes": len(PAYLOAD)},
        ),
    ]


def _sframe(quick: bool) -> list[Result]:
    cs = AES_256_GCM_SHA512_128
    base_key = bytes(range(cs.nh))
    sender, receiver = SFrameContext(cs), SFrameContext(cs)
    sender.add_send_key(_SFRAME_KID, base_key)
    receiver.add_recv_key(_SFRAME_KID, base_key)
    frame = sender.protect(_SFRAME_KID, _SFRAME_METADATA, PAYLOAD)
    assert receiver.unprotect(frame, _SFRAME_METADATA)[2] == PAYLOAD
    return [
        measure(
            "protect 1KiB",
            lambda: sender.protect(_SFRAME_KID, _SFRAME_METADATA, PAYLOAD),
            quick=quick,
            group=f"sframe/{cs.suite_id}",
            extra={"in_bytes": len(PAYLOAD), "out_bytes": len(frame)},
        ),
        measure(
            "unprotect 1KiB",
            lambda: receiver.unprotect(frame, _SFRAME_METADATA),
            quick=quick,
            group=f"sframe/{cs.suite_id}",
            extra={"in_bytes": len(frame), "out_bytes": len(PAYLOAD)},
        ),
    ]
