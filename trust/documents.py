"""A domain's server key document: verification, root certifications, pins, refresh and
rollback (DESIGN section 6). One copy of each rule, for clients and servers alike.

A document is acceptable for a domain when

1. it decodes (at most :data:`~trust.limits.MAX_DOCUMENT` bytes), names that domain, and
   has not passed ``valid_until``;
2. every key is of the domain's suite and every KEM key a valid public key of it (a
   stripped ML-KEM half or an invalid point is refused before anyone seals to it); every
   current verify key (``not_after`` after ``issued``) signed the body under
   ``CTX_SERVER_KEY_DOCUMENT`` with the domain's suite, and every signature verifies
   (:func:`verify_document`); its QUIC endpoint, if it lists one, is well formed
   (``trust.media.check_media``: :class:`~trust.errors.MediaRefused` with its code);
3. its trust holds (:func:`check_trust`), by one of:
   - a *root pin*: a certification in the document, signed under ``CTX_ROOT_CERTIFICATION``
     by a root key whose fingerprint is pinned, names this domain and a verify key that
     signed the document, and has not passed its ``not_after`` (:func:`certified_roots`);
   - a *key pin*: a verify key that signed the document has a pinned fingerprint;
   - *continuity*: a verify key that signed it was trusted in the document accepted before
     (so a rotation, where old and new keys both sign, carries trust over), and it was
     not issued before that one (:func:`continues`, :func:`check_not_older`: no rollback
     to an older document, whose keys may since have been retired).

A document held is refreshed once half its life has passed, and never trusted beyond
``valid_until`` nor more than :data:`~trust.limits.MAX_CACHE_MS` after it was received,
whatever its ``valid_until`` says (:func:`refresh_due`, :func:`still_usable`).

Fingerprints are ``sha256:<hex>`` of the encoded public key (``suites.rootsig.fingerprint``).
Every refusal is :class:`~trust.errors.DocumentRefused` (a broken pin:
:class:`~trust.errors.PinRefused`).
"""

from __future__ import annotations

from collections.abc import Iterable

from suites import SuiteError, get_suite_by_id, labels, rootsig
from trust.errors import DocumentRefused, PinRefused
from trust.limits import MAX_CACHE_MS, MAX_DOCUMENT
from trust.media import check_media
from wire import WireError, decode, encode
from wire.server import (
    PeerRootsStatement,
    RootCertification,
    ServerKeyDocument,
    ServerVerifyKeyEntry,
)


def fingerprint(public: bytes) -> str:
    return rootsig.fingerprint(public)


def verify_document(data: bytes, domain: str, now_ms: int) -> ServerKeyDocument:
    """Steps 1 and 2 above; :class:`DocumentRefused` if any fails."""
    try:
        doc = decode(data, ServerKeyDocument, max_size=MAX_DOCUMENT)
        suite = get_suite_by_id(doc.body.suite)
    except (WireError, SuiteError):
        raise DocumentRefused("the key document does not decode") from None
    body = doc.body
    if body.server.lower() != domain.lower():
        raise DocumentRefused(f"the key document is for {body.server!r}, not {domain!r}")
    if now_ms >= body.valid_until:
        raise DocumentRefused(f"the key document of {domain} has expired")
    suites = {key.suite for key in body.verify_keys} | {key.suite for key in body.kem_keys}
    if suites - {suite.suite_id}:
        raise DocumentRefused("a key of another suite than the domain's")
    try:
        for kem in body.kem_keys:  # sealed to by routing layers: no downgrade, no bad key
            suite.kem.check_public(kem.public)
    except SuiteError:
        raise DocumentRefused(f"a KEM key of {domain} is not a valid {suite.name} key") from None
    check_media(body)
    current = {key.id for key in body.verify_keys if key.not_after > body.issued}
    signers = signing_keys(doc)
    if not signers or not current <= {key.id for key in signers}:
        raise DocumentRefused(f"the key document of {domain} is not signed by its current keys")
    return doc


def signing_keys(doc: ServerKeyDocument) -> list[ServerVerifyKeyEntry]:
    """The listed keys whose signature over the body verifies; :class:`DocumentRefused`
    if any signature is by an unlisted key or does not verify."""
    keys = {key.id: key for key in doc.body.verify_keys}
    message = encode(doc.body)
    good: list[ServerVerifyKeyEntry] = []
    for sig in doc.signatures:
        key = keys.get(sig.key_id)
        if key is None:
            raise DocumentRefused("the key document is signed by a key it does not list")
        try:
            suite = get_suite_by_id(key.suite)
            suite.sig.verify(key.public, message, sig.signature, labels.CTX_SERVER_KEY_DOCUMENT)
        except SuiteError:
            raise DocumentRefused("a key document signature does not verify") from None
        good.append(key)
    return good


