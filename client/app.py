"""The high-level client: one enrolled device talking to its home node.

    client = Client.load(store, save_dir=...)           after ``client.enroll.enroll``
    async with client.online():                          link, outbox pump, deliveries
        failures = await client.send(to, text, files, expire)
        await client.drained.wait()
        client.inbox.unshown()
    client.safety_number(address)

:class:`Client` is the facade; each responsibility is an object it owns and wires together
through constructors (none of them knows the ``Client``):

- ``client.sendpath.SendPath``: sending encrypts once per device of the recipient
  (fetching prekeys and starting sessions where there are none), writes each envelope to
  the durable outbox in the same transaction as the ratchet state, then wakes the pump;
  :meth:`Client.send` waits until the node acknowledged every one;
- ``client.receive.Receiver``: receiving, the quarantine, attachment downloads;
- ``client.domains.DomainKeys``: the pinned key documents of home and other domains;
- ``client.upkeep.Upkeep``: on every connection the client replenishes its one-time
  prekeys when the node runs low and renews its sender certificate before it expires;
- ``client.drafts.DraftSender``: messages written while offline, composed on connecting;
- ``client.groupnet.GroupNet``: groups (docs/groups.md section 8), over the same send path;
- ``client.calls.callnet.CallNet``: call signalling (issue 17) over the same send path; the
  receiver hands it every call note, and while online it rings on offers and keeps the
  calls' timers;
- ``client.calls.legs.LegRequests``: call legs on the home node and their media (QUIC, or
  the WebSocket fallback), :meth:`Client.leg_allocate` and the methods after it.

While online the client also purges disappearing messages when their timer runs out, and
hourly the ids of received envelopes (and quarantined ones) past their expiry.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import trio

from client import domaintrust, persist
from client.account import Account
from client.attachments_io import upload_file
from client.calls.callnet import CallNet
from client.calls.legs import LegRequests
from client.calls.signal_events import CallConfig
from client.calls.signal_registry import CallRegistry
from client.calls.ws_media import WebSocketMedia
from client.clock import Clock, now_ms
from client.content import Content, pack
from client.domains import DomainKeys
from client.drafts import Draft, Drafts, DraftSender
from client.entropy import SYSTEM_ENTROPY, Entropy
from client.errors import ClientError, NetworkError, NoAccount, Refused
from client.groupnet import GroupBook, GroupNet, GroupSendResult
from client.inbox import Inbox, StoredMessage
from client.net import AuthLogin, Connection, Link
from client.outbox import Outbox, OutboxPump
from client.peers import peer_identity
from client.receive import ChangeSignal, Receiver
from client.records import AccountInfo
from client.safety import safety_number
from client.savedfiles import remove_saved
from client.sendpath import EID_LEN, SendPath
from client.serverkeys import PinnedKeyring
from client.session import Device
from client.store.base import StateStore
from client.upkeep import Upkeep
from client.websocket import SEALED_PATH, Connector, websocket_connector
from transport import QuicChannel
from wire import decode
from wire.calls import LegRef
from wire.e2e import IdentityKey
from wire.relay import MAX_BATCH, Authenticated, LegEnded, LegGrant, Registered
from wire.server import ServerKeyDocument

PURGE_IDS_EVERY_MS: Final = 3_600_000
"""How often the purge loop forgets expired seen ids and quarantined envelopes."""
CONNECT_TIMEOUT: Final = 30.0


@dataclass(frozen=True)
class SendResult:
    """The envelopes of one message (one per recipient device) and the refused ones."""

    eids: tuple[bytes, ...]
    failed: dict[bytes, Refused]


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
        clock: Clock = time.time,
        connector: Connector | None = None,
        sealed_connector: Connector | None = None,
        call_config: CallConfig | None = None,
    ) -> None:
        self.store = store
        self.device = device
        self.save_dir = save_dir
        self.entropy = entropy
        self.clock = clock
        self.account = Account(store, info)
        self.inbox = Inbox(store)
        self.outbox = Outbox(store)
        self.drafts = Drafts(store)
        self.link = Link(
            connector or websocket_connector(info.node_url),
            AuthLogin(device.identity, device.address, device.device_id),
            self._on_connect,
            expect_server=self.domain,
        )
        # Sealed envelopes leave over a second, anonymous connection (issue 20): the home
        # node cannot tie them to this account. It opens when first needed.
        self.sealed_link = Link(
            sealed_connector or connector or websocket_connector(info.node_url, SEALED_PATH),
            None,
            None,
            expect_server=self.domain,
        )
        self.pump = OutboxPump(
            self.outbox, self.link.request, batch=MAX_BATCH, sealed=self.sealed_link.request
        )
        self.domains = DomainKeys(
            store, self.keyring, self.account, self.link.request, clock, self.domain
        )
        self.sendpath = SendPath(
            store,
            device,
            outbox=self.outbox,
            pump=self.pump,
            request=self.link.request,
            documents=self.domains,
            entropy=entropy,
            clock=clock,
        )
        self.draft_sender = DraftSender(store, self.drafts, self.sendpath, self.account)
        self.groups = GroupBook(store, device, entropy)
        self.group_net = GroupNet(
            self.groups,
            self.sendpath,
            store=store,
            device=device,
            account=self.account,
            request=self.link.request,
            entropy=entropy,
            clock=clock,
        )
        self.calls = CallNet(
            CallRegistry(entropy.random_bytes, call_config),
            self.sendpath,
            identity_changed=device.identity_changed,
            reply=lambda: (self.info.delivery_token, self.info.mailbox),
            clock=clock,
        )
        self._changed = ChangeSignal()
        self.receiver = Receiver(
            store,
            device,
            inbox=self.inbox,
            groups=self.groups,
            domains=self.domains,
            account=self.account,
            changed=self._changed,
            save_dir=save_dir,
            clock=clock,
            calls=self.calls,
        )
        self.upkeep = Upkeep(
            store, device, self.keyring, home=self.domain, entropy=entropy, clock=clock
        )
        self.legs = LegRequests(self.link, info.node_url, self._home_document)
        self._nursery: trio.Nursery | None = None

    @classmethod
    def load(
        cls,
        store: StateStore,
        *,
        save_dir: Path,
        entropy: Entropy = SYSTEM_ENTROPY,
        clock: Clock = time.time,
        connector: Connector | None = None,
        sealed_connector: Connector | None = None,
        call_config: CallConfig | None = None,
    ) -> Client:
        """The client saved in ``store``; :class:`NoAccount` before enrollment.
        ``call_config``: the calls' timeouts (the protocol's defaults if not given)."""
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
            sealed_connector=sealed_connector,
            call_config=call_config,
        )

    # --- state the facade shows -------------------------------------------------------

    @property
    def info(self) -> AccountInfo:
        """This account's record (node URL, home key document, mailbox, token)."""
        return self.account.info

    @property
    def keyring(self) -> PinnedKeyring:
        keyring = self.device.keyring
        assert isinstance(keyring, PinnedKeyring)  # noqa: S101 - set by load/enroll
        return keyring

    @property
    def domain(self) -> str:
        return self.device.address.rpartition("@")[2]

    @property
    def drained(self) -> trio.Event:
        """Set once the node said the mailbox is empty."""
        return self.receiver.drained

    @property
    def changed(self) -> trio.Event:
        """Set (and replaced) whenever a message was saved or updated."""
        return self._changed.event

    @property
    def quarantine_count(self) -> int:
        """Envelopes that did not open for a reason that may pass since this client was
        created (quarantined, or dropped because the quarantine was full)."""
        return self.receiver.quarantine_count

    @property
    def drafts_sent(self) -> trio.Event:
        """Set once the drafts were looked at on a connection (see :meth:`send_drafts`)."""
        return self.draft_sender.sent

    @property
    def drafts_failed(self) -> list[tuple[Draft, ClientError]]:
        """The drafts refused for good, with the refusal."""
        return self.draft_sender.failed

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
                nursery.start_soon(self.sealed_link.run)
                nursery.start_soon(self.pump.run)
                nursery.start_soon(self.receiver.run, self.link)
                nursery.start_soon(self._purge_loop)
                nursery.start_soon(self.upkeep.run_renewals, self.link)
                nursery.start_soon(self.domains.run, self.retry_quarantined)
                await nursery.start(self.calls.run)
                self._nursery = nursery
                try:
                    yield self
                except Exception as exc:
                    error = exc
                finally:
                    self._nursery = None
            nursery.cancel_scope.cancel()
        if error is not None:
            raise error

    async def refresh_server_keys(self) -> None:
        """Fetch a fresh key document once half of the pinned one's life has passed;
        accept it only if a pinned key signed it."""
        await self.domains.refresh_home()

    async def domain_document(self, domain: str) -> ServerKeyDocument:
        """The key document of ``domain``, verified (``client.domains``)."""
        return await self.domains.document(domain)

    async def _on_connect(self, conn: Connection, response: Registered | Authenticated) -> None:
        self.account.with_mailbox(response.mailbox)
        await self.upkeep.replenish_prekeys(conn)
        await self.upkeep.renew_certificate(conn)
        await self.send_drafts()
        self.sendpath.wake()
        await self.receiver.fetch_pending_attachments()

    # --- sending ----------------------------------------------------------------------

    def check_recipient(self, to: str) -> None:
        """:class:`BadAddress` unless ``to`` is NAME@DOMAIN; :class:`SelfAddressed` for this
        account's own address (notes to self are not supported: refused, not lost)."""
        self.sendpath.check_recipient(to)

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
        eids = await self.sendpath.compose(to, pack(content), ttl)
        self.sendpath.wake()
        return SendResult(tuple(eids), await self.sendpath.wait(eids))

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
        await self.draft_sender.send_all()

    async def flush_queued(self) -> dict[bytes, Refused]:
        """Wait until the drafts were composed and every envelope now in the outbox was
        settled; the refused ones. Must run inside :meth:`online`."""
        await self.drafts_sent.wait()
        return await self.sendpath.wait([item.eid for item in self.outbox.pending()])

    # --- receiving --------------------------------------------------------------------

    def retry_quarantined(self) -> list[StoredMessage]:
        """Try the quarantined envelopes again; the messages that opened now
        (``client.receive``)."""
        return self.receiver.retry_quarantined()

    # --- groups ---------------------------------------------------------------------

    async def group_create(self, name: str, members: Sequence[str] = ()) -> bytes:
        """A new group with this device as admin and ``members``; its id. Returns once the
        node took the welcomes."""
        group_id, eids = await self.group_net.create(name, members)
        await self.sendpath.wait(eids)
        return group_id

    async def group_change(
        self, group_id: bytes, add: Sequence[str] = (), remove: Sequence[str] = ()
    ) -> dict[bytes, Refused]:
        """Add and remove members (this device must be an admin); the refused envelopes."""
        return await self.sendpath.wait(await self.group_net.change(group_id, add, remove))

    async def group_send(
        self,
        group_id: bytes,
        text: str,
        files: Sequence[Path] = (),
        expire: int | None = None,
    ) -> GroupSendResult:
        """Send to every other member device: encrypted once, one upload per domain."""
        return await self.group_net.send(group_id, text, files, expire)

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
            self._changed.fire()
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

    # --- call legs (client.calls.legs; must run inside online()) --------------------

    async def leg_allocate(self) -> LegGrant:
        """A leg on the home node for an incoming call (the callee's side)."""
        return await self.legs.allocate()

    async def leg_bridge(self, ref: LegRef) -> LegGrant:
        """A leg on the home node joined to the other party's leg ``ref``."""
        return await self.legs.bridge(ref)

    async def leg_hang_up(self, leg_id: bytes) -> None:
        """End this device's leg ``leg_id`` (and the leg bridged to it)."""
        await self.legs.hang_up(leg_id)

    async def leg_ended(self, leg_id: bytes) -> LegEnded:
        """Wait for the node's ``LegEnded`` push for ``leg_id``."""
        return await self.legs.wait_ended(leg_id)

    async def media_websocket(self, grant: LegGrant) -> tuple[WebSocketMedia, int]:
        """The leg's media over the connection to the node; (transport, sender id)."""
        return await self.legs.websocket(grant)

    async def media_quic(self, grant: LegGrant) -> tuple[QuicChannel, int]:
        """The leg's media over QUIC to the home node's media port; (transport, sender
        id). The connection lives until closed, or until :meth:`online` ends."""
        if self._nursery is None:
            raise NetworkError("not online")
        return await self.legs.quic(grant, self._nursery)

    async def _home_document(self, fresh: bool) -> ServerKeyDocument:
        if fresh:
            await self.domains.refresh_home(force=True)
        return await self.domain_document(self.domain)

    # --- safety numbers ---------------------------------------------------------------

    def peer_identity(self, address: str) -> IdentityKey | None:
        return peer_identity(self.device, address)

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
