"""The async group flows (docs/groups.md section 8): create a group, change its members,
send to it. :class:`GroupNet` runs them over the send path it is given
(``client.sendpath.SendPath``); what each flow sends to whom is decided by the pure
functions here (:func:`by_address`, :func:`change_plan`), testable without a network.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from client import persist
from client.attachments_io import upload_file
from client.clock import Clock, now_ms
from client.content import Content, GroupKey, GroupNote, pack
from client.entropy import Entropy
from client.errors import ClientError, Refused, UntrustedIdentity
from client.groupnet.book import GroupBook, GroupUnavailable
from client.groupnet.tokenflow import TokenFlow, registered_token
from client.groupnet.transport import NONCE_LEN, NetGroup, uploads, wrap
from client.groups import Group, GroupControl, member_of, pack_control
from client.groups.state import MAX_RECORD_SIZE
from client.outbox import AnyItem, Request
from client.peers import peer_identity
from client.records import AccountInfo
from client.sendpath import Pairwise, SendPath, domain_of
from client.session import Device
from client.store.base import StateStore
from wire import decode, encode
from wire.group import GroupMember, OpAdd, OpRemove

log = logging.getLogger(__name__)

Recipients = dict[str, list[tuple[bytes, bytes | None]]]
"""Per destination domain, the ``(mailbox, token)`` of member devices."""


@dataclass(frozen=True)
class GroupSendResult:
    """The uploads of one group message (one per destination domain, or more past 256
    recipients), the refused ones, and per-recipient refusals of the stored ones."""

    group: bytes
    eids: tuple[bytes, ...]
    failed: dict[bytes, Refused]
    partial: dict[bytes, tuple[str, ...]]


def note_for(
    info: AccountInfo, control: bytes, key: GroupKey | None, token: bytes | None = None
) -> bytes:
    """The pairwise plaintext of a group control (``pack_control``'s output) with the
    transport ``key`` and this account's reply details from ``info``; ``token``, this
    device's registered group token for the group, replaces the account token (so group
    traffic hands out only tokens that a removal rotates)."""
    return encode(
        GroupNote(
            control=decode(control, GroupControl, max_size=MAX_RECORD_SIZE),
            key=key,
            reply_token=token or info.delivery_token,
            reply_mailbox=info.mailbox,
        )
    )


def by_address(devices: Sequence[tuple[str, int]], skip: tuple[str, int]) -> dict[str, list[int]]:
    """``devices`` grouped by address, without ``skip`` (this device)."""
    found: dict[str, list[int]] = {}
    for address, dev in devices:
        if (address, dev) != skip:
            found.setdefault(address, []).append(dev)
    return found


def to_all(
    devices: Sequence[tuple[str, int]], me: tuple[str, int], plaintext: bytes
) -> list[Pairwise]:
    """``plaintext`` to every device of ``devices`` but ``me``."""
    return [
        Pairwise(address, plaintext, frozenset(devs))
        for address, devs in by_address(devices, me).items()
    ]


def change_plan(
    before: set[tuple[str, int]],
    after: set[tuple[str, int]],
    me: tuple[str, int],
    notes: Sequence[tuple[bytes, bytes]],
    welcome: bytes,
) -> list[Pairwise]:
    """What a membership change sends: each change to every member device before it, the
    last one with the new transport key to the devices that stay only, and the ``welcome``
    (with the key) to the new ones. ``notes`` holds each change's plaintext without the key
    and with it."""
    plan = []
    for address, devs in by_address(sorted(before), me).items():
        for i, (plain, keyed) in enumerate(notes):
            last = i == len(notes) - 1
            note = keyed if last and (address, devs[0]) in after else plain
            plan.append(Pairwise(address, note, frozenset(devs)))
    return plan + to_all(sorted(after - before), me, welcome)


class HasAccount(Protocol):
    """Anything that holds this account's record (a ``Client``)."""

    @property
    def info(self) -> AccountInfo: ...


def note_bytes(owner: HasAccount, control: bytes, key: GroupKey | None) -> bytes:
    """The pairwise plaintext of a group control, with ``owner``'s reply details."""
    return note_for(owner.info, control, key)


