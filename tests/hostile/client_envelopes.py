"""Envelopes to a client: the cases, each an envelope body for bob's device.

Senders seal with bob's public sealed-sender key, as anyone can; an attacker who is the
sender (mallory) edits the content of its own valid envelopes (opened here with bob's key
only to reach inside: ``tests.client.envelopes``) and seals them again. Certificates are
forged with the project's own ``issue_certificate``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from client.formats import PrekeyMessage
from client.sealed import certificate_hash, issue_certificate, seal
from client.session import Device
from suites import Suite, labels
from tests.client.envelopes import open_envelope, reseal
from tests.client.pairs import DAY_MS
from tests.hostile import mutate
from tests.hostile.client_world import ClientWorld
from tests.hostile.table import (
    BAD_POINT,
    CROSS_PROTOCOL,
    ENVELOPE,
    FORGED_CERT,
    REPLAY,
    SIZE_BOMB,
    STRIPPED_PQ,
    SWAPPED_KEY,
    WRONG_LENGTH,
    Case,
)
from wire import decode, encode
from wire.e2e import SealedEnvelope, SenderCertificate, SenderDescriptor
from wire.federation import RoutingLayer, RoutingRecipient

DECRYPTION_FAILED: Final = "client.decryption_failed"
BAD_CERTIFICATE: Final = "client.bad_certificate"
SUITE_MISMATCH: Final = "client.suite_mismatch"
BOMB: Final = 4 << 20


@dataclass(frozen=True)
class EnvelopeInput:
    body: bytes
    sent_ms: int | None = None
    """The envelope's ``ts`` as the delivering node claims it."""


EnvelopeCase = Case[ClientWorld, EnvelopeInput]
Build = Callable[[ClientWorld], EnvelopeInput]
Forge = Callable[[ClientWorld, Device], SenderCertificate]


def first(w: ClientWorld, sender: Device) -> bytes:
    """``sender``'s first (prekey) message to bob."""
    return sender.encrypt(w.bob.address, w.bob.device_id, b"hello bob")


def _sealed_edit(edit: Callable[[Suite, bytes], bytes]) -> Build:
    """Alice's first message with its HPKE ``enc || ciphertext`` edited."""

    def build(w: ClientWorld) -> EnvelopeInput:
        suite = w.suite
        sealed = decode(suite.unpad(first(w, w.fresh(w.home, "alice2"))), SealedEnvelope)
        c = edit(suite, sealed.c)
        return EnvelopeInput(suite.pad(encode(dataclasses.replace(sealed, c=c))))

    return build


def _enc(edit: Callable[[Suite, bytes], bytes]) -> Callable[[Suite, bytes], bytes]:
    def change(suite: Suite, c: bytes) -> bytes:
        n = suite.kem.ciphertext_len
        return edit(suite, c[:n]) + c[n:]

    return change


def _prekey_edit(edit: Callable[[ClientWorld, PrekeyMessage], PrekeyMessage]) -> Build:
    """Mallory's first message with its prekey message edited (mallory is the sender)."""

    def build(w: ClientWorld) -> EnvelopeInput:
        mallory = w.fresh(w.other, "mallory2")
        opened = open_envelope(w.bob, first(w, mallory))
        assert opened.prekey is not None
        return EnvelopeInput(reseal(w.bob, edit(w, opened.prekey), opened.content.s))

    return build


def _with_certificate(make: Forge) -> Build:
    """A first message from a fresh mallory presenting the certificate ``make`` forges
    (the descriptor names what the certificate names, as a forger would)."""

    def build(w: ClientWorld) -> EnvelopeInput:
        mallory = w.fresh(w.other, "mallory3")
        cert = make(w, mallory)
        mallory.certificate = cert
        mallory.address, mallory.device_id = cert.body.address, cert.body.device
        opened = open_envelope(w.bob, first(w, mallory))
        assert opened.prekey is not None
        return EnvelopeInput(reseal(w.bob, opened.prekey, opened.content.s))

    return build


def _cert(w: ClientWorld, mallory: Device, **changes: object) -> SenderCertificate:
    """A certificate for ``mallory`` as charlie issues it, with ``changes`` before signing."""
    body = dataclasses.replace(mallory.certificate.body, **changes)  # type: ignore[arg-type]
    o = w.other
    return issue_certificate(
        w.suite, o.server_key, o.key_id, body.address, body.device, body.identity, body.expires
    )


