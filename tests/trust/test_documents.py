"""Key documents (``trust.documents``): self-signatures, root certifications, pins and
continuity: the one rule a client and a node check."""

from __future__ import annotations

import dataclasses

import pytest

from tests.federation.conftest import DAY_MS, NOW, Agency, make_agency
from trust import documents
from trust.errors import DocumentRefused, PinRefused
from wire import decode, encode
from wire.server import ServerKeyDocument


def test_a_certified_document_is_trusted_by_its_root_pin(agency_a: Agency) -> None:
    doc = documents.verify_document(agency_a.document(), "a.example", NOW)
    assert documents.check_trust(doc, [agency_a.root_pin], None, NOW) == "root"


def test_a_key_pin_trusts_the_document_its_key_signed(agency_a: Agency) -> None:
    doc = documents.verify_document(agency_a.document(), "a.example", NOW)
    assert documents.check_trust(doc, [agency_a.key_pin], None, NOW) == "key"


def test_another_agencys_document_for_a_breaks_the_pin(agency_a: Agency, agency_c: Agency) -> None:
    """C, holding its own certified keys, presents a document naming A's domain."""
    forged = agency_c.keys.sign_document("a.example", ("https://c.example",), NOW, 86400)
    doc = documents.verify_document(encode(forged), "a.example", NOW)  # self-consistent
    with pytest.raises(PinRefused):
        documents.check_trust(doc, [agency_a.root_pin], None, NOW)


def test_a_certification_for_another_domain_does_not_count(agency_c: Agency) -> None:
    """C's root certified C's key for c.example; the same key claiming a.example gains
    nothing from that certification."""
    forged = agency_c.keys.sign_document("a.example", ("https://c.example",), NOW, 86400)
    doc = documents.verify_document(encode(forged), "a.example", NOW)
    with pytest.raises(PinRefused):
        documents.check_trust(doc, [agency_c.root_pin], None, NOW)


def test_an_expired_certification_does_not_count(agency_a: Agency) -> None:
    doc = documents.verify_document(agency_a.document(), "a.example", NOW)
    later = NOW + 400 * DAY_MS
    with pytest.raises(PinRefused):
        documents.check_trust(doc, [agency_a.root_pin], None, later)


def test_a_tampered_certification_is_an_error(agency_a: Agency) -> None:
    doc = decode(agency_a.document(), ServerKeyDocument)
    cert = doc.certifications[0]
    bad_body = dataclasses.replace(cert.body, not_after=cert.body.not_after + 1)
    tampered = dataclasses.replace(doc, certifications=(dataclasses.replace(cert, body=bad_body),))
    with pytest.raises(DocumentRefused):
        documents.check_trust(tampered, [agency_a.root_pin], None, NOW)


def test_a_rotated_document_carries_trust_by_continuity(agency_a: Agency) -> None:
    before = documents.verify_document(agency_a.document(), "a.example", NOW)
    rotated = dataclasses.replace(agency_a, keys=agency_a.keys.rotated(NOW, 86400))
    after = documents.verify_document(rotated.document(NOW + 1000), "a.example", NOW + 1000)
    # the new key is not certified and not pinned, but the old key co-signed
    new_pin = rotated.key_pin
    assert documents.check_trust(after, [new_pin], None, NOW) == "key"
    assert documents.check_trust(after, ["sha256:" + "0" * 64], before, NOW) == "continuity"
    # control: without the previous document nothing vouches for it
    with pytest.raises(PinRefused):
        documents.check_trust(after, ["sha256:" + "0" * 64], None, NOW)


def test_a_signature_by_an_unlisted_or_wrong_key_fails() -> None:
    a = make_agency("a.example", 0)
    other = make_agency("a.example", 0)
    doc = decode(a.document(), ServerKeyDocument)
    foreign = decode(other.document(), ServerKeyDocument)
    mixed = dataclasses.replace(doc, signatures=foreign.signatures)
    with pytest.raises(DocumentRefused):
        documents.verify_document(encode(mixed), "a.example", NOW)
    with pytest.raises(DocumentRefused):
        documents.verify_document(a.document(), "b.example", NOW)
    with pytest.raises(DocumentRefused):
        documents.verify_document(a.document(), "a.example", NOW + 8 * DAY_MS)
    with pytest.raises(DocumentRefused):
        documents.verify_document(b"\x00garbage", "a.example", NOW)
