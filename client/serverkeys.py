"""The home domain's server key document: verify, pin, refresh, and a keyring from it.

A client enrolls by fetching ``/.well-known/sealrelay/server`` from its node,
checking the document's self-signatures with ``suites`` alone (:func:`verify_document`)
and pinning it. Later it accepts a fresh document only if a key of the pinned one signed
it (:func:`accept_refresh`): a node cannot swap the domain's keys behind the client's back.

:class:`PinnedKeyring` is the :class:`~client.sealed.Keyring` the device verifies sender
certificates with. It knows the pinned domains only: the home domain, and each remote
domain whose document the home agency's root chain vouches for (``client.domaintrust``),
added by :meth:`PinnedKeyring.pin` as well.
"""

from __future__ import annotations

from collections.abc import Sequence

from client.errors import ServerKeyError
from client.sealed import ServerVerifyKey
from suites import SuiteError, get_suite_by_id, labels
from wire import WireError, decode, encode
from wire.server import ServerKeyDocument

MAX_DOCUMENT = 1 << 20


def verify_document(data: bytes, domain: str, now_ms: int) -> ServerKeyDocument:
    """The document in ``data`` for ``domain``, every current key's signature checked.

    A key is current when its ``not_after`` lies after the document's ``issued`` time;
    each current key must have signed the body, and at least one did.
    """
    try:
        doc = decode(data, ServerKeyDocument, max_size=MAX_DOCUMENT)
        suite = get_suite_by_id(doc.body.suite)
    except (WireError, SuiteError):
        raise ServerKeyError("the server key document does not decode") from None
    body = doc.body
    if body.server.lower() != domain.lower():
        raise ServerKeyError(f"the key document is for {body.server!r}, not {domain!r}")
    if now_ms >= body.valid_until:
        raise ServerKeyError("the server key document has expired")
    signed = _signing_keys(doc)
    current = {key.id for key in body.verify_keys if key.not_after > body.issued}
    if not signed or not current <= signed:
        raise ServerKeyError("the server key document is not signed by its current keys")
    suites = {key.suite for key in body.verify_keys} | {key.suite for key in body.kem_keys}
    if suites - {suite.suite_id}:
        raise ServerKeyError("a server key of another suite than the domain's")
    try:
        for kem in body.kem_keys:  # sealed to by routing layers: no downgrade, no bad key
            suite.kem.check_public(kem.public)
    except SuiteError:
        raise ServerKeyError("a KEM key of the server key document is not valid") from None
    return doc


def _signing_keys(doc: ServerKeyDocument) -> set[bytes]:
    """Ids of the keys whose signature over the body verifies (ServerKeyError if any
    signature does not)."""
    keys = {key.id: key for key in doc.body.verify_keys}
    message = encode(doc.body)
    good: set[bytes] = set()
    for sig in doc.signatures:
        key = keys.get(sig.key_id)
        if key is None:
            raise ServerKeyError("the key document is signed by a key it does not list")
        try:
            suite = get_suite_by_id(key.suite)
            suite.sig.verify(key.public, message, sig.signature, labels.CTX_SERVER_KEY_DOCUMENT)
        except SuiteError:
            raise ServerKeyError("a server key document signature does not verify") from None
        good.add(key.id)
    return good


def accept_refresh(
    pinned: ServerKeyDocument, data: bytes, domain: str, now_ms: int
) -> ServerKeyDocument:
    """A newer document, if a key of ``pinned`` signed it; :class:`ServerKeyError` if not,
    or if it was issued before ``pinned`` (no rollback to an older document, whose keys
    may since have been retired)."""
    fresh = verify_document(data, domain, now_ms)
    if fresh.body.issued < pinned.body.issued:
        raise ServerKeyError("the server key document is older than the pinned one")
    pinned_keys = {(key.id, key.public) for key in pinned.body.verify_keys}
    fresh_keys = {key.id: key.public for key in fresh.body.verify_keys}
    signed = {sig.key_id for sig in fresh.signatures}
    if not any((kid, fresh_keys[kid]) in pinned_keys for kid in signed):
        raise ServerKeyError("the domain's server keys changed: not signed by a pinned key")
    return fresh


def needs_refresh(doc: ServerKeyDocument, now_ms: int) -> bool:
    """True once half of the document's validity has passed."""
    body = doc.body
    return now_ms >= body.issued + (body.valid_until - body.issued) // 2


class PinnedKeyring:
    """Server verify keys of pinned domains, from their key documents."""

    def __init__(self) -> None:
        self._docs: dict[str, ServerKeyDocument] = {}

    def pin(self, doc: ServerKeyDocument) -> None:
        """Trust ``doc`` (already verified) for its domain, replacing an older one."""
        self._docs[doc.body.server.lower()] = doc

    def document(self, domain: str) -> ServerKeyDocument | None:
        return self._docs.get(domain.lower())

    def server_keys(self, domain: str) -> Sequence[ServerVerifyKey]:
        doc = self._docs.get(domain.lower())
        if doc is None:
            return ()
        return tuple(
            ServerVerifyKey(key.id, key.suite, key.public, key.not_after)
            for key in doc.body.verify_keys
        )
