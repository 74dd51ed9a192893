"""Which other domains' keys a client trusts: only through an anchor its own node's online
keys cannot forge (docs/security.md, "Your own node").

The home node's online keys sign the home key document and the home users' sender
certificates; the client trusts them for its home domain. They must never vouch for
another domain: a malicious home node could relay a document listing its own key under a
peer's name, certify ``mallory@peer`` with it and deliver an envelope with that origin.
So a remote domain's document is trusted only through the home agency's offline root:

1. At enrollment the client pins its *home roots*: the root keys with a valid
   certification of a key that signed the home document (trust on first use, as for the
   home document itself; ``sealrelay client info`` prints their fingerprints, to compare
   out of band). A home document without one pins no root: the client then reaches only
   its home domain.
2. The home root signs, offline, a *peer-roots statement* (``wire.server.PeerRootsStatement``,
   ``sealrelay keys peer-roots``): each peer domain and the fingerprints of its roots, and
   a validity. The home node serves it (``GetPeerRoots``); it counts when signed by a pinned
   home root under ``CTX_PEER_ROOTS``, for the home domain, not expired, and issued no
   earlier than the statement held.
3. A remote document, relayed by the home node (``GetServerKeys``) and verified as before
   (signatures, domain, expiry, continuity), is trusted only if it carries a certification,
   by a root the statement lists for its domain, of a key that signed it and not past its
   ``not_after``: the rule of a node's root pin, one copy for both
   (``trust.documents.certified_roots``).

A refusal is :class:`~client.errors.UntrustedDomain` (``client.untrusted_domain``); a
certification or statement that does not verify is refused the same way, never skipped.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final

import trio

from client import persist
from client.errors import AS_SERVER_KEY_ERROR, ClientError, NetworkError, UntrustedDomain
from client.store.base import StateStore
from suites import labels
from trust import documents
from trust.limits import MAX_STATEMENT
from wire import WireError, decode, encode
from wire.relay import GetPeerRoots, PeerRoots
from wire.server import PeerRootsBody, PeerRootsStatement, ServerKeyDocument

STATEMENT_TIMEOUT: Final = 30.0
"""Seconds to wait for ``PeerRoots`` (a node of an earlier release never answers)."""

Request = Callable[[Any], Awaitable[Any]]


# --- the rules (pure) ------------------------------------------------------------------------


def certified_roots(doc: ServerKeyDocument, now_ms: int) -> dict[str, bytes]:
    """Fingerprint to public key of each root with a current certification of a key that
    signed ``doc``, for ``doc``'s own domain: ``trust.documents.certified_roots``, the
    rule of a node's root pin. :class:`ServerKeyError` if any certification (or
    signature) does not verify."""
    with AS_SERVER_KEY_ERROR:
        return documents.certified_roots(doc, now_ms)


def home_roots(doc: ServerKeyDocument, now_ms: int) -> tuple[bytes, ...]:
    """The root keys to pin from the home document at enrollment (``()``: none)."""
    return tuple(sorted(certified_roots(doc, now_ms).values()))


def verify_statement(data: bytes, home: str, roots: Sequence[bytes], now_ms: int) -> PeerRootsBody:
    """The body of the peer-roots statement ``data`` if a pinned home root signed it for
    ``home`` and it has not expired."""
    require_roots(home, roots)
    try:
        statement = decode(data, PeerRootsStatement, max_size=MAX_STATEMENT)
    except WireError:
        raise UntrustedDomain("the peer-roots statement does not decode") from None
    if statement.root_public not in roots:
        raise UntrustedDomain(f"the peer-roots statement is not by the pinned root of {home}")
    if not documents.root_signed(statement, encode(statement.body), labels.CTX_PEER_ROOTS):
        raise UntrustedDomain("the peer-roots statement does not verify")
    body = statement.body
    if body.server.lower() != home.lower():
        raise UntrustedDomain(f"the peer-roots statement is for {body.server!r}, not {home!r}")
    if now_ms >= body.valid_until:
        raise UntrustedDomain(f"the peer-roots statement of {home} has expired")
    return body


def require_roots(home: str, roots: Sequence[bytes]) -> None:
    if not roots:
        raise UntrustedDomain(
            f"no agency root of {home} is pinned: only users of {home} can be reached"
        )


def listed_roots(statement: PeerRootsBody, domain: str) -> frozenset[str]:
    domain = domain.lower()
    return frozenset(
        fp for peer in statement.peers if peer.domain.lower() == domain for fp in peer.roots
    )


def check_remote(doc: ServerKeyDocument, statement: PeerRootsBody, now_ms: int) -> str:
    """The fingerprint of a root the statement lists for ``doc``'s domain and that
    certified a key that signed ``doc``; :class:`UntrustedDomain` if there is none."""
    domain = doc.body.server.lower()
    listed = listed_roots(statement, domain)
    if not listed:
        raise UntrustedDomain(f"the agency root of {statement.server} does not vouch for {domain}")
    match = listed & certified_roots(doc, now_ms).keys()
    if not match:
        raise UntrustedDomain(
            f"the key document of {domain} is not certified by a root {statement.server} "
            "pinned for it"
        )
    return min(match)


# --- the shell: the store and the node ----------------------------------------------------


def pinned_home_roots(
    store: StateStore, home_doc: ServerKeyDocument, now_ms: int
) -> tuple[bytes, ...]:
    """The home roots pinned at enrollment. A store enrolled before roots were pinned
    pins them now, from the home document it holds (trust on first use again)."""
    roots = persist.load_home_roots(store)
    if roots is None:
        roots = home_roots(home_doc, now_ms)
        persist.save_home_roots(store, roots)
    return roots


async def peer_roots(
    request: Request, store: StateStore, home_doc: ServerKeyDocument, domain: str, now_ms: int
) -> PeerRootsBody:
    """The statement to judge ``domain`` by: the one held while it lists ``domain`` and
    is in the first half of its life, otherwise a fresh one from the node (kept), or the
    held one, while valid and listing ``domain``, if the node serves none."""
    home = home_doc.body.server
    roots = pinned_home_roots(store, home_doc, now_ms)
    require_roots(home, roots)
    held = _held(store, home, roots, now_ms)
    usable = held is not None and bool(listed_roots(held, domain))
    if held is not None and usable and not _aging(held, now_ms):
        return held
    try:
        data = await _fetch(request)
    except UntrustedDomain:  # the node has none now, or does not answer
        if held is not None and usable:
            return held  # still valid: a newer one may come later
        raise
    body = verify_statement(data, home, roots, now_ms)
    if held is not None and body.issued < held.issued:
        raise UntrustedDomain("the node served an older peer-roots statement than the one held")
    persist.save_peer_roots(store, data)
    return body


def trusted_stored(
    store: StateStore, home_doc: ServerKeyDocument, now_ms: int
) -> list[ServerKeyDocument]:
    """The stored remote documents the held statement still vouches for. The others (and
    all of them before any statement was held) are left to be fetched and judged again."""
    roots = persist.load_home_roots(store) or ()
    held = _held(store, home_doc.body.server, roots, now_ms) if roots else None
    if held is None:
        return []
    trusted = []
    for raw in persist.domain_documents(store).values():
        with contextlib.suppress(ClientError, WireError):
            doc = decode(raw, ServerKeyDocument)
            check_remote(doc, held, now_ms)
            trusted.append(doc)
    return trusted


def _held(
    store: StateStore, home: str, roots: Sequence[bytes], now_ms: int
) -> PeerRootsBody | None:
    raw = persist.load_peer_roots(store)
    if raw is None:
        return None
    try:
        return verify_statement(raw, home, roots, now_ms)
    except UntrustedDomain:
        return None


def _aging(statement: PeerRootsBody, now_ms: int) -> bool:
    return now_ms >= statement.issued + (statement.valid_until - statement.issued) // 2


async def _fetch(request: Request) -> bytes:
    with trio.move_on_after(STATEMENT_TIMEOUT):
        answer = await request(GetPeerRoots(id=0))
        if not isinstance(answer, PeerRoots):
            raise NetworkError("unexpected answer to GetPeerRoots")
        if answer.statement is None:
            raise UntrustedDomain(
                "the home node serves no peer-roots statement (its operator signs one "
                "with `sealrelay keys peer-roots`)"
            )
        return answer.statement
    raise UntrustedDomain("the home node did not answer GetPeerRoots")
