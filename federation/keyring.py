"""The federation keyring: fetch, verify, cache and pin remote key documents (DESIGN 6).

    keyring = Keyring(own_domain, policies, fetch, clock=time.time, trust_store=...)
    doc = await keyring.document("agency-b.example")        # VerifiedDocument
    key = await keyring.verify_key("agency-b.example", key_id)

``fetch(domain, urls)`` returns a document's bytes (the node tries the endpoints in turn).
A cached document is used until half its life has passed and never beyond
``MAX_CACHE_MS`` (7 days) after it was fetched, whatever its ``valid_until`` says (the
rule a client applies too: ``trust.documents.refresh_due``, ``still_usable``). A
signature by a key the cached document does not list triggers one refresh, at most every
``REFRESH_INTERVAL_MS`` per domain, so a rotation is picked up at once and a flood of
bogus key ids cannot make the node hammer a peer.

Trust per domain comes from its :class:`~federation.policy.PeerPolicy`: ``pinned``
(root or key fingerprints, plus key continuity) or ``tofu`` (the first document is
accepted, optionally after notaries agree on it, and kept in ``trust_store``; later ones
need continuity). A document that breaks a pin raises :class:`PinMismatch`; the keyring
calls ``on_refusal(domain, code)`` so that the node logs it loudly and counts it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Final, Protocol

import trio

from federation import documents
from federation.errors import FederationError, KeyDocumentError, PolicyRefused
from federation.policy import PeerPolicy
from trust import documents as trust_documents
from wire.server import ServerKeyDocument, ServerVerifyKeyEntry

REFRESH_INTERVAL_MS: Final = 10_000

Fetch = Callable[[str, tuple[str, ...]], Awaitable[bytes]]
NotaryCheck = Callable[[str, str, bytes], Awaitable[bool]]


class TrustStore(Protocol):
    """Where first-seen (TOFU) documents are remembered across restarts."""

    def load(self, domain: str) -> bytes | None: ...

    def save(self, domain: str, document: bytes) -> None: ...


class MemoryTrustStore:
    def __init__(self) -> None:
        self._docs: dict[str, bytes] = {}

    def load(self, domain: str) -> bytes | None:
        return self._docs.get(domain)

    def save(self, domain: str, document: bytes) -> None:
        self._docs[domain] = document


@dataclass(frozen=True)
class VerifiedDocument:
    doc: ServerKeyDocument
    raw: bytes
    fetched: int
    trust: str

    @property
    def digest(self) -> bytes:
        return hashlib.sha256(self.raw).digest()

    def fresh(self, now_ms: int) -> bool:
        return not trust_documents.refresh_due(self.doc, self.fetched, now_ms)

    def usable(self, now_ms: int) -> bool:
        return trust_documents.still_usable(self.doc, self.fetched, now_ms)


class Keyring:
    def __init__(
        self,
        own_domain: str,
        policies: Mapping[str, PeerPolicy],
        fetch: Fetch,
        *,
        clock: Callable[[], float],
        trust_store: TrustStore | None = None,
        notary_check: NotaryCheck | None = None,
        open_federation: bool = False,
        on_refusal: Callable[[str, str, str], None] | None = None,
    ) -> None:
        self.own_domain = own_domain.lower()
        self.policies = dict(policies)
        self._fetch = fetch
        self._clock = clock
        self._trust_store = trust_store or MemoryTrustStore()
        self._notary_check = notary_check
        self._open = open_federation
        self._on_refusal = on_refusal
        self._cache: dict[str, VerifiedDocument] = {}
        self._last_refresh: dict[str, int] = {}
        self._locks: dict[str, trio.Lock] = {}
        self._local: Callable[[], bytes] | None = None

    def set_local(self, document: Callable[[], bytes]) -> None:
        """Serve the own domain's document from ``document()`` (no fetch, no pins)."""
        self._local = document

    def _now(self) -> int:
        return int(self._clock() * 1000)

    def policy(self, domain: str) -> PeerPolicy:
        """The policy for ``domain``; :class:`PolicyRefused` if it is denied or unknown."""
        domain = domain.lower()
        policy = self.policies.get(domain)
        if policy is None and self._open:
            if not is_host_name(domain):
                raise PolicyRefused(f"{domain!r} is not a domain name this node would reach")
            policy = PeerPolicy(domain=domain, trust="tofu")
        if policy is None:
            raise PolicyRefused(f"{domain} is not a federation peer of this domain")
        if not policy.allow:
            raise PolicyRefused(f"{domain} is denied by this domain's policy")
        return policy

    async def document(self, domain: str, *, refresh: bool = False) -> VerifiedDocument:
        domain = domain.lower()
        now = self._now()
        if domain == self.own_domain and self._local is not None:
            raw = self._local()
            return VerifiedDocument(documents.verify_document(raw, domain, now), raw, now, "own")
        cached = self._cache.get(domain)
        if cached is not None and cached.fresh(now) and not refresh:
            return cached
        lock = self._locks.setdefault(domain, trio.Lock())
        async with lock:
            cached = self._cache.get(domain)
            if cached is not None and cached.fetched > now and not refresh:
                return cached  # refreshed while this task waited for the lock
            try:
                return await self._refresh(domain)
            except FederationError:
                if cached is not None and cached.usable(self._now()) and not refresh:
                    return cached  # the peer is unreachable: its cached keys still hold
                raise

    async def verify_key(self, domain: str, key_id: bytes) -> ServerVerifyKeyEntry:
        """The verify key ``key_id`` of ``domain``, refreshing the document once if it is
        not listed; :class:`KeyDocumentError` if it is still unknown."""
        entry = documents.verify_key((await self.document(domain)).doc, key_id, self._now())
        if entry is not None:
            return entry
        now = self._now()
        last = self._last_refresh.get(domain.lower(), -REFRESH_INTERVAL_MS)
        if now - last >= REFRESH_INTERVAL_MS:
            self._last_refresh[domain.lower()] = now
            fresh = await self.document(domain, refresh=True)
            entry = documents.verify_key(fresh.doc, key_id, self._now())
            if entry is not None:
                return entry
        raise KeyDocumentError(f"{domain} has no current key with that id")

    async def _refresh(self, domain: str) -> VerifiedDocument:
        policy = self.policy(domain)
        try:
            raw = await self._fetch(domain, policy.urls())
        except KeyDocumentError as exc:  # it answered, with no document (too large)
            self._refused(domain, exc)
            raise
        try:
            verified = await self._accept(domain, policy, raw)
        except FederationError as exc:
            self._refused(domain, exc)
            raise
        self._cache[domain] = verified
        return verified

    def _refused(self, domain: str, exc: FederationError) -> None:
        if self._on_refusal is not None:
            self._on_refusal(domain, exc.code, exc.message)

    async def accept(self, domain: str, raw: bytes) -> VerifiedDocument:
        """Verify ``raw`` for ``domain`` under its policy and cache it (a document that
        reached the node otherwise than by its own fetch)."""
        domain = domain.lower()
        verified = await self._accept(domain, self.policy(domain), raw)
        self._cache[domain] = verified
        return verified

    async def _accept(self, domain: str, policy: PeerPolicy, raw: bytes) -> VerifiedDocument:
        now = self._now()
        doc = documents.verify_document(raw, domain, now)
        policy.check_suite(doc.body.suite)
        before = self._cache.get(domain)
        previous = before.doc if before is not None else self._remembered(domain, now)
        if previous is not None:
            documents.check_not_older(previous, doc)
        if policy.trust == "pinned" or previous is not None:
            trust = documents.check_trust(doc, policy.pins, previous, now)
        else:
            trust = await self._first_use(domain, policy, raw)
        if policy.trust == "tofu":
            self._trust_store.save(domain, raw)
        return VerifiedDocument(doc, raw, now, trust)

    def _remembered(self, domain: str, now: int) -> ServerKeyDocument | None:
        raw = self._trust_store.load(domain)
        if raw is None:
            return None
        try:
            return documents.verify_document(raw, domain, 0)
        except KeyDocumentError:
            return None

    async def _first_use(self, domain: str, policy: PeerPolicy, raw: bytes) -> str:
        if policy.notaries and self._notary_check is not None:
            for notary in policy.notaries:
                if not await self._notary_check(notary, domain, raw):
                    raise KeyDocumentError(f"notary {notary} does not confirm {domain}'s keys")
        return "tofu"


_LABEL: Final = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


def is_host_name(domain: str) -> bool:
    """Whether ``domain`` is a DNS host name an open federation may reach on first use: at
    least two labels of letters, digits and inner hyphens, at most 253 characters, and
    not an address (the last label is not all digits). No port, no IP literal, no
    ``localhost``: a name a client typed must not turn the node into a proxy to its own
    network (``https://{domain}`` is fetched)."""
    labels = domain.split(".")
    if len(domain) > 253 or len(labels) < 2 or labels[-1].isdigit():
        return False
    return all(_LABEL.fullmatch(label) for label in labels)