def _wrong_key(w: ClientWorld, mallory: Device) -> SenderCertificate:
    stranger, _ = w.suite.sig.generate()
    b = mallory.certificate.body
    key_id = w.other.key_id
    return issue_certificate(w.suite, stranger, key_id, b.address, 1, b.identity, b.expires)


def _for_home_domain(w: ClientWorld, mallory: Device) -> SenderCertificate:
    return _cert(w, mallory, address=f"mallory@{w.home.name}")


def _expired(w: ClientWorld, mallory: Device) -> SenderCertificate:
    return _cert(w, mallory, expires=w.now_ms() - 1)


def _carols(w: ClientWorld, mallory: Device) -> SenderCertificate:
    return w.carol.certificate  # valid, but names carol's identity, not mallory's


def _edited_after_signing(w: ClientWorld, mallory: Device) -> SenderCertificate:
    cert = mallory.certificate
    return dataclasses.replace(
        cert, body=dataclasses.replace(cert.body, expires=cert.body.expires + DAY_MS)
    )


def _cert_signature(edit: Callable[[Suite, bytes], bytes]) -> Forge:
    def make(w: ClientWorld, mallory: Device) -> SenderCertificate:
        cert = mallory.certificate
        return dataclasses.replace(cert, signature=edit(w.suite, cert.signature))

    return make


def _under_document_context(w: ClientWorld, mallory: Device) -> SenderCertificate:
    body = mallory.certificate.body
    signature = w.suite.sig.sign(w.other.server_key, encode(body), labels.CTX_SERVER_KEY_DOCUMENT)
    return SenderCertificate(body=body, signature=signature)


def _other_suite_cert(w: ClientWorld, mallory: Device) -> SenderCertificate:
    other = next(s for s in (1, 2) if s != w.suite.suite_id)
    body = dataclasses.replace(mallory.certificate.body, suite=other)
    signature = w.suite.sig.sign(w.other.server_key, encode(body), labels.CTX_SENDER_CERTIFICATE)
    return SenderCertificate(body=body, signature=signature)


def _backdated(w: ClientWorld) -> EnvelopeInput:
    """A certificate expired 31 days ago, on an envelope its node dates 32 days back: the
    check time is clamped to 30 days (the longest an envelope waits), so it stays expired."""
    old = w.now_ms() - 31 * DAY_MS
    given = _with_certificate(lambda w, m: _cert(w, m, expires=old))(w)
    return dataclasses.replace(given, sent_ms=old - DAY_MS)


def _prekey_message_as_ratchet_message(w: ClientWorld) -> EnvelopeInput:
    mallory = w.fresh(w.other, "mallory5")
    opened = open_envelope(w.bob, first(w, mallory))
    assert opened.prekey is not None
    payload = encode(opened.prekey)
    kind = labels.PAYLOAD_RATCHET_MESSAGE
    key = w.bob.pool.sealed_key_public()
    return EnvelopeInput(seal(w.suite, key, opened.content.s, kind, payload))


def _hash_mismatch(w: ClientWorld) -> EnvelopeInput:
    mallory = w.fresh(w.other, "mallory4")
    opened = open_envelope(w.bob, first(w, mallory))
    assert opened.prekey is not None
    sender = dataclasses.replace(opened.content.s, h=bytes(32))
    return EnvelopeInput(reseal(w.bob, opened.prekey, sender))


def _replayed_first(w: ClientWorld) -> EnvelopeInput:
    sender = w.fresh(w.home, "alice3")
    body = first(w, sender)
    w.bob.decrypt(body)  # taken once
    return EnvelopeInput(body)


def _replayed_ratchet(w: ClientWorld) -> EnvelopeInput:
    sender = w.fresh(w.home, "alice4")
    w.bob.decrypt(first(w, sender))
    answer = w.bob.encrypt(sender.address, sender.device_id, b"hi")
    sender.decrypt(answer)
    body = sender.encrypt(w.bob.address, w.bob.device_id, b"a ratchet message")
    w.bob.decrypt(body)
    return EnvelopeInput(body)


def _other_suite_envelope(w: ClientWorld) -> EnvelopeInput:
    body = first(w, w.fresh(w.home, "alice5"))
    sealed = decode(w.suite.unpad(body), SealedEnvelope)
    other = next(s for s in (1, 2) if s != w.suite.suite_id)
    return EnvelopeInput(w.suite.pad(encode(dataclasses.replace(sealed, v=other))))