class GroupNet:
    """The group flows of one device: its groups (``book``), sent over ``sendpath``."""

    def __init__(
        self,
        book: GroupBook,
        sendpath: SendPath,
        *,
        store: StateStore,
        device: Device,
        account: HasAccount,
        request: Request,
        entropy: Entropy,
        clock: Clock,
    ) -> None:
        self.book = book
        self._send = sendpath
        self._store = store
        self._device = device
        self._account = account
        self._request = request
        self._entropy = entropy
        self._clock = clock
        self.tokens = TokenFlow(
            book, sendpath, store=store, me=self._me, account=account, request=request,
            entropy=entropy,
        )  # fmt: skip

    @property
    def _me(self) -> tuple[str, int]:
        return self._device.address, self._device.device_id

    async def run_tokens(self) -> None:
        """The group token work of this device, while online (``tokenflow``)."""
        await self.tokens.run()

    async def _tokens_now(self, ng: NetGroup) -> None:
        await self.tokens.now(ng)

    def _reply_token(self, ng: NetGroup | None) -> bytes | None:
        """What group traffic hands out as this device's token: its registered group
        token for ``ng`` (a removal rotates it), else the account token."""
        token = None if ng is None else registered_token(ng)
        return token or self._account.info.delivery_token

    def note_bytes(self, control: bytes, key: GroupKey | None, ng: NetGroup | None = None) -> bytes:
        """:func:`note_for` with this account's current record (and ``ng``'s group token
        once registered)."""
        return note_for(self._account.info, control, key, self._reply_token(ng))

    async def send_pairwise(self, ng: NetGroup, plan: Sequence[Pairwise]) -> list[bytes]:
        """Queue ``plan`` and save ``ng`` in the same transaction; the envelope ids."""
        return await self._send.pairwise(plan, also=lambda: self.book.save(ng))

    async def _members(self, addresses: Sequence[str]) -> list[GroupMember]:
        """Group member entries of ``addresses``: their devices with sessions here, named
        by the fingerprint of the identity their pairwise sessions verified."""
        suite = self._device.suite
        for address in addresses:
            if self._device.identity_changed(address):
                raise UntrustedIdentity(address)
        every = await self._send.all_targets(addresses)
        found = []
        for address in addresses:
            targets = every[address]
            peer = peer_identity(self._device, address)
            if peer is None or not targets:
                raise ClientError(f"no device of {address} could be reached")
            found.append(member_of(suite, address, {dev: peer.sig for dev in targets}))
        return found

    async def create(self, name: str, addresses: Sequence[str]) -> tuple[bytes, list[bytes]]:
        """A new group with ``addresses``; the group id and the envelope ids of the
        welcomes."""
        dev = self._device
        others = tuple(await self._members(addresses))
        group, _ = Group.create(
            dev.identity, dev.address, dev.device_id, name, others, self._entropy
        )
        ng = NetGroup(group.state.group_id, group)
        await self._tokens_now(ng)  # registered before the welcomes carry the token
        key = self.book.new_key(ng)
        welcome = self.note_bytes(pack_control(ng.group_id, group.welcome()), key, ng)
        plan = to_all(ng.member_devices(), self._me, welcome)
        return ng.group_id, await self.send_pairwise(ng, plan)

    def _joined(self, group_id: bytes) -> tuple[NetGroup, Group]:
        ng = self.book.get(group_id)
        if ng is None or ng.group is None:
            raise GroupUnavailable(f"no group {group_id.hex()} here")
        if not ng.group.is_member:
            raise GroupUnavailable("this device is no longer a member of the group")
        return ng, ng.group

    async def change(
        self, group_id: bytes, add: Sequence[str] = (), remove: Sequence[str] = ()
    ) -> list[bytes]:
        """Add and remove members (one signed change each); send the changes to every
        member device before and after, a welcome to the new ones, the new transport key to
        the members of the resulting state only."""
        ng, group = self._joined(group_id)
        before = set(ng.member_devices())
        changes = [group.propose(OpAdd(member=m))[0] for m in await self._members(add)]
        for address in remove:
            data, result = group.propose(OpRemove(address=address))
            changes.append(data)
            if result.removed:
                self.book.removed(ng)
        key = self.book.new_key(ng)
        after = set(ng.member_devices())
        controls = [pack_control(group_id, data) for data in changes]
        notes = [(self.note_bytes(c, None, ng), self.note_bytes(c, key, ng)) for c in controls]
        welcome = self.note_bytes(pack_control(group_id, group.welcome()), key, ng)
        plan = change_plan(before, after, self._me, notes, welcome)
        return await self.send_pairwise(ng, plan)

    async def send(
        self,
        group_id: bytes,
        text: str,
        files: Sequence[Path] = (),
        expire: int | None = None,
        ttl: int = 0,
    ) -> GroupSendResult:
        """Encrypt once, upload once per destination domain; wait for the node's answers."""
        ng, group = self._joined(group_id)
        await self._tokens_now(ng)
        await self._distribute(ng, group)
        info = self._account.info
        pointers = [
            await upload_file(self._request, info.node_url, path, self._entropy) for path in files
        ]
        content = Content(
            text=text,
            sent=now_ms(self._clock),
            reply_token=self._reply_token(ng),
            reply_mailbox=info.mailbox,
            expire=expire,
            attachments=tuple(pointers),
        )
        recipients = await self._recipients(ng)
        docs = await self._send.documents(recipients)

        def items() -> list[AnyItem]:
            body = wrap(
                group.state.suite.suite_id,
                self.book.sending_key(ng),
                group.encrypt(pack(content)),
                self._entropy.random_bytes(NONCE_LEN),
            )
            now = now_ms(self._clock)
            return list(uploads(self._send.home, recipients, docs, body, ttl, now, self._entropy))

        eids = self._send.write_items(items, also=lambda: self.book.save(ng))
        self._send.wake()
        failed = await self._send.wait(eids)
        return GroupSendResult(group_id, tuple(eids), failed, self._send.partial(eids))

    async def _distribute(self, ng: NetGroup, group: Group) -> None:
        """Rotate after a removal; send this device's chain to member devices without it."""
        if group.needs_rotation:
            group.rotate(self._entropy)
            ng.distributed.clear()
        missing = [m for m in ng.member_devices() if m != self._me and m not in ng.distributed]
        if not missing:
            return
        note = self.note_bytes(pack_control(ng.group_id, group.distribution()), None, ng)
        ng.distributed.update(missing)
        await self.send_pairwise(ng, to_all(missing, self._me, note))

    async def _recipients(self, ng: NetGroup) -> Recipients:
        """Per destination domain, the ``(mailbox, token)`` of every other member device."""
        contacts = persist.contacts(self._store)
        found: Recipients = {}
        for address, dev in ng.member_devices():
            if (address, dev) == self._me:
                continue
            entry = ng.tokens.members.get((address, dev))
            if entry is not None:  # the group token the member registered
                found.setdefault(domain_of(address), []).append((entry.mailbox, entry.token))
                continue
            contact = contacts.get((address, dev))
            if contact is None:
                contact = (await self._send.targets(address)).get(dev)
                if contact is None:
                    log.warning("group %s: no mailbox known for a member device", ng.group_id.hex())
                    continue
            found.setdefault(domain_of(address), []).append(
                (contact.mailbox, contact.delivery_token)
            )
        return found


class HasGroupNet(Protocol):
    """Anything that runs group flows (a ``Client``)."""

    @property
    def group_net(self) -> GroupNet: ...


async def send_pairwise(
    owner: HasGroupNet, ng: NetGroup, plan: Sequence[tuple[str, Sequence[int], bytes]]
) -> list[bytes]:
    """Queue pairwise ``(address, devices, plaintext)`` messages over ``owner``'s send path
    and save ``ng`` in the same transaction; the envelope ids."""
    messages = [Pairwise(a, plaintext, frozenset(devices)) for a, devices, plaintext in plan]
    return await owner.group_net.send_pairwise(ng, messages)
