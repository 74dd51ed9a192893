"""Keeping an enrolled device usable while it is connected.

On every connection the client replenishes its one-time prekeys when the node runs low
(:meth:`Upkeep.replenish_prekeys`) and renews its sender certificate before it expires
(:meth:`Upkeep.renew_certificate`, checked again while online by
:meth:`Upkeep.run_renewals`, at least every :data:`RENEW_CHECK_SECONDS`). A new certificate
is verified against the pinned keys before it is saved.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Final

import trio

from client import persist
from client.clock import Clock, now_ms
from client.enroll import check_certificate
from client.entropy import Entropy
from client.errors import ClientError, NetworkError, Refused, ServerKeyError
from client.identity import ONE_TIME_BATCH
from client.net import Connection, Link
from client.serverkeys import PinnedKeyring
from client.session import Device
from client.store.base import StateStore
from wire.relay import (
    CertificateIssued,
    GetCertificate,
    GetPrekeyStatus,
    PrekeyStatus,
    PublishPrekeys,
)

RENEW_CERTIFICATE_BEFORE_MS: Final = 2 * 86_400_000
"""Renew the sender certificate when less than this is left of it."""
RENEW_CHECK_SECONDS: Final = 3600.0
"""While online, look at the certificate's expiry at least this often (a clock may jump)."""
RENEW_RETRY_SECONDS: Final = 60.0

log = logging.getLogger(__name__)


class Upkeep:
    """Prekey replenishment and certificate renewal for ``device``."""

    def __init__(
        self,
        store: StateStore,
        device: Device,
        keyring: PinnedKeyring,
        *,
        home: str,
        entropy: Entropy,
        clock: Clock,
    ) -> None:
        self._store = store
        self._device = device
        self._keyring = keyring
        self._home = home
        self._entropy = entropy
        self._clock = clock

    async def replenish_prekeys(self, conn: Connection) -> None:
        """Publish a batch of new one-time prekeys if the node holds few (the private
        halves are saved before the public ones leave)."""
        status = await conn.request(GetPrekeyStatus(id=0))
        if not isinstance(status, PrekeyStatus):
            raise NetworkError("unexpected answer to GetPrekeyStatus")
        remaining = min(status.one_time, status.kem_one_time)
        pool = self._device.pool
        if not pool.needs_replenish(remaining):
            return
        pool.generate_one_time(self._entropy, ONE_TIME_BATCH)
        persist.save_prekeys(self._store, self._device)  # private halves first
        await conn.request(PublishPrekeys(id=0, upload=pool.upload(only_new=True)))
        persist.save_prekeys(self._store, self._device)

    async def renew_certificate(self, conn: Connection) -> None:
        """Renew the sender certificate if it expires soon. A refusal, or a certificate
        that does not verify against the pinned keys or names another device, is logged
        and the current certificate kept (tried again later)."""
        device = self._device
        if now_ms(self._clock) < device.certificate.body.expires - RENEW_CERTIFICATE_BEFORE_MS:
            return
        try:
            issued = await conn.request(GetCertificate(id=0))
        except Refused as exc:
            log.warning("the node refused a new sender certificate: %s", exc.node_code)
            return
        if not isinstance(issued, CertificateIssued):
            raise NetworkError("unexpected answer to GetCertificate")
        old = device.certificate
        device.certificate = issued.certificate
        try:
            pinned = self._keyring.document(self._home)
            if pinned is None:
                raise ServerKeyError(f"no key document of {self._home} is pinned")
            check_certificate(device, pinned)
        except ClientError as exc:
            device.certificate = old
            log.warning("the node issued a sender certificate that does not check: %s", exc)
            return
        persist.save_device(self._store, device)

    async def run_renewals(self, link: Link) -> None:
        """Renew the sender certificate while online, not only on connecting: a session
        may outlive it."""
        while True:
            body = self._device.certificate.body
            due = (body.expires - RENEW_CERTIFICATE_BEFORE_MS - now_ms(self._clock)) / 1000
            await trio.sleep(min(max(due, RENEW_RETRY_SECONDS), RENEW_CHECK_SECONDS))
            with contextlib.suppress(NetworkError):
                await self.renew_certificate(await link.current())