def _sealed_to_another_key(w: ClientWorld) -> EnvelopeInput:
    """Sealed to alice's sealed-sender key, naming bob's key id."""
    sender = w.fresh(w.home, "alice6")
    descriptor = SenderDescriptor(
        a=sender.address, d=1, cert=sender.certificate, h=certificate_hash(sender.certificate)
    )
    alices = dataclasses.replace(w.alice.pool.sealed_key_public(), id=w.bob.pool.sealed_key_id)
    return EnvelopeInput(seal(w.suite, alices, descriptor, labels.PAYLOAD_PREKEY_MESSAGE, b"\x00"))


def _routing_layer_as_envelope(w: ClientWorld) -> EnvelopeInput:
    """A routing layer, sealed to bob's sealed-sender key under the routing layer's info."""
    layer = RoutingLayer(w.home.name, bytes(16), 60, (RoutingRecipient(bytes(16), None),), b"x")
    key = w.bob.pool.sealed_key_public()
    c = w.suite.hpke.seal(key.public, labels.ROUTING_LAYER_INFO, b"", encode(layer))
    return EnvelopeInput(w.suite.pad(encode(SealedEnvelope(v=w.suite.suite_id, i=key.id, c=c))))


def _bomb(w: ClientWorld) -> EnvelopeInput:
    return EnvelopeInput(os.urandom(BOMB))


def _sealed_bomb(w: ClientWorld) -> EnvelopeInput:
    key_id = w.bob.pool.sealed_key_id
    return EnvelopeInput(encode(SealedEnvelope(v=w.suite.suite_id, i=key_id, c=os.urandom(BOMB))))


def _truncated(w: ClientWorld) -> EnvelopeInput:
    return EnvelopeInput(first(w, w.fresh(w.home, "alice7"))[:-1])


def _base_key(edit: Callable[[Suite, bytes], bytes]) -> Build:
    return _prekey_edit(lambda w, pm: dataclasses.replace(pm, ek=edit(w.suite, pm.ek)))


def _kem_ct(edit: Callable[[Suite, bytes], bytes]) -> Build:
    return _prekey_edit(lambda w, pm: dataclasses.replace(pm, kc=edit(w.suite, pm.kc)))


def _bad_point(suite: Suite, point: bytes) -> bytes:
    return mutate.X25519_ORDER_8 if len(point) == 32 else mutate.off_curve(point)


def _ratchet_key(edit: Callable[[Suite, bytes], bytes]) -> Build:
    def change(w: ClientWorld, pm: PrekeyMessage) -> PrekeyMessage:
        header = dataclasses.replace(pm.m.h, dh=edit(w.suite, pm.m.h.dh))
        return dataclasses.replace(pm, m=dataclasses.replace(pm.m, h=header))

    return _prekey_edit(change)


def _identity_swapped(w: ClientWorld, pm: PrekeyMessage) -> PrekeyMessage:
    return dataclasses.replace(pm, ik=w.carol.identity.public)


def _c(name: str, category: str, what: str, code: str, build: Build) -> EnvelopeCase:
    return Case(name, category, ENVELOPE, what, code, build)


def _zero(suite: Suite, data: bytes) -> bytes:
    return bytes(len(data))


