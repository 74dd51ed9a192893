"""The key documents of the domains this client deals with (DESIGN section 5).

The home domain's document is pinned at enrollment and refreshed once half of its life has
passed (accepted only if a pinned key signed the new one). Another domain's document comes
through the home node (``GetServerKeys``) and is verified here: signed by a key of the
document held before (if any), and certified by a root that the home agency's root vouches
for (``client.domaintrust``; :class:`~client.errors.UntrustedDomain` if not).

An envelope from a domain whose document is missing is quarantined; :meth:`DomainKeys.want`
asks the loop (:meth:`DomainKeys.run`) to fetch that document, at most once per
:data:`DOMAIN_RETRY_MS` per domain, and the quarantine is tried again afterwards.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Final

import trio

from client import domaintrust, nodehttp, persist
from client.account import Account
from client.clock import Clock, now_ms
from client.errors import ClientError, NetworkError
from client.outbox import Request
from client.serverkeys import PinnedKeyring, accept_refresh, needs_refresh, verify_document
from client.store.base import StateStore
from wire import decode
from wire.relay import GetServerKeys, ServerKeys
from wire.server import ServerKeyDocument

DOMAIN_RETRY_MS: Final = 30_000
"""Least time between two requests for the key document of one domain."""

log = logging.getLogger(__name__)


class DomainKeys:
    """The pinned key documents: the home domain's and the others' this client verified."""

    def __init__(
        self,
        store: StateStore,
        keyring: PinnedKeyring,
        account: Account,
        request: Request,
        clock: Clock,
        home: str,
    ) -> None:
        self._store = store
        self._keyring = keyring
        self._account = account
        self._request = request
        self._clock = clock
        self.home = home
        """The home domain, as in this device's address."""
        self._missing: set[str] = set()
        self._asked: dict[str, int] = {}
        self._wanted = trio.Event()

    async def refresh_home(self, *, force: bool = False) -> None:
        """Fetch a fresh home key document once half of the pinned one's life has passed
        (or now, with ``force``: the node's QUIC key or endpoint changed); accept it only if
        a pinned key signed it."""
        pinned = self._keyring.document(self.home)
        now = now_ms(self._clock)
        if pinned is not None and not force and not needs_refresh(pinned, now):
            return
        data = await nodehttp.fetch_document(self._account.info.node_url)
        fresh = (
            verify_document(data, self.home, now)
            if pinned is None
            else accept_refresh(pinned, data, self.home, now)
        )
        self._keyring.pin(fresh)
        self._account.with_document(data)

    async def document(self, domain: str) -> ServerKeyDocument:
        """The key document of ``domain``: the home domain's as pinned (refreshed when due),
        another's as the home node relays it, verified (see the module)."""
        domain = domain.lower()
        if domain == self.home.lower():
            await self.refresh_home()
            pinned = self._keyring.document(domain)
            assert pinned is not None  # noqa: S101 - refresh_home pins it
            return pinned
        pinned = self._keyring.document(domain)
        now = now_ms(self._clock)
        if pinned is not None and not needs_refresh(pinned, now):
            return pinned
        answer = await self._request(GetServerKeys(id=0, domain=domain))
        if not isinstance(answer, ServerKeys) or answer.domain != domain:
            raise NetworkError("unexpected answer to GetServerKeys")
        fresh = (
            verify_document(answer.document, domain, now)
            if pinned is None
            else accept_refresh(pinned, answer.document, domain, now)
        )
        home_doc = decode(self._account.info.server_key_document, ServerKeyDocument)
        peers = await domaintrust.peer_roots(self._request, self._store, home_doc, domain, now)
        domaintrust.check_remote(fresh, peers, now)
        self._keyring.pin(fresh)
        persist.save_domain_document(self._store, domain, answer.document)
        return fresh

    async def fetch_missing(self, domains: Iterable[str]) -> None:
        """Fetch the document of each of ``domains`` (the origins of envelopes about to be
        opened) that has none pinned yet, so the first message from a new domain opens at
        once instead of passing through the quarantine. A failure is logged; the envelope
        is then quarantined and the domain asked for again later."""
        for domain in sorted({d.lower() for d in domains}):
            if domain == self.home.lower() or self._keyring.document(domain) is not None:
                continue
            try:
                await self.document(domain)
            except ClientError as exc:
                log.warning("no key document for %s: %s", domain, exc.code)

    def want(self, domain: str) -> None:
        """Ask :meth:`run` for ``domain``'s keys (at most once per ``DOMAIN_RETRY_MS`` per
        domain, so a peer that has none is not asked in a loop)."""
        domain = domain.lower()
        now = now_ms(self._clock)
        if domain == self.home.lower() or self._keyring.document(domain) is not None:
            return
        if now - self._asked.get(domain, -DOMAIN_RETRY_MS) < DOMAIN_RETRY_MS:
            return
        self._asked[domain] = now
        self._missing.add(domain)
        self._wanted.set()

    async def run(self, then: Callable[[], object]) -> None:
        """Fetch the documents :meth:`want` asked for, then call ``then`` (try the
        quarantined envelopes again); forever."""
        while True:
            await self._wanted.wait()
            self._wanted = trio.Event()
            for domain in sorted(self._missing):
                self._missing.discard(domain)
                try:
                    await self.document(domain)
                except ClientError as exc:
                    log.warning("no key document for %s: %s", domain, exc.code)
            then()