def root_signed(
    signed: RootCertification | PeerRootsStatement, message: bytes, context: bytes
) -> bool:
    """Whether ``signed`` (a root certification or peer-roots statement) carries a valid
    signature of ``message`` by its ``root_public`` under ``context``."""
    if signed.algorithm != rootsig.ALGORITHM:
        return False
    try:
        rootsig.verify(signed.root_public, message, signed.signature, context)
    except SuiteError:
        return False
    return True


def verify_certification(cert: RootCertification) -> None:
    """:class:`DocumentRefused` unless ``cert`` is validly signed by its root key."""
    if cert.algorithm != rootsig.ALGORITHM:
        raise DocumentRefused(f"unknown root key algorithm {cert.algorithm!r}")
    if not root_signed(cert, encode(cert.body), labels.CTX_ROOT_CERTIFICATION):
        raise DocumentRefused("a root certification does not verify")


def certified_roots(doc: ServerKeyDocument, now_ms: int) -> dict[str, bytes]:
    """Fingerprint to public key of each root with a current certification of a key that
    signed ``doc``, for ``doc``'s own domain. A certification that does not verify is an
    error (:class:`DocumentRefused`), never skipped."""
    signers = {key.public for key in signing_keys(doc)}
    domain = doc.body.server.lower()
    roots: dict[str, bytes] = {}
    for cert in doc.certifications:
        verify_certification(cert)
        body = cert.body
        if body.server.lower() == domain and body.verify_key in signers and now_ms < body.not_after:
            roots[fingerprint(cert.root_public)] = cert.root_public
    return roots


def continues(before: ServerKeyDocument, doc: ServerKeyDocument) -> bool:
    """Whether a key that signed ``doc`` is listed, with the same public key, in
    ``before`` (the document trusted until now)."""
    known = {(key.id, key.public) for key in before.body.verify_keys}
    return any((key.id, key.public) in known for key in signing_keys(doc))


def check_not_older(held: ServerKeyDocument, doc: ServerKeyDocument) -> None:
    """:class:`DocumentRefused` if ``doc`` was issued before ``held``: a replay of an
    older document (still valid, still certified) would bring back retired keys."""
    if doc.body.issued < held.body.issued:
        raise DocumentRefused(f"the key document of {doc.body.server} is older than the one held")


def check_trust(
    doc: ServerKeyDocument,
    pins: Iterable[str],
    trusted_before: ServerKeyDocument | None,
    now_ms: int,
) -> str:
    """Step 3: how ``doc`` is trusted (``"root"``, ``"key"`` or ``"continuity"``), or
    :class:`PinRefused` naming the domain."""
    pinned = set(pins)
    if pinned & certified_roots(doc, now_ms).keys():
        return "root"
    if pinned & {fingerprint(key.public) for key in signing_keys(doc)}:
        return "key"
    before = trusted_before
    if before is not None and continues(before, doc) and doc.body.issued >= before.body.issued:
        return "continuity"
    raise PinRefused(f"the key document of {doc.body.server} does not match its pin")


def accept_refresh(
    pinned: ServerKeyDocument, data: bytes, domain: str, now_ms: int
) -> ServerKeyDocument:
    """The newer document in ``data`` if a key of ``pinned`` signed it and it is not
    older; :class:`DocumentRefused` if not (a client's pinned home document)."""
    fresh = verify_document(data, domain, now_ms)
    check_not_older(pinned, fresh)
    if not continues(pinned, fresh):
        raise DocumentRefused("the domain's server keys changed: not signed by a pinned key")
    return fresh


def verify_key(doc: ServerKeyDocument, key_id: bytes, now_ms: int) -> ServerVerifyKeyEntry | None:
    """The verify key ``key_id`` of ``doc`` if it may still sign at ``now_ms``."""
    for key in doc.body.verify_keys:
        if key.id == key_id and now_ms < key.not_after:
            return key
    return None


def trusted_until(doc: ServerKeyDocument, received_ms: int) -> int:
    """When a document received at ``received_ms`` stops being trusted: its
    ``valid_until``, but never more than ``MAX_CACHE_MS`` after it was received."""
    return min(doc.body.valid_until, received_ms + MAX_CACHE_MS)


def refresh_due(doc: ServerKeyDocument, received_ms: int, now_ms: int) -> bool:
    """True once half of the document's validity has passed, or its trust ended."""
    body = doc.body
    half = body.issued + (body.valid_until - body.issued) // 2
    return now_ms >= min(half, trusted_until(doc, received_ms))


def still_usable(doc: ServerKeyDocument, received_ms: int, now_ms: int) -> bool:
    """Whether a held document may still be used when no fresh one can be had."""
    return now_ms < trusted_until(doc, received_ms)