# fmt: off
CASES: Final[tuple[EnvelopeCase, ...]] = (
    # --- size bombs
    _c("envelope-4mib", SIZE_BOMB, "4 MiB of random bytes as an envelope",
       DECRYPTION_FAILED, _bomb),
    _c("sealed-4mib", SIZE_BOMB, "an unpadded sealed envelope with a 4 MiB ciphertext",
       DECRYPTION_FAILED, _sealed_bomb),
    # --- wrong lengths
    _c("envelope-truncated", WRONG_LENGTH, "a valid envelope one byte short",
       DECRYPTION_FAILED, _truncated),
    _c("enc-short", WRONG_LENGTH, "an HPKE enc one byte short",
       DECRYPTION_FAILED, _sealed_edit(_enc(lambda s, enc: enc[:-1]))),
    _c("base-key-short", WRONG_LENGTH, "a prekey message whose base key is one byte short",
       DECRYPTION_FAILED, _base_key(lambda s, ek: ek[:-1])),
    _c("kem-ct-short", WRONG_LENGTH, "a prekey message whose ML-KEM ciphertext is short",
       DECRYPTION_FAILED, _kem_ct(lambda s, kc: kc[:-1])),
    # --- swapped keys
    _c("sealed-to-another-key", SWAPPED_KEY, "sealed to alice's key under bob's key id",
       DECRYPTION_FAILED, _sealed_to_another_key),
    _c("prekey-message-carol-identity", SWAPPED_KEY, "mallory's prekey message naming carol",
       BAD_CERTIFICATE, _prekey_edit(_identity_swapped)),
    # --- stripped post-quantum halves
    _c("enc-mlkem-zeroed", STRIPPED_PQ, "an HPKE enc with its ML-KEM half zeroed",
       DECRYPTION_FAILED, _sealed_edit(_enc(mutate.zero_pq_kem))),
    _c("enc-mlkem-stripped", STRIPPED_PQ, "an HPKE enc without its ML-KEM half",
       DECRYPTION_FAILED, _sealed_edit(_enc(mutate.strip_pq_kem))),
    _c("prekey-kem-ct-zeroed", STRIPPED_PQ, "a prekey message whose ML-KEM ciphertext is zero",
       DECRYPTION_FAILED, _kem_ct(_zero)),
    _c("certificate-mldsa-stripped", STRIPPED_PQ, "a certificate signature without ML-DSA",
       BAD_CERTIFICATE, _with_certificate(_cert_signature(mutate.strip_pq_sig))),
    _c("certificate-mldsa-zeroed", STRIPPED_PQ, "a certificate signature with ML-DSA zeroed",
       BAD_CERTIFICATE, _with_certificate(_cert_signature(mutate.zero_pq_sig))),
    # --- bad points
    _c("enc-bad-point", BAD_POINT, "an HPKE enc with a low-order or off-curve group element",
       DECRYPTION_FAILED, _sealed_edit(_enc(mutate.bad_group_element))),
    _c("base-key-bad-point", BAD_POINT, "a prekey message with a low-order/off-curve base key",
       DECRYPTION_FAILED, _base_key(_bad_point)),
    _c("ratchet-key-bad-point", BAD_POINT, "a ratchet header with a low-order/off-curve key",
       DECRYPTION_FAILED, _ratchet_key(_bad_point)),
    # --- replays
    _c("first-message-replayed", REPLAY, "a first message taken once, sent again",
       DECRYPTION_FAILED, _replayed_first),
    _c("ratchet-message-replayed", REPLAY, "a ratchet message taken once, sent again",
       DECRYPTION_FAILED, _replayed_ratchet),
    _c("certificate-revived-by-backdating", REPLAY, "an expired cert on a backdated envelope",
       BAD_CERTIFICATE, _backdated),
    # --- forged certificates
    _c("certificate-wrong-key", FORGED_CERT, "signed by a stranger under charlie's key id",
       BAD_CERTIFICATE, _with_certificate(_wrong_key)),
    _c("certificate-other-domain", FORGED_CERT, "charlie vouching for an alpha address",
       BAD_CERTIFICATE, _with_certificate(_for_home_domain)),
    _c("certificate-expired", FORGED_CERT, "a certificate past its expiry",
       BAD_CERTIFICATE, _with_certificate(_expired)),
    _c("certificate-swapped-identity", FORGED_CERT, "carol's valid certificate on mallory's",
       BAD_CERTIFICATE, _with_certificate(_carols)),
    _c("certificate-edited", FORGED_CERT, "a certificate whose expiry was moved after signing",
       BAD_CERTIFICATE, _with_certificate(_edited_after_signing)),
    _c("certificate-hash-mismatch", FORGED_CERT, "a descriptor whose hash is not its cert's",
       BAD_CERTIFICATE, _hash_mismatch),
    _c("certificate-other-suite", FORGED_CERT, "a certificate claiming the other suite",
       SUITE_MISMATCH, _with_certificate(_other_suite_cert)),
    # --- cross-protocol confusion
    _c("document-signature-as-certificate", CROSS_PROTOCOL, "signed under the document ctx",
       BAD_CERTIFICATE, _with_certificate(_under_document_context)),
    _c("routing-layer-as-envelope", CROSS_PROTOCOL, "a routing layer sealed to bob's key",
       DECRYPTION_FAILED, _routing_layer_as_envelope),
    _c("prekey-message-as-ratchet-message", CROSS_PROTOCOL, "a first message of the wrong kind",
       DECRYPTION_FAILED, _prekey_message_as_ratchet_message),
    _c("envelope-other-suite", CROSS_PROTOCOL, "an envelope relabelled with the other suite",
       SUITE_MISMATCH, _other_suite_envelope),
)
# fmt: on
