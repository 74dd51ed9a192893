"""``federation.documents``: the rules of ``trust.documents`` (tested in tests/trust),
refused with the federation's own errors and codes, which a peer sees."""

from __future__ import annotations

import dataclasses

import pytest

from federation import documents
from federation.errors import KeyDocumentError, PinMismatch
from tests.federation.conftest import DAY_MS, NOW, Agency
from trust.errors import FED_KEY_DOCUMENT, FED_PIN_MISMATCH
from wire import decode, encode
from wire.server import ServerKeyDocument


def test_refusals_are_federation_errors(agency_a: Agency, agency_c: Agency) -> None:
    doc = documents.verify_document(agency_a.document(), "a.example", NOW)
    assert documents.check_trust(doc, [agency_a.root_pin], None, NOW) == "root"  # control
    with pytest.raises(KeyDocumentError) as refused:
        documents.verify_document(agency_a.document(), "a.example", NOW + 8 * DAY_MS)
    assert refused.value.code == FED_KEY_DOCUMENT
    assert "expired" in refused.value.message
    forged = agency_c.keys.sign_document("a.example", ("https://c.example",), NOW, 86400)
    with pytest.raises(PinMismatch) as mismatch:
        documents.check_trust(
            encode(forged) and decode(encode(forged), ServerKeyDocument),
            [agency_a.root_pin],
            None,
            NOW,
        )
    assert mismatch.value.code == FED_PIN_MISMATCH


def test_a_bad_certification_and_an_older_document_are_refused(agency_a: Agency) -> None:
    doc = decode(agency_a.document(), ServerKeyDocument)
    cert = doc.certifications[0]
    documents.verify_certification(cert)  # control
    bad = dataclasses.replace(cert, body=dataclasses.replace(cert.body, not_after=1))
    with pytest.raises(KeyDocumentError):
        documents.verify_certification(bad)
    older = dataclasses.replace(doc, body=dataclasses.replace(doc.body, issued=0))
    documents.check_not_older(older, doc)  # control
    with pytest.raises(KeyDocumentError, match="older"):
        documents.check_not_older(doc, older)
