"""The home domain's server key document: verify, pin, refresh, and a keyring from it.

A client enrolls by fetching ``/.well-known/sealrelay/server`` from its node,
checking it by the rules a node checks too (``trust.documents``: :func:`verify_document`)
and pinning it. Later it accepts a fresh document only if a key of the pinned one signed
it (:func:`accept_refresh`): a node cannot swap the domain's keys behind the client's back.

:class:`PinnedKeyring` is the :class:`~client.sealed.Keyring` the device verifies sender
certificates with. It knows the pinned domains only: the home domain, and each remote
domain whose document the home agency's root chain vouches for (``client.domaintrust``),
added by :meth:`PinnedKeyring.pin` as well.
"""

from __future__ import annotations

from collections.abc import Sequence

from client.errors import AS_SERVER_KEY_ERROR
from client.sealed import ServerVerifyKey
from trust import documents
from wire.server import ServerKeyDocument


def verify_document(data: bytes, domain: str, now_ms: int) -> ServerKeyDocument:
    """The document in ``data`` for ``domain``: ``trust.documents.verify_document``, the
    same check a node makes (every current key signed it, every key of the domain's suite,
    every KEM key valid), refused as :class:`ServerKeyError`."""
    with AS_SERVER_KEY_ERROR:
        return documents.verify_document(data, domain, now_ms)


def accept_refresh(
    pinned: ServerKeyDocument, data: bytes, domain: str, now_ms: int
) -> ServerKeyDocument:
    """A newer document, if a key of ``pinned`` signed it; :class:`ServerKeyError` if not,
    or if it was issued before ``pinned`` (``trust.documents.accept_refresh``)."""
    with AS_SERVER_KEY_ERROR:
        return documents.accept_refresh(pinned, data, domain, now_ms)


def needs_refresh(doc: ServerKeyDocument, now_ms: int) -> bool:
    """True once half of the document's validity has passed, or 7 days after it was
    issued (``trust.documents.refresh_due``; the client keeps no time of receipt, and a
    document is received after it is issued)."""
    return documents.refresh_due(doc, doc.body.issued, now_ms)


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
