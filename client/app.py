"""The high-level client: one enrolled device talking to its home node.

    client = Client.load(store, save_dir=...)           after ``client.enroll.enroll``
    async with client.online():                          link, outbox pump, deliveries
        failures = await client.send(to, text, files, expire)
        await client.drained.wait()
        client.inbox.unshown()
    client.safety_number(address)

Sending encrypts once per device of the recipient (fetching prekeys and starting
sessions where there are none), writes each envelope to the durable outbox in the same
transaction as the ratchet state, then waits until the node acknowledged every one.
Receiving de-duplicates by envelope id, decrypts, and saves the message, the seen id and
the session in one transaction before acknowledging; attachments are then downloaded and
verified. An envelope that can never open (it does not decrypt, its content does not
decode, it lies about its sender) is acked and dropped; one that failed for a reason that
may pass (a sender certificate expired or unknown, a server key not pinned: any other
``ClientError``) is acked too, but kept in the store's quarantine (``NS_QUARANTINE``,
counted in ``Client.quarantine_count`` and logged) and tried again each time the client
goes online, until it opens, proves unopenable or expires.

On every connection the client replenishes its one-time prekeys when the node runs low and
renews its sender certificate before it expires (checked again hourly while online; a new
certificate is verified against the pinned keys before it is saved); while online it
purges disappearing messages when their timer runs out, and hourly the ids of received
envelopes (and quarantined ones) past their expiry.

Groups (``client.groupnet``, docs/groups.md section 8): :meth:`Client.group_create`,
:meth:`group_change` and :meth:`group_send`; a pairwise plaintext that is a group control
goes to the group (never to the inbox), and a group envelope is unwrapped, decrypted with
the sender's chain and saved in the inbox like a message, with its group id beside it.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import trio

from client import domaintrust, drafts, groupnet, nodehttp, persist
from client.attachments_io import download_all, pending_attachment, upload_file
from client.content import Content, GroupNote, pack, unpack, unpack_payload
from client.drafts import Draft, Drafts
from client.enroll import check_certificate
from client.entropy import SYSTEM_ENTROPY, Entropy
from client.errors import (
    BadContent,
    ClientError,
    DecryptionFailed,
    NetworkError,
    NoAccount,
    Refused,
    SelfAddressed,
    ServerKeyError,
    SuiteMismatch,
    UnknownAccount,
    UntrustedIdentity,
)
from client.groups import GroupControl
from client.identity import ONE_TIME_BATCH
from client.inbox import Inbox, StoredMessage, message_key
from client.net import AuthLogin, Connection, Connector, Link, websocket_connector
from client.outbox import Outbox, OutboxItem, OutboxPump
from client.records import AccountInfo, Contact
from client.routing import check_address, seal_for_domain
from client.safety import safety_number
from client.savedfiles import remove_saved
from client.serverkeys import PinnedKeyring, accept_refresh, needs_refresh, verify_document
from client.session import Device
from client.store.base import StateStore
from trust.errors import PREKEYS_NONE
from wire import decode
from wire.e2e import IdentityKey
from wire.relay import (
    MAX_BATCH,
    Ack,
    Authenticated,
    CertificateIssued,
    Deliver,
    Drained,
    Envelope,
    FetchPrekeys,
    GetCertificate,
    GetPrekeyStatus,
    GetServerKeys,
    PrekeyBundles,
    PrekeyStatus,
    PublishPrekeys,
    Registered,
    ServerKeys,
)
from wire.server import ServerKeyDocument

EID_LEN: Final = 16
RENEW_CERTIFICATE_BEFORE_MS: Final = 2 * 86_400_000
"""Renew the sender certificate when less than this is left of it."""
RENEW_CHECK_SECONDS: Final = 3600.0
"""While online, look at the certificate's expiry at least this often (a clock may jump)."""
RENEW_RETRY_SECONDS: Final = 60.0
PURGE_IDS_EVERY_MS: Final = 3_600_000
"""How often the purge loop forgets expired seen ids and quarantined envelopes."""
CONNECT_TIMEOUT: Final = 30.0
DOMAIN_RETRY_MS: Final = 30_000
"""Least time between two requests for the key document of one domain."""
MAX_RETRY_PASSES: Final = 16
"""Most passes over the quarantine in one :meth:`Client.retry_quarantined`."""
NEVER_OPENS: Final = (DecryptionFailed, BadContent, SuiteMismatch)
"""Errors of an envelope that cannot open later either: it is dropped, not quarantined."""

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SendResult:
    """The envelopes of one message (one per recipient device) and the refused ones."""

    eids: tuple[bytes, ...]
    failed: dict[bytes, Refused]


