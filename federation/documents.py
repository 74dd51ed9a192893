"""Verifying a domain's server key document, its root certifications and pins (DESIGN
section 6). Pure functions over ``wire.server`` and ``suites``.

A document is acceptable for a domain when

1. it decodes, names that domain, and has not passed ``valid_until``;
2. every key is of the domain's suite and every KEM key a valid public key of it (a
   stripped ML-KEM half or an invalid point is refused before anyone seals to it); every
   current verify key (``not_after`` after ``issued``) signed the body under
   ``CTX_SERVER_KEY_DOCUMENT`` with the domain's suite, and every signature verifies;
3. its trust holds, by one of:
   - a *root pin*: a certification in the document, signed under ``CTX_ROOT_CERTIFICATION``
     by a root key whose fingerprint is pinned, names this domain and a verify key that
     signed the document, and has not passed its ``not_after``;
   - a *key pin*: a verify key that signed the document has a pinned fingerprint;
   - *continuity*: a verify key that signed it was trusted in the document accepted before
     (so a rotation, where old and new keys both sign, carries trust over).

Fingerprints are ``sha256:<hex>`` of the encoded public key (``suites.rootsig.fingerprint``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from federation.errors import KeyDocumentError, PinMismatch
from suites import SuiteError, get_suite_by_id, labels, rootsig
from wire import WireError, decode, encode
from wire.server import RootCertification, ServerKemKey, ServerKeyDocument, ServerVerifyKeyEntry

MAX_DOCUMENT: Final = 1 << 20


def fingerprint(public: bytes) -> str:
    return rootsig.fingerprint(public)


def verify_document(data: bytes, domain: str, now_ms: int) -> ServerKeyDocument:
    """Steps 1 and 2 above; :class:`KeyDocumentError` if any fails."""
    try:
        doc = decode(data, ServerKeyDocument, max_size=MAX_DOCUMENT)
        suite = get_suite_by_id(doc.body.suite)
    except (WireError, SuiteError):
        raise KeyDocumentError("the key document does not decode") from None
    body = doc.body
    if body.server.lower() != domain.lower():
        raise KeyDocumentError(f"the key document is for {body.server!r}, not {domain!r}")
    if now_ms >= body.valid_until:
        raise KeyDocumentError(f"the key document of {domain} has expired")
    suites = {key.suite for key in body.verify_keys} | {key.suite for key in body.kem_keys}
    if suites - {suite.suite_id}:
        raise KeyDocumentError("a key of another suite than the domain's")
    try:
        for kem in body.kem_keys:
            suite.kem.check_public(kem.public)
    except SuiteError:
        raise KeyDocumentError(f"a KEM key of {domain} is not a valid {suite.name} key") from None
    current = {key.id for key in body.verify_keys if key.not_after > body.issued}
    signers = signing_keys(doc)
    if not signers or not current <= {key.id for key in signers}:
        raise KeyDocumentError(f"the key document of {domain} is not signed by its current keys")
    return doc


def signing_keys(doc: ServerKeyDocument) -> list[ServerVerifyKeyEntry]:
    """The listed keys whose signature over the body verifies; :class:`KeyDocumentError`
    if any signature is by an unlisted key or does not verify."""
    keys = {key.id: key for key in doc.body.verify_keys}
    message = encode(doc.body)
    good: list[ServerVerifyKeyEntry] = []
    for sig in doc.signatures:
        key = keys.get(sig.key_id)
        if key is None:
            raise KeyDocumentError("the key document is signed by a key it does not list")
        try:
            suite = get_suite_by_id(key.suite)
            suite.sig.verify(key.public, message, sig.signature, labels.CTX_SERVER_KEY_DOCUMENT)
        except SuiteError:
            raise KeyDocumentError("a key document signature does not verify") from None
        good.append(key)
    return good


def certified_roots(doc: ServerKeyDocument, now_ms: int) -> set[str]:
    """Fingerprints of the root keys with a valid certification of a key that signed
    ``doc``. A certification that does not verify is an error, not ignored."""
    signers = {key.public for key in signing_keys(doc)}
    roots: set[str] = set()
    for cert in doc.certifications:
        verify_certification(cert)
        body = cert.body
        same_domain = body.server.lower() == doc.body.server.lower()
        if same_domain and body.verify_key in signers and now_ms < body.not_after:
            roots.add(fingerprint(cert.root_public))
    return roots


def verify_certification(cert: RootCertification) -> None:
    if cert.algorithm != rootsig.ALGORITHM:
        raise KeyDocumentError(f"unknown root key algorithm {cert.algorithm!r}")
    try:
        rootsig.verify(
            cert.root_public, encode(cert.body), cert.signature, labels.CTX_ROOT_CERTIFICATION
        )
    except SuiteError:
        raise KeyDocumentError("a root certification does not verify") from None


def check_trust(
    doc: ServerKeyDocument,
    pins: Iterable[str],
    trusted_before: ServerKeyDocument | None,
    now_ms: int,
) -> str:
    """Step 3: how ``doc`` is trusted (``"root"``, ``"key"`` or ``"continuity"``), or
    :class:`PinMismatch` naming the domain."""
    pinned = set(pins)
    if pinned & certified_roots(doc, now_ms):
        return "root"
    signers = signing_keys(doc)
    if pinned & {fingerprint(key.public) for key in signers}:
        return "key"
    if trusted_before is not None:
        known = {(key.id, key.public) for key in trusted_before.body.verify_keys}
        carried = any((key.id, key.public) in known for key in signers)
        if carried and doc.body.issued >= trusted_before.body.issued:
            return "continuity"
    raise PinMismatch(f"the key document of {doc.body.server} does not match its pin")


def verify_key(doc: ServerKeyDocument, key_id: bytes, now_ms: int) -> ServerVerifyKeyEntry | None:
    """The verify key ``key_id`` of ``doc`` if it may still sign at ``now_ms``."""
    for key in doc.body.verify_keys:
        if key.id == key_id and now_ms < key.not_after:
            return key
    return None


def kem_key(doc: ServerKeyDocument, now_ms: int) -> ServerKemKey:
    """The routing-layer KEM key to seal to: the current one with the latest
    ``not_after``."""
    keys = [key for key in doc.body.kem_keys if key.not_after > now_ms]
    if not keys:
        raise KeyDocumentError(f"{doc.body.server} lists no current KEM key")
    return max(keys, key=lambda key: key.not_after)
