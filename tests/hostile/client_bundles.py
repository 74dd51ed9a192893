"""Prekey bundles to a client: the cases, each a bundle of bob's as a hostile node could
serve it to alice (it holds bob's signed keys, not his identity's private key), given to
alice's ``Device.start_session`` (PQXDH's checks of section 3.3, then the setup)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Final

from suites import Suite
from tests.hostile import mutate
from tests.hostile.client_world import ClientWorld
from tests.hostile.table import (
    BAD_POINT,
    CROSS_PROTOCOL,
    PREKEY_BUNDLE,
    SIZE_BOMB,
    STRIPPED_PQ,
    SWAPPED_KEY,
    WRONG_LENGTH,
    Case,
)
from wire.e2e import KemPrekey, PrekeyBundle

INVALID_BUNDLE: Final = "client.invalid_bundle"
SUITE_MISMATCH: Final = "client.suite_mismatch"

BundleCase = Case[ClientWorld, PrekeyBundle]
Edit = Callable[[Suite, PrekeyBundle], PrekeyBundle]
KeyEdit = Callable[[Suite, bytes], bytes]


def _edit(edit: Edit) -> Callable[[ClientWorld], PrekeyBundle]:
    return lambda w: edit(w.suite, w.bob_bundle())


def signed_prekey(edit: KeyEdit) -> Edit:
    def change(s: Suite, b: PrekeyBundle) -> PrekeyBundle:
        return replace(
            b, signed_prekey=replace(b.signed_prekey, public=edit(s, b.signed_prekey.public))
        )

    return change


def one_time(edit: KeyEdit) -> Edit:
    def change(s: Suite, b: PrekeyBundle) -> PrekeyBundle:
        assert b.one_time is not None
        return replace(b, one_time=replace(b.one_time, public=edit(s, b.one_time.public)))

    return change


def kem_prekey(edit: KeyEdit) -> Edit:
    def change(s: Suite, b: PrekeyBundle) -> PrekeyBundle:
        return replace(b, kem_prekey=replace(b.kem_prekey, public=edit(s, b.kem_prekey.public)))

    return change


def sealed_key(edit: KeyEdit) -> Edit:
    def change(s: Suite, b: PrekeyBundle) -> PrekeyBundle:
        return replace(b, sealed_key=replace(b.sealed_key, public=edit(s, b.sealed_key.public)))

    return change


def identity_sig_key(edit: KeyEdit) -> Edit:
    def change(s: Suite, b: PrekeyBundle) -> PrekeyBundle:
        return replace(b, identity=replace(b.identity, sig=edit(s, b.identity.sig)))

    return change


def spk_signature(edit: KeyEdit) -> Edit:
    def change(s: Suite, b: PrekeyBundle) -> PrekeyBundle:
        sig = edit(s, b.signed_prekey.signature)
        return replace(b, signed_prekey=replace(b.signed_prekey, signature=sig))

    return change


def _bad_point(s: Suite, point: bytes) -> bytes:
    return mutate.X25519_P_MINUS_1 if len(point) == 32 else mutate.off_curve(point)


def _sealed_as_kem_prekey(s: Suite, b: PrekeyBundle) -> PrekeyBundle:
    """The sealed-sender key (hybrid KEM, signed under its own context) as the KEM prekey."""
    k = b.sealed_key
    return replace(
        b, kem_prekey=KemPrekey(k.id, k.public, last_resort=False, signature=k.signature)
    )


def _spk_signature_on_kem_prekey(s: Suite, b: PrekeyBundle) -> PrekeyBundle:
    return replace(b, kem_prekey=replace(b.kem_prekey, signature=b.signed_prekey.signature))


def _one_time_as_last_resort(s: Suite, b: PrekeyBundle) -> PrekeyBundle:
    return replace(b, kem_prekey=replace(b.kem_prekey, last_resort=True))


def _identity_keys_swapped(s: Suite, b: PrekeyBundle) -> PrekeyBundle:
    i = b.identity
    return replace(b, identity=replace(i, sig=i.dh, dh=i.sig))


def _alices_identity(w: ClientWorld) -> PrekeyBundle:
    return replace(w.bob_bundle(), identity=w.alice.identity.public)


def _other_suite(s: Suite, b: PrekeyBundle) -> PrekeyBundle:
    return replace(b, suite=next(i for i in (1, 2) if i != s.suite_id))


def _zero(s: Suite, data: bytes) -> bytes:
    return bytes(len(data))


def _c(name: str, category: str, what: str, code: str, edit: Edit) -> BundleCase:
    return Case(name, category, PREKEY_BUNDLE, what, code, _edit(edit))


# fmt: off
CASES: Final[tuple[BundleCase, ...]] = (
    _c("signed-prekey-8k", SIZE_BOMB, "a signed prekey of 8 KiB (the wire's largest key)",
       INVALID_BUNDLE, signed_prekey(lambda s, k: k * (8192 // len(k)))),
    _c("signed-prekey-short", WRONG_LENGTH, "a signed prekey one byte short",
       INVALID_BUNDLE, signed_prekey(lambda s, k: k[:-1])),
    _c("one-time-short", WRONG_LENGTH, "an (unsigned) one-time prekey one byte short",
       INVALID_BUNDLE, one_time(lambda s, k: k[:-1])),
    _c("sealed-key-long", WRONG_LENGTH, "a sealed-sender key with one byte more",
       INVALID_BUNDLE, sealed_key(lambda s, k: k + b"\0")),
    _c("sealed-key-as-kem-prekey", SWAPPED_KEY, "the hybrid sealed-sender key as KEM prekey",
       INVALID_BUNDLE, _sealed_as_kem_prekey),
    _c("identity-keys-swapped", SWAPPED_KEY, "the identity's signing and DH keys swapped",
       INVALID_BUNDLE, _identity_keys_swapped),
    Case("alices-identity", SWAPPED_KEY, PREKEY_BUNDLE, "bob's keys under alice's identity",
         INVALID_BUNDLE, _alices_identity),
    _c("kem-prekey-zeroed", STRIPPED_PQ, "an ML-KEM prekey of zeros",
       INVALID_BUNDLE, kem_prekey(_zero)),
    _c("sealed-key-mlkem-stripped", STRIPPED_PQ, "a sealed-sender key without its ML-KEM half",
       INVALID_BUNDLE, sealed_key(mutate.strip_pq_kem)),
    _c("sealed-key-mlkem-zeroed", STRIPPED_PQ, "a sealed-sender key with ML-KEM zeroed",
       INVALID_BUNDLE, sealed_key(mutate.zero_pq_kem)),
    _c("identity-mldsa-stripped", STRIPPED_PQ, "an identity signing key without ML-DSA",
       INVALID_BUNDLE, identity_sig_key(mutate.strip_pq_sig_key)),
    _c("identity-mldsa-zeroed", STRIPPED_PQ, "an identity signing key with ML-DSA zeroed",
       INVALID_BUNDLE, identity_sig_key(mutate.zero_pq_sig_key)),
    _c("spk-signature-mldsa-stripped", STRIPPED_PQ, "a signed prekey's signature without ML-DSA",
       INVALID_BUNDLE, spk_signature(mutate.strip_pq_sig)),
    _c("one-time-bad-point", BAD_POINT, "an (unsigned) one-time prekey of low order/off-curve",
       INVALID_BUNDLE, one_time(_bad_point)),
    _c("signed-prekey-bad-point", BAD_POINT, "a signed prekey of low order/off the curve",
       INVALID_BUNDLE, signed_prekey(_bad_point)),
    _c("sealed-key-bad-point", BAD_POINT, "a sealed-sender key with a bad group element",
       INVALID_BUNDLE, sealed_key(mutate.bad_group_element)),
    _c("identity-signing-bad-point", BAD_POINT, "an identity whose classical key is invalid",
       INVALID_BUNDLE, identity_sig_key(mutate.bad_sig_classical_key)),
    _c("spk-signature-on-kem-prekey", CROSS_PROTOCOL, "a signed prekey's signature on the KEM",
       INVALID_BUNDLE, _spk_signature_on_kem_prekey),
    _c("one-time-kem-as-last-resort", CROSS_PROTOCOL, "a one-time KEM prekey sold as last-resort",
       INVALID_BUNDLE, _one_time_as_last_resort),
    _c("bundle-other-suite", CROSS_PROTOCOL, "a bundle relabelled with the other suite",
       SUITE_MISMATCH, _other_suite),
)
# fmt: on
