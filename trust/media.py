"""A node's QUIC endpoint for calls, as its signed key document lists it (DESIGN section 9).

A node that accepts call media over QUIC (RFC 9000) lists, in the version 2 body of its
server key document (``wire.server.ServerKeyDocumentBodyV2``), a :class:`~wire.server.ServerMedia`:
the UDP ``port`` on the host of the document's endpoint, and ``pin``, the SHA-256 of its
QUIC certificate's DER SubjectPublicKeyInfo (RFC 5280 section 4.1.2.7). The signatures
over the body cover it, so a client (of its home node) and a peer node (of the other
domain) authenticate the QUIC endpoint with the trust they already hold in the document:
no Web PKI, no second trust anchor. TLS 1.3 CertificateVerify proves the peer holds the
certificate's private key; the pin proves that key is the one the domain signed.

Rules (:func:`check_media`, applied by ``trust.documents.verify_document`` and nowhere
else): a port of 1..65535 (:data:`~trust.errors.MEDIA_PORT`) and a pin of exactly
:data:`PIN_SIZE` bytes (:data:`~trust.errors.MEDIA_PIN`). A version 1 body lists no
endpoint: the node takes no QUIC media (:func:`media_endpoint` is ``None``).

Rotation: a node has one current QUIC key, replaced with its server keys
(``node.keys.ServerKeys.rotated``); the next document lists the new pin. A party whose
held document still names the old pin sees ``transport.PeerKeyMismatch`` when it
connects, fetches the document again (the same refresh as for any key change, still
checked by ``trust.documents``), and connects with the new pin.

    media_endpoint(doc)   the verified document's endpoint, or None
    media_pin(doc)        its pin, for ``transport.PinnedKey.from_sha256`` and
                          ``connect_quic(..., pin=...)``; MediaRefused(trust.media_none)
                          when the domain lists none
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from trust.errors import MEDIA_NONE, MEDIA_PIN, MEDIA_PORT, MediaRefused
from trust.limits import QUIC_PIN_SIZE
from wire.server import KeyDocumentBody, ServerKeyDocument, ServerKeyDocumentBodyV2

PIN_SIZE: Final = QUIC_PIN_SIZE
"""Bytes of a QUIC pin: SHA-256 of the certificate key's SPKI (``transport.identity``)."""
MIN_PORT: Final = 1
MAX_PORT: Final = 65535


@dataclass(frozen=True)
class MediaEndpoint:
    """Where and how to reach a domain's QUIC endpoint: ``port`` on the host of its
    document's endpoint, ``pin`` to pass (as ``PinnedKey.from_sha256``) to ``connect_quic``."""

    domain: str
    port: int
    pin: bytes


def check_media(body: KeyDocumentBody) -> None:
    """:class:`MediaRefused` unless ``body``'s QUIC endpoint (if any) is well formed."""
    if not isinstance(body, ServerKeyDocumentBodyV2):
        return
    media = body.media
    if not MIN_PORT <= media.port <= MAX_PORT:
        raise MediaRefused(MEDIA_PORT, f"the QUIC port of {body.server} is not a UDP port")
    if len(media.pin) != PIN_SIZE:
        message = f"the QUIC pin of {body.server} is not {PIN_SIZE} bytes"
        raise MediaRefused(MEDIA_PIN, message)


def media_endpoint(doc: ServerKeyDocument) -> MediaEndpoint | None:
    """The QUIC endpoint that ``doc`` (verified by ``trust.documents``) lists, or ``None``."""
    body = doc.body
    if not isinstance(body, ServerKeyDocumentBodyV2):
        return None
    return MediaEndpoint(body.server.lower(), body.media.port, body.media.pin)


def media_pin(doc: ServerKeyDocument) -> bytes:
    """The pin of ``doc``'s QUIC certificate key; :class:`MediaRefused`
    (:data:`~trust.errors.MEDIA_NONE`) if the domain lists no QUIC endpoint."""
    endpoint = media_endpoint(doc)
    if endpoint is None:
        message = f"{doc.body.server} lists no QUIC endpoint"
        raise MediaRefused(MEDIA_NONE, message)
    return endpoint.pin
