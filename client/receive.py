"""Receiving: the envelopes the node pushes, opened and saved in the inbox.

Receiving de-duplicates by envelope id, decrypts, and saves the message, the seen id and
the session in one transaction before acknowledging; attachments are then downloaded and
verified. An envelope that can never open (it does not decrypt, its content does not
decode, it lies about its sender) is acked and dropped; one that failed for a reason that
may pass (a sender certificate expired or unknown, a server key not pinned: any other
``ClientError``) is acked too, but kept in the store's quarantine (``NS_QUARANTINE``,
counted in :attr:`Receiver.quarantine_count` and logged) and tried again each time the
client goes online, until it opens, proves unopenable or expires.

A pairwise plaintext that is a group control goes to the group (never to the inbox), and a
group envelope is unwrapped, decrypted with the sender's chain and saved in the inbox like
a message, with its group id beside it (``client.groupnet``). A pairwise plaintext that is a
call signal (``client.content.CallNote``) goes to the calls (:class:`CallSink`, the client's
``client.calls.callnet.CallNet``), with the sender's reply details kept as a contact; a
meeting note (``client.content.MeetingNote``) likewise to the meetings (:class:`MeetingSink`,
``client.meetings.net.MeetingInbox``), with the sender's identity signing key, and so does
a meeting's sealed roster (``wire.meeting.SealedRoster``, one upload for all participants).
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Final, Protocol

import trio

from client import groupnet, persist
from client.account import Account
from client.attachments_io import download_all, pending_attachment
from client.clock import Clock, now_ms
from client.content import CallNote, Content, GroupNote, MeetingNote, unpack, unpack_pairwise
from client.domains import DomainKeys
from client.errors import BadContent, ClientError, DecryptionFailed, NetworkError, SuiteMismatch
from client.groups import GroupControl
from client.inbox import Inbox, StoredMessage, message_key
from client.meetings.roster import parse_sealed
from client.net import Link
from client.peers import peer_identity, remember_contact
from client.session import Device
from client.store.base import StateStore
from wire.group import GroupTokens
from wire.meeting import SealedRoster
from wire.relay import Ack, Deliver, Drained, Envelope

MAX_RETRY_PASSES: Final = 16
"""Most passes over the quarantine in one :meth:`Receiver.retry_quarantined`."""
NEVER_OPENS: Final = (DecryptionFailed, BadContent, SuiteMismatch)
"""Errors of an envelope that cannot open later either: it is dropped, not quarantined."""

log = logging.getLogger(__name__)


class CallSink(Protocol):
    """Where an opened call note goes (``client.calls.callnet.CallNet``)."""

    def call_note(self, sender: str, note: CallNote) -> None: ...


class MeetingSink(Protocol):
    """Where an opened meeting note goes (``client.meetings.net.MeetingInbox``); ``key`` is
    the identity signing key of the session it came over. A meeting's sealed roster (one
    shared upload for every participant, no sender) goes to ``meeting_shared``."""

    def meeting_note(self, sender: str, device: int, key: bytes, note: MeetingNote) -> None: ...

    def meeting_shared(self, sealed: SealedRoster) -> None: ...


class ChangeSignal:
    """An event set (and replaced) whenever a message was saved, updated or purged."""

    def __init__(self) -> None:
        self.event = trio.Event()

    def fire(self) -> None:
        self.event.set()
        self.event = trio.Event()


class Receiver:
    """Opens pushed envelopes into the inbox (see the module)."""

    def __init__(
        self,
        store: StateStore,
        device: Device,
        *,
        inbox: Inbox,
        groups: groupnet.GroupBook,
        domains: DomainKeys,
        account: Account,
        changed: ChangeSignal,
        save_dir: Path,
        clock: Clock,
        calls: CallSink | None = None,
        meetings: MeetingSink | None = None,
    ) -> None:
        self._store = store
        self._calls = calls
        self.meetings = meetings
        """Where meeting notes go (``client meet`` sets it while it runs; None: dropped)."""
        self._device = device
        self._inbox = inbox
        self._groups = groups
        self._domains = domains
        self._account = account
        self._changed = changed
        self._save_dir = save_dir
        self._clock = clock
        self._download_lock = trio.Lock()
        self._groups_changed = False
        self.drained = trio.Event()
        """Set once the node said the mailbox is empty (``Drained``)."""
        self.quarantine_count = 0
        """Envelopes that did not open for a reason that may pass since this receiver was
        created (quarantined, or dropped because the quarantine was full)."""

    async def run(self, link: Link) -> None:
        """Handle ``link``'s pushes, forever."""
        async for push in link.pushes:
            if isinstance(push, Drained):
                self.drained.set()
            elif isinstance(push, Deliver):
                await self.deliver(push, link)

    async def deliver(self, push: Deliver, link: Link) -> None:
        await self._domains.fetch_missing(env.origin for env in push.envelopes)
        saved = [msg for env in push.envelopes if (msg := self._accept(env)) is not None]
        eids = tuple(env.eid for env in push.envelopes)
        # Fire and forget (id 0: the node answers nothing), so this task never waits for
        # a response that may sit behind more pushes. Unacked: pushed again after
        # reconnecting, and acked then.
        with contextlib.suppress(NetworkError):
            await link.send_only(Ack(id=0, eids=eids))
        if self._groups_changed:  # a key or chain came: group envelopes may open now
            self._groups_changed = False
            saved += self.retry_quarantined()
        if saved:
            self._changed.fire()
        for msg in saved:
            if msg.attachments:
                await self.download(message_key(msg))

    def _accept(self, env: Envelope) -> StoredMessage | None:
        """Decrypt and save ``env`` (one transaction); ``None`` for a duplicate or an
        envelope that did not open (dropped, or quarantined: see the module)."""
        with self._store.transaction():
            if not persist.mark_seen(self._store, env.eid, env.expires):
                return None
            return self._open(env, retry=False)

    def _open(self, env: Envelope, *, retry: bool) -> StoredMessage | None:
        """Decrypt and save ``env`` (in the caller's transaction); quarantine it if it failed
        for a reason that may pass."""
        wrapped = groupnet.parse(env.body)
        if wrapped is not None:
            return self._open_group(env, wrapped, retry=retry)
        sealed = parse_sealed(env.body)
        if sealed is not None:  # a meeting's roster, one upload for all its participants
            persist.release(self._store, env.eid)
            if self.meetings is not None:
                self.meetings.meeting_shared(sealed)
            return None
        try:
            received = self._device.decrypt(env.body, sent_ms=env.ts)
            payload = unpack_pairwise(received.plaintext)
        except NEVER_OPENS:
            persist.release(self._store, env.eid)
            return None
        except ClientError as exc:
            if not retry:
                self._domains.want(env.origin)
                self._quarantine(env, exc.code)
            return None
        persist.release(self._store, env.eid)
        if env.sender is not None and env.sender != received.sender:
            return None  # an introduction whose sealed sender is someone else
        if received.sender.rpartition("@")[2].lower() != env.origin.lower():
            log.warning("envelope %s: a sender of another domain than its origin", env.eid.hex())
            return None  # a domain may only carry its own users' messages
        persist.save_peer(self._store, self._device, received.sender, received.device)
        if isinstance(payload, CallNote):
            self._call_note(received.sender, received.device, payload)
            return None
        if isinstance(payload, MeetingNote):
            self._meeting_note(received.sender, received.device, payload)
            return None
        if not isinstance(payload, Content):
            self._group_control(received.sender, received.device, payload)
            return None
        return self._save(env, received.sender, received.device, payload)

    def _save(self, env: Envelope, sender: str, device: int, content: Content) -> StoredMessage:
        """Keep ``content``'s reply details and put the message in the inbox."""
        remember_contact(self._store, sender, device, content.reply_mailbox, content.reply_token)
        msg = stored(env, sender, device, content, now_ms(self._clock))
        self._inbox.put(msg)
        return msg

    def _quarantine(self, env: Envelope, code: str) -> None:
        self.quarantine_count += 1
        kept = persist.quarantine(self._store, env)
        log.warning(
            "envelope %s did not open (%s): %s",
            env.eid.hex(),
            code,
            "quarantined" if kept else "dropped, the quarantine is full",
        )

    def _call_note(self, sender: str, device: int, note: CallNote) -> None:
        """Keep a call note's reply details and hand it to the calls (in the caller's
        transaction); without a call sink it is dropped."""
        remember_contact(self._store, sender, device, note.reply_mailbox, note.reply_token)
        if self._calls is not None:
            self._calls.call_note(sender, note)

    def _meeting_note(self, sender: str, device: int, note: MeetingNote) -> None:
        """Keep a meeting note's reply details and hand it to the meetings with the
        sender's identity signing key (in the caller's transaction)."""
        remember_contact(self._store, sender, device, note.reply_mailbox, note.reply_token)
        peer = peer_identity(self._device, sender)
        if self.meetings is not None and peer is not None:
            self.meetings.meeting_note(sender, device, peer.sig, note)

    def _group_control(
        self, sender: str, device: int, payload: GroupControl | GroupNote | GroupTokens
    ) -> None:
        """Hand a pairwise group control (or group tokens) to its group (in the caller's
        transaction)."""
        peer = peer_identity(self._device, sender)
        if peer is None:
            return
        if isinstance(payload, GroupTokens):
            self._groups.receive_tokens(sender, device, payload, peer.sig)
            return
        if isinstance(payload, GroupNote):
            remember_contact(
                self._store, sender, device, payload.reply_mailbox, payload.reply_token
            )
        if self._groups.receive(sender, device, payload, peer.sig).changed:
            self._groups_changed = True

    def _open_group(
        self, env: Envelope, wrapped: groupnet.GroupEnvelope, *, retry: bool
    ) -> StoredMessage | None:
        """Unwrap and decrypt a group message; quarantine it while its transport key or
        its sender's chain has not come; drop it if its sender is not a member device of
        the sender's domain."""
        try:
            ng, message = self._groups.open(wrapped)
        except groupnet.GroupPending:
            if not retry:
                self._quarantine(env, "group.pending")
            return None
        persist.release(self._store, env.eid)
        self._groups.save(ng)  # the receiving chain moved on
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
        self._groups.mark_message(env.eid, ng.group_id)
        return self._save(env, message.sender, message.device, content)

    def retry_quarantined(self) -> list[StoredMessage]:
        """Try the quarantined envelopes again; the messages that opened now.

        A pass that opened a group control (a sender-key distribution, a transport key) may
        have unlocked a group message tried earlier in the same pass, so another pass
        follows while controls keep changing the groups (each such pass releases at least
        one envelope from the quarantine, so this ends)."""
        opened = []
        for _ in range(MAX_RETRY_PASSES):
            self._groups_changed = False
            for env in persist.quarantined(self._store):
                with self._store.transaction():
                    msg = self._open(env, retry=True)
                if msg is not None:
                    opened.append(msg)
            if not self._groups_changed:
                break
        if opened:
            self._changed.fire()
        return opened

    async def download(self, key: bytes) -> None:
        """Download the attachments of message ``key`` unless already settled (one
        download at a time, so the same blob is never fetched and saved twice)."""
        async with self._download_lock:
            msg = self._inbox.get(key)
            if msg is None or msg.settled:
                return
            home = self._domains.home
            node_url = self._account.info.node_url
            updated = await download_all(msg, node_url, self._save_dir, home)
            if updated != msg and self._inbox.get(key) is not None:
                self._inbox.put(updated)
                self._changed.fire()

    async def fetch_pending_attachments(self) -> None:
        for msg in self._inbox.messages():
            if not msg.settled:
                await self.download(message_key(msg))


def stored(env: Envelope, sender: str, device: int, content: Content, now: int) -> StoredMessage:
    """The inbox record of ``content``, received at ``now`` (ms) in ``env``."""
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
