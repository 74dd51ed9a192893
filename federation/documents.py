"""A domain's server key document as the servers check it (DESIGN section 6).

The rules (decoding, signatures, suites, KEM keys, root certifications, pins,
continuity, rollback) are one copy for clients and servers, in ``trust.documents``;
this module raises their refusals as the federation's own errors
(:class:`KeyDocumentError`, :class:`PinMismatch`), which carry the codes a peer sees.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from federation.errors import KeyDocumentError, PinMismatch
from trust import documents, routing
from trust.documents import fingerprint as fingerprint
from trust.documents import verify_key as verify_key
from trust.errors import PinRefused, RefusalAs, TrustError
from wire.server import RootCertification, ServerKemKey, ServerKeyDocument

AS_FEDERATION_ERROR: Final = RefusalAs({PinRefused: PinMismatch, TrustError: KeyDocumentError})


def verify_document(data: bytes, domain: str, now_ms: int) -> ServerKeyDocument:
    """``trust.documents.verify_document``: :class:`KeyDocumentError` if it fails."""
    with AS_FEDERATION_ERROR:
        return documents.verify_document(data, domain, now_ms)


def verify_certification(cert: RootCertification) -> None:
    with AS_FEDERATION_ERROR:
        documents.verify_certification(cert)


def check_trust(
    doc: ServerKeyDocument, pins: Iterable[str], before: ServerKeyDocument | None, now_ms: int
) -> str:
    """How ``doc`` is trusted (``"root"``, ``"key"`` or ``"continuity"``), or
    :class:`PinMismatch` naming the domain (``trust.documents.check_trust``)."""
    with AS_FEDERATION_ERROR:
        return documents.check_trust(doc, pins, before, now_ms)


def check_not_older(held: ServerKeyDocument, doc: ServerKeyDocument) -> None:
    with AS_FEDERATION_ERROR:
        documents.check_not_older(held, doc)


def kem_key(doc: ServerKeyDocument, now_ms: int) -> ServerKemKey:
    """The routing-layer KEM key to seal to (``trust.routing.kem_key``)."""
    with AS_FEDERATION_ERROR:
        return routing.kem_key(doc, now_ms)