def now_ms(clock: Callable[[], float]) -> int:
    return int(clock() * 1000)


class Client:
    """An enrolled device, its store and its connection to the home node."""

    def __init__(
        self,
        store: StateStore,
        device: Device,
        info: AccountInfo,
        *,
        save_dir: Path,
        entropy: Entropy = SYSTEM_ENTROPY,
        clock: Callable[[], float] = time.time,
        connector: Connector | None = None,
    ) -> None:
        self.store = store
        self.device = device
        self.info = info
        self.save_dir = save_dir
        self.entropy = entropy
        self.clock = clock
        self.inbox = Inbox(store)
        self.outbox = Outbox(store)
        self.drafts = Drafts(store)
        self.drafts_sent = trio.Event()
        """Set once the drafts were looked at on a connection (see :meth:`send_drafts`)."""
        self.drafts_failed: list[tuple[Draft, ClientError]] = []
        self._compose_lock = trio.Lock()
        self.link = Link(
            connector or websocket_connector(info.node_url),
            AuthLogin(device.identity, device.address, device.device_id),
            self._on_connect,
            expect_server=device.address.rpartition("@")[2],
        )
        self.pump = OutboxPump(self.outbox, self.link.request, batch=MAX_BATCH)
        self.drained = trio.Event()
        self._download_lock = trio.Lock()
        self.changed = trio.Event()
        """Set (and replaced) whenever a message was saved or updated."""
        self._missing_domains: set[str] = set()
        self._domain_asked: dict[str, int] = {}
        self._domains_wanted = trio.Event()
        self.quarantine_count = 0
        """Envelopes that did not open for a reason that may pass since this client was
        created (quarantined, or dropped because the quarantine was full)."""
        self.groups = groupnet.GroupBook(store, device, entropy)
        self._groups_changed = False

    @classmethod
    def load(
        cls,
        store: StateStore,
        *,
        save_dir: Path,
        entropy: Entropy = SYSTEM_ENTROPY,
        clock: Callable[[], float] = time.time,
        connector: Connector | None = None,
    ) -> Client:
        """The client saved in ``store``; :class:`NoAccount` before enrollment."""
        info = persist.load_account_info(store)
        if info is None:
            raise NoAccount("the client state holds no account; register first")
        keyring = PinnedKeyring()
        home_doc = decode(info.server_key_document, ServerKeyDocument)
        keyring.pin(home_doc)
        for doc in domaintrust.trusted_stored(store, home_doc, now_ms(clock)):
            keyring.pin(doc)
        device = persist.load_device(store, keyring, entropy=entropy, clock=clock)
        return cls(
            store,
            device,
            info,
            save_dir=save_dir,
            entropy=entropy,
            clock=clock,
            connector=connector,
        )

    @property
    def keyring(self) -> PinnedKeyring:
        keyring = self.device.keyring
        assert isinstance(keyring, PinnedKeyring)  # noqa: S101 - set by load/enroll
        return keyring

    @property
    def domain(self) -> str:
        return self.device.address.rpartition("@")[2]

    # --- running ----------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def online(self, connect_timeout: float = CONNECT_TIMEOUT) -> AsyncIterator[Client]:
        """Connected for the duration of the block (waits up to ``connect_timeout`` for the
        first connection; it is re-established as needed afterwards).

        An error of the block, or a fatal one of the link, comes out as itself.
        """
        await self.refresh_server_keys()
        self.retry_quarantined()
        self.purge_expired()
        error: Exception | None = None
        async with trio.open_nursery() as nursery:
            try:
                with trio.fail_after(connect_timeout):
                    await nursery.start(self.link.run)
            except trio.TooSlowError:
                error = NetworkError("could not connect to the node in time")
            except ClientError as exc:  # a refused login
                error = exc
            else:
                nursery.start_soon(self.pump.run)
                nursery.start_soon(self._process_pushes)
                nursery.start_soon(self._purge_loop)
                nursery.start_soon(self._renew_loop)
                nursery.start_soon(self._domains_loop)
                try:
                    yield self
                except Exception as exc:
                    error = exc
            nursery.cancel_scope.cancel()
        if error is not None:
            raise error

    async def refresh_server_keys(self) -> None:
        """Fetch a fresh key document once half of the pinned one's life has passed;
        accept it only if a pinned key signed it."""
        pinned = self.keyring.document(self.domain)
        now = now_ms(self.clock)
        if pinned is not None and not needs_refresh(pinned, now):
            return
        data = await nodehttp.fetch_document(self.info.node_url)
        fresh = (
            verify_document(data, self.domain, now)
            if pinned is None
            else accept_refresh(pinned, data, self.domain, now)
        )
        self.keyring.pin(fresh)
        self.info = AccountInfo(
            self.info.node_url, data, self.info.mailbox, self.info.delivery_token
        )
        persist.save_account_info(self.store, self.info)

    async def domain_document(self, domain: str) -> ServerKeyDocument:
        """The key document of ``domain``: the home domain's as pinned, another's as the
        home node relays it (``GetServerKeys``), verified here: signed by a key of the
        document held before (if any), and certified by a root that the home agency's
        root vouches for (``client.domaintrust``; :class:`UntrustedDomain` if not)."""
        domain = domain.lower()
        if domain == self.domain.lower():
            await self.refresh_server_keys()
            pinned = self.keyring.document(domain)
            assert pinned is not None  # noqa: S101 - refresh_server_keys pins it
            return pinned
        pinned = self.keyring.document(domain)
        now = now_ms(self.clock)
        if pinned is not None and not needs_refresh(pinned, now):
            return pinned
        answer = await self.link.request(GetServerKeys(id=0, domain=domain))
        if not isinstance(answer, ServerKeys) or answer.domain != domain:
            raise NetworkError("unexpected answer to GetServerKeys")
        fresh = (
            verify_document(answer.document, domain, now)
            if pinned is None
            else accept_refresh(pinned, answer.document, domain, now)
        )
        home_doc = decode(self.info.server_key_document, ServerKeyDocument)
        peers = await domaintrust.peer_roots(self.link.request, self.store, home_doc, domain, now)
        domaintrust.check_remote(fresh, peers, now)
        self.keyring.pin(fresh)
        persist.save_domain_document(self.store, domain, answer.document)
        return fresh

    async def _domains_loop(self) -> None:
        """Fetch the key documents of domains whose envelopes were quarantined for want of
        them, then try those envelopes again."""
        while True:
            await self._domains_wanted.wait()
            self._domains_wanted = trio.Event()
            for domain in sorted(self._missing_domains):
                self._missing_domains.discard(domain)
                try:
                    await self.domain_document(domain)
                except ClientError as exc:
                    log.warning("no key document for %s: %s", domain, exc.code)
            self.retry_quarantined()

    async def _on_connect(self, conn: Connection, response: Registered | Authenticated) -> None:
        if self.info.mailbox != response.mailbox:
            self.info = AccountInfo(
                self.info.node_url,
                self.info.server_key_document,
                response.mailbox,
                self.info.delivery_token,
            )
            persist.save_account_info(self.store, self.info)
        await self._replenish_prekeys(conn)
        await self._renew_certificate(conn)
        await self.send_drafts()
        self.pump.notify()
        await self._fetch_pending_attachments()

    async def _replenish_prekeys(self, conn: Connection) -> None:
        status = await conn.request(GetPrekeyStatus(id=0))
        if not isinstance(status, PrekeyStatus):
            raise NetworkError("unexpected answer to GetPrekeyStatus")
        remaining = min(status.one_time, status.kem_one_time)
        pool = self.device.pool
        if not pool.needs_replenish(remaining):
            return
        pool.generate_one_time(self.entropy, ONE_TIME_BATCH)
        persist.save_prekeys(self.store, self.device)  # private halves first
        await conn.request(PublishPrekeys(id=0, upload=pool.upload(only_new=True)))
        persist.save_prekeys(self.store, self.device)

    async def _renew_certificate(self, conn: Connection) -> None:
        """Renew the sender certificate if it expires soon. A refusal, or a certificate
        that does not verify against the pinned keys or names another device, is logged
        and the current certificate kept (tried again later)."""
        expires = self.device.certificate.body.expires
        if now_ms(self.clock) < expires - RENEW_CERTIFICATE_BEFORE_MS:
            return
        try:
            issued = await conn.request(GetCertificate(id=0))
        except Refused as exc:
            log.warning("the node refused a new sender certificate: %s", exc.node_code)
            return
        if not isinstance(issued, CertificateIssued):
            raise NetworkError("unexpected answer to GetCertificate")
        old = self.device.certificate
        self.device.certificate = issued.certificate
        try:
            pinned = self.keyring.document(self.domain)
            if pinned is None:
                raise ServerKeyError(f"no key document of {self.domain} is pinned")
            check_certificate(self.device, pinned)
        except ClientError as exc:
            self.device.certificate = old
            log.warning("the node issued a sender certificate that does not check: %s", exc)
            return
        persist.save_device(self.store, self.device)

    async def _renew_loop(self) -> None:
        """Renew the sender certificate while online, not only on connecting: a session
        may outlive it."""
        while True:
            body = self.device.certificate.body
            due = (body.expires - RENEW_CERTIFICATE_BEFORE_MS - now_ms(self.clock)) / 1000
            await trio.sleep(min(max(due, RENEW_RETRY_SECONDS), RENEW_CHECK_SECONDS))
            with contextlib.suppress(NetworkError):
                await self._renew_certificate(await self.link.current())

    # --- sending ----------------------------------------------------------------------

    def check_recipient(self, to: str) -> None:
        """:class:`BadAddress` unless ``to`` is NAME@DOMAIN; :class:`SelfAddressed` for this
        account's own address (notes to self are not supported: refused, not lost)."""
        check_address(to)
        if to.lower() == self.device.address.lower():
            raise SelfAddressed(f"{to} is your own address: a message to yourself is not sent")
        if self.device.identity_changed(to):
            raise UntrustedIdentity(to)

    async def send(
        self,
        to: str,
        text: str,
        files: Sequence[Path] = (),
        expire: int | None = None,
        ttl: int = 0,
    ) -> SendResult:
        """Send to every device of ``to``; returns once the node acknowledged (or refused
        for good) every envelope. Must run inside :meth:`online`; composed after the drafts
        written before (so messages leave in the order they were written)."""
        self.check_recipient(to)
        pointers = [
            await upload_file(self.link.request, self.info.node_url, path, self.entropy)
            for path in files
        ]
        content = Content(
            text=text,
            sent=now_ms(self.clock),
            reply_token=self.info.delivery_token,
            reply_mailbox=self.info.mailbox,
            expire=expire,
            attachments=tuple(pointers),
        )
        await self.drafts_sent.wait()
        eids = await self._compose(to, content, ttl)
        self.pump.notify()
        return SendResult(tuple(eids), await self.pump.wait(eids))

    def write_draft(self, to: str, text: str, expire: int | None = None, ttl: int = 0) -> Draft:
        """Keep a message written while the node cannot be reached; it is composed and
        sent on the next connection (``client.drafts``)."""
        self.check_recipient(to)
        draft = Draft(self.entropy.random_bytes(EID_LEN), to, text, now_ms(self.clock), expire, ttl)
        with self.store.transaction():
            self.drafts.add(draft)
        return draft

    async def send_drafts(self) -> None:
        """Compose the drafts into the outbox (on each connection; see ``client.drafts``)."""
        await drafts.send_all(self)

    async def flush_queued(self) -> dict[bytes, Refused]:
        """Wait until the drafts were composed and every envelope now in the outbox was
        settled; the refused ones. Must run inside :meth:`online`."""
        await self.drafts_sent.wait()
        return await self.pump.wait([item.eid for item in self.outbox.pending()])

    async def _compose(
        self, to: str, content: Content, ttl: int, draft: Draft | None = None
    ) -> list[bytes]:
        """Encrypt ``content`` for every device of ``to`` into the outbox (deleting
        ``draft`` in the same transaction); the envelope ids. One composition at a time, so
        two never start a session with the same device at once."""
        async with self._compose_lock:
            if self.device.identity_changed(to):
                raise UntrustedIdentity(to)
            domain = to.rpartition("@")[2].lower()
            remote = None if domain == self.domain.lower() else await self.domain_document(domain)
            targets = await self._targets(to)
            return self._queue(to, targets, pack(content), ttl, remote, draft)

    def _queue(
        self,
        to: str,
        targets: dict[int, Contact],
        plaintext: bytes,
        ttl: int,
        remote: ServerKeyDocument | None,
        draft: Draft | None = None,
    ) -> list[bytes]:
        """Encrypt for each device and queue; for another domain (``remote`` is its key
        document) each envelope is wrapped in a routing layer sealed to that domain."""
        eids = []
        now = now_ms(self.clock)
        with self.store.transaction():
            if draft is not None:
                self.drafts.remove(draft.draft_id)
            for device_id, contact in targets.items():
                body = self.device.encrypt(to, device_id, plaintext)
                eid = self.entropy.random_bytes(EID_LEN)
                token = contact.delivery_token
                domain = ""
                if remote is not None:
                    domain = remote.body.server.lower()
                    body = seal_for_domain(
                        remote,
                        now,
                        mailbox=contact.mailbox,
                        token=token,
                        eid=eid,
                        ttl=ttl,
                        body=body,
                    )
                persist.save_peer(self.store, self.device, to, device_id)
                item = OutboxItem(to, device_id, contact.mailbox, eid, token, ttl, body, domain)
                self.outbox.add(item)
                eids.append(eid)
        return eids

    async def _targets(self, to: str) -> dict[int, Contact]:
        """The recipient's devices with a session and a mailbox, fetching bundles if none."""
        known = {
            dev: contact
            for (addr, dev), contact in persist.contacts(self.store).items()
            if addr == to and self.device.has_session(to, dev)
        }
        if known:
            return known
        try:
            bundles = await self.link.request(FetchPrekeys(id=0, address=to))
        except Refused as exc:
            if exc.node_code == PREKEYS_NONE:
                raise UnknownAccount(to) from None
            raise
        if not isinstance(bundles, PrekeyBundles):
            raise NetworkError("unexpected answer to FetchPrekeys")
        targets: dict[int, Contact] = {}
        for entry in bundles.devices:
            if entry.bundle.address != to or entry.bundle.device != entry.device:
                raise ClientError("the node answered with a bundle of another device")
            old = persist.load_contact(self.store, to, entry.device)
            contact = Contact(entry.mailbox, old.delivery_token if old else None)
            with self.store.transaction():
                self.device.start_session(entry.bundle)
                persist.save_peer(self.store, self.device, to, entry.device)
                persist.save_contact(self.store, to, entry.device, contact)
            targets[entry.device] = contact
        return targets

    # --- receiving --------------------------------------------------------------------

    async def _process_pushes(self) -> None:
        async for push in self.link.pushes:
            if isinstance(push, Drained):
                self.drained.set()
            elif isinstance(push, Deliver):
                await self._deliver(push)

    async def _deliver(self, push: Deliver) -> None:
        await self._fetch_origin_documents(push.envelopes)
        saved = [msg for env in push.envelopes if (msg := self._accept(env)) is not None]
        eids = tuple(env.eid for env in push.envelopes)
        # Fire and forget (id 0: the node answers nothing), so this task never waits for
        # a response that may sit behind more pushes. Unacked: pushed again after
        # reconnecting, and acked then.
        with contextlib.suppress(NetworkError):
            await self.link.send_only(Ack(id=0, eids=eids))
        if self._groups_changed:  # a key or chain came: group envelopes may open now
            self._groups_changed = False
            saved += self.retry_quarantined()
        if saved:
            self._changed()
        for msg in saved:
            if msg.attachments:
                await self._download(message_key(msg))

    async def _fetch_origin_documents(self, envelopes: Sequence[Envelope]) -> None:
        """Fetch the key document of each other domain these envelopes come from that has
        none pinned yet, before opening them: the first message from a new domain opens
        at once instead of passing through the quarantine. A failure is logged; the
        envelope is then quarantined and the domain asked for again later."""
        for domain in sorted({env.origin.lower() for env in envelopes}):
            if domain == self.domain.lower() or self.keyring.document(domain) is not None:
                continue
            try:
                await self.domain_document(domain)
            except ClientError as exc:
                log.warning("no key document for %s: %s", domain, exc.code)

    def _accept(self, env: Envelope) -> StoredMessage | None:
        """Decrypt and save ``env`` (one transaction); ``None`` for a duplicate or an
        envelope that did not open (dropped, or quarantined: see the module)."""
        with self.store.transaction():
            if not persist.mark_seen(self.store, env.eid, env.expires):
                return None
            return self._open(env, retry=False)

    def _open(self, env: Envelope, *, retry: bool) -> StoredMessage | None:
        """Decrypt and save ``env`` (in the caller's transaction); quarantine it if it failed
        for a reason that may pass."""
        wrapped = groupnet.parse(env.body)
        if wrapped is not None:
            return self._open_group(env, wrapped, retry=retry)
        try:
            received = self.device.decrypt(env.body, sent_ms=env.ts)
            payload = unpack_payload(received.plaintext)
        except NEVER_OPENS:
            persist.release(self.store, env.eid)
            return None
        except ClientError as exc:
            if not retry:
                self._want_domain(env.origin)
                self._quarantine(env, exc.code)
            return None
        persist.release(self.store, env.eid)
        if env.sender is not None and env.sender != received.sender:
            return None  # an introduction whose sealed sender is someone else
        if received.sender.rpartition("@")[2].lower() != env.origin.lower():
            log.warning("envelope %s: a sender of another domain than its origin", env.eid.hex())
            return None  # a domain may only carry its own users' messages
        persist.save_peer(self.store, self.device, received.sender, received.device)
        if not isinstance(payload, Content):
            self._group_control(received.sender, received.device, payload)
            return None
        self._remember_contact(received.sender, received.device, payload)
        msg = _stored(env, received.sender, received.device, payload, now_ms(self.clock))
        self.inbox.put(msg)
        return msg

    def _quarantine(self, env: Envelope, code: str) -> None:
        self.quarantine_count += 1
        kept = persist.quarantine(self.store, env)
        log.warning(
            "envelope %s did not open (%s): %s",
            env.eid.hex(),
            code,
            "quarantined" if kept else "dropped, the quarantine is full",
        )

    def _group_control(self, sender: str, device: int, payload: GroupControl | GroupNote) -> None:
        """Hand a pairwise group control to its group (in the caller's transaction)."""
        peer = self.peer_identity(sender)
        if peer is None:
            return
        if isinstance(payload, GroupNote) and payload.reply_mailbox is not None:
            contact = Contact(payload.reply_mailbox, payload.reply_token)
            if persist.load_contact(self.store, sender, device) != contact:
                persist.save_contact(self.store, sender, device, contact)
        if self.groups.receive(sender, device, payload, peer.sig).changed:
            self._groups_changed = True

    def _open_group(
        self, env: Envelope, wrapped: groupnet.GroupEnvelope, *, retry: bool
    ) -> StoredMessage | None:
        """Unwrap and decrypt a group message; quarantine it while its transport key or
        its sender's chain has not come; drop it if its sender is not a member device of
        the sender's domain."""
        try:
            ng, message = self.groups.open(wrapped)
        except groupnet.GroupPending:
            if not retry:
                self._quarantine(env, "group.pending")
            return None
        persist.release(self.store, env.eid)
        self.groups.save(ng)  # the receiving chain moved on
        assert ng.group is not None  # noqa: S101 - open() answers joined groups only
        view = ng.group.state.view
        if view.device_fingerprint(message.sender, message.device) is None:
            return None
        if message.sender.rpartition("@")[2].lower() != env.origin.lower():
            log.warning("group envelope %s: a sender of another domain", env.eid.hex())
            return None
        try:
            content = unpack(message.plaintext)
        except BadContent:
            return None
        self._remember_contact(message.sender, message.device, content)
        self.groups.mark_message(env.eid, ng.group_id)
        msg = _stored(env, message.sender, message.device, content, now_ms(self.clock))
        self.inbox.put(msg)
        return msg

    def _want_domain(self, domain: str) -> None:
        """Ask the domains loop for ``domain``'s keys (at most once per
        ``DOMAIN_RETRY_MS`` per domain, so a peer that has none is not asked in a loop)."""
        domain = domain.lower()
        now = now_ms(self.clock)
        if domain == self.domain.lower() or self.keyring.document(domain) is not None:
            return
        if now - self._domain_asked.get(domain, -DOMAIN_RETRY_MS) < DOMAIN_RETRY_MS:
            return
        self._domain_asked[domain] = now
        self._missing_domains.add(domain)
        self._domains_wanted.set()

    def retry_quarantined(self) -> list[StoredMessage]:
        """Try the quarantined envelopes again; the messages that opened now.

        A pass that opened a group control (a sender-key distribution, a transport key) may
        have unlocked a group message tried earlier in the same pass, so another pass
        follows while controls keep changing the groups (each such pass releases at least
        one envelope from the quarantine, so this ends)."""
        opened = []
        for _ in range(MAX_RETRY_PASSES):
            self._groups_changed = False
            for env in persist.quarantined(self.store):
                with self.store.transaction():
                    msg = self._open(env, retry=True)
                if msg is not None:
                    opened.append(msg)
            if not self._groups_changed:
                break
        if opened:
            self._changed()
        return opened

    def _remember_contact(self, address: str, device: int, content: Content) -> None:
        if content.reply_mailbox is None:
            return
        contact = Contact(content.reply_mailbox, content.reply_token)
        if persist.load_contact(self.store, address, device) != contact:
            persist.save_contact(self.store, address, device, contact)

    async def _download(self, key: bytes) -> None:
        """Download the attachments of message ``key`` unless already settled (one
        download at a time, so the same blob is never fetched and saved twice)."""
        async with self._download_lock:
            msg = self.inbox.get(key)
            if msg is None or msg.settled:
                return
            updated = await download_all(msg, self.info.node_url, self.save_dir, self.domain)
            if updated != msg and self.inbox.get(key) is not None:
                self.inbox.put(updated)
                self._changed()

    async def _fetch_pending_attachments(self) -> None:
        for msg in self.inbox.messages():
            if not msg.settled:
                await self._download(message_key(msg))

    def _changed(self) -> None:
        self.changed.set()
        self.changed = trio.Event()

    # --- groups ---------------------------------------------------------------------

    async def group_create(self, name: str, members: Sequence[str] = ()) -> bytes:
        """A new group with this device as admin and ``members``; its id. Returns once the
        node took the welcomes."""
        group_id, eids = await groupnet.create(self, name, members)
        await self.pump.wait(eids)
        return group_id

    async def group_change(
        self, group_id: bytes, add: Sequence[str] = (), remove: Sequence[str] = ()
    ) -> dict[bytes, Refused]:
        """Add and remove members (this device must be an admin); the refused envelopes."""
        return await self.pump.wait(await groupnet.change(self, group_id, add, remove))

    async def group_send(
        self,
        group_id: bytes,
        text: str,
        files: Sequence[Path] = (),
        expire: int | None = None,
    ) -> groupnet.GroupSendResult:
        """Send to every other member device: encrypted once, one upload per domain."""
        return await groupnet.send(self, group_id, text, files, expire)

    def message_group(self, msg: StoredMessage) -> bytes | None:
        """The group id of a received group message (``None`` for a one-to-one one)."""
        return self.groups.message_group(msg.eid)

    # --- disappearing messages --------------------------------------------------------

    def purge_expired(self) -> list[StoredMessage]:
        """Delete disappeared messages and the files saved for them (each only while it is
        still the file the client wrote: ``client.savedfiles.remove_saved``)."""
        gone = self.inbox.purge_expired(now_ms(self.clock))
        for msg in gone:
            for att in msg.attachments:
                remove_saved(att)
        if gone:
            self._changed()
        return gone

    def purge_received_ids(self) -> None:
        """Forget the seen envelope ids and the quarantined envelopes past their expiry
        (the node no longer delivers those envelopes), so neither grows forever."""
        now = now_ms(self.clock)
        persist.purge_seen(self.store, now)
        persist.purge_quarantine(self.store, now)

    async def _purge_loop(self) -> None:
        next_ids_purge = 0
        while True:
            self.purge_expired()
            if now_ms(self.clock) >= next_ids_purge:
                self.purge_received_ids()
                next_ids_purge = now_ms(self.clock) + PURGE_IDS_EVERY_MS
            nxt = self.inbox.next_expiry()
            delay = 60.0 if nxt is None else max(0.0, (nxt - now_ms(self.clock)) / 1000)
            with trio.move_on_after(min(delay, 60.0)):
                await self.changed.wait()

    # --- safety numbers ---------------------------------------------------------------

    def peer_identity(self, address: str) -> IdentityKey | None:
        trust = self.device.trust.get(address)
        return None if trust is None else decode(trust.identity, IdentityKey)

    def safety_number(self, address: str) -> str | None:
        """The safety number with ``address`` (``None`` before any session with it)."""
        peer = self.peer_identity(address)
        if peer is None:
            return None
        return safety_number(self.device.identity.public, self.device.address, peer, address)

    def accept_identity(self, address: str) -> None:
        self.device.accept_identity(address)
        with self.store.transaction():
            for addr, dev in list(self.device.sessions):
                if addr == address:
                    persist.save_peer(self.store, self.device, addr, dev)
            if not any(addr == address for addr, _ in self.device.sessions):
                persist.save_device(self.store, self.device)


def _stored(env: Envelope, sender: str, device: int, content: Content, now: int) -> StoredMessage:
    expire = content.expire
    return StoredMessage(
        eid=env.eid,
        sender=sender,
        device=device,
        text=content.text,
        sent=content.sent,
        received=now,
        expire=expire,
        expires_at=None if expire is None else now + expire * 1000,
        attachments=tuple(pending_attachment(p) for p in content.attachments),
        shown=False,
    )
