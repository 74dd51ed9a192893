"""Group messaging over the network: the shell around ``client.groups`` (docs/groups.md
section 8).

:class:`GroupBook` is the synchronous part, run inside the client's store transactions:
the groups this device is in (``NS_GROUPS``), the group transport keys, the controls that
came too early, the pairwise dispatch of :class:`~client.groups.GroupControl` /
:class:`~client.content.GroupNote`, and the transport wrap of a sender-key message.

The wrap: a sender-key message names its group and chain in the clear, so before upload it
is sealed under the **group transport key** of the sender's current group state::

    GroupEnvelope{nonce, c = AES-256-GCM(transport key, nonce, SenderKeyMessage,
                                 aad = GROUP_TRANSPORT_AAD)}
    body = pad(encode(GroupEnvelope))            (the envelope buckets, DESIGN section 3)

A transport key is 32 random bytes chosen by the signer of a change for the state that
change leads to, and sent with the change (a :class:`~client.content.GroupNote`) over the
pairwise sessions to the member devices of that state only; a removed member gets the
change that removes it but not the key. A receiver accepts a key for state ``head`` only
from the device that signed change ``head``, and opens a group envelope by trying the
keys it holds (a few per group; AES-GCM authenticates, so a wrong key never opens). A
sender uses the key of its current state or, if it has not got it, of the newest state of
its chain after which no member was removed; otherwise it waits for the key.

The async flows (create, add, remove, send) are the functions at the end of this module;
``client.app.Client`` calls them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Final

import trio

from client import persist
from client.attachments_io import upload_file
from client.content import Content, GroupKey, GroupNote, pack
from client.entropy import Entropy
from client.errors import ClientError, Refused, UntrustedIdentity
from client.groups import (
    Group,
    GroupControl,
    GroupError,
    GroupMessage,
    NotMember,
    change_id,
    key_fingerprint,
    member_of,
    pack_control,
)
from client.groups.state import MAX_RECORD_SIZE
from client.outbox import OutboxShared
from client.records import Contact, PeerKey
from client.routing import seal_for_domain
from client.session import Device
from client.store.base import NS_GROUP_MESSAGES, NS_GROUPS, StateStore
from suites import get_suite_by_id
from suites.errors import DecryptionFailed as AeadFailed
from suites.labels import GROUP_TRANSPORT_AAD
from suites.padding import PaddingError, unpad
from wire import U32, Bytes16, Bytes32, Len, MaxLen, WireError, decode, encode, message
from wire.e2e import Address, DeviceId
from wire.federation import MAX_GROUP_RECIPIENTS
from wire.group import (
    GroupChange,
    GroupHistory,
    GroupMember,
    OpAdd,
    OpLeave,
    OpRemove,
    SenderKeyDistribution,
)
from wire.relay import MAX_SHARED_RECIPIENTS, SharedRecipient
from wire.server import ServerKeyDocument

if TYPE_CHECKING:
    from client.app import Client

TRANSPORT_KEY_LEN: Final = 32
NONCE_LEN: Final = 12
MAX_KEYS: Final = 8
"""Transport keys kept per group (the newest states'), so late messages still open."""
MAX_PENDING: Final = 64
"""Controls (distributions, keys) kept per group until the change they wait for arrives."""
MAX_BODY: Final = 1 << 21
FETCH_CONCURRENCY: Final = 16
"""Prekey fetches (session set-ups) a group operation has in flight at once."""

log = logging.getLogger(__name__)


class GroupUnavailable(ClientError):
    """No such group here, or this device may not send in it (not a member, no key yet)."""

    code = "group.unavailable"


class GroupPending(Exception):
    """A group envelope that may open later (its key or distribution has not come yet)."""


# --- records --------------------------------------------------------------------------------


@message("client.group-envelope")
class GroupEnvelope:
    """What the nodes carry for a group message (padded): opaque but for its size."""

    nonce: Annotated[bytes, Len(NONCE_LEN)]
    c: Annotated[bytes, MaxLen(MAX_BODY)]


@message("client.group-transport-key")
class TransportKey:
    head: Annotated[bytes, MaxLen(64)]
    epoch: U32
    key: Bytes32


@message("client.group-pending")
class PendingControl:
    """A control (an encoded ``GroupControl``) or a ``GroupKey`` that came before the change
    it needs, from ``sender``/``device``."""

    sender: Address
    device: DeviceId
    control: Annotated[bytes, MaxLen(MAX_RECORD_SIZE)] | None
    key: GroupKey | None


@message("client.group-net")
class GroupNetRecord:
    """One group of this device (``group`` is ``Group.to_bytes``; ``None`` until joined)."""

    group_id: Bytes16
    group: Annotated[bytes, MaxLen(MAX_RECORD_SIZE)] | None
    keys: Annotated[tuple[TransportKey, ...], MaxLen(MAX_KEYS)]
    pending: Annotated[tuple[PendingControl, ...], MaxLen(MAX_PENDING)]
    distributed: tuple[PeerKey, ...]
    """Member devices that have this device's current sending chain."""


@dataclass
class NetGroup:
    group_id: bytes
    group: Group | None
    keys: list[TransportKey] = field(default_factory=list)
    pending: list[PendingControl] = field(default_factory=list)
    distributed: set[tuple[str, int]] = field(default_factory=set)

    def member_devices(self) -> list[tuple[str, int]]:
        """Every member device of the current state."""
        if self.group is None:
            return []
        return [
            (address, dev.id)
            for address, member in sorted(self.group.state.members.items())
            for dev in member.devices
        ]


# --- the wrap -------------------------------------------------------------------------------


def wrap(suite_id: int, key: bytes, message_bytes: bytes, nonce: bytes) -> bytes:
    """The padded upload body of a sender-key message under transport ``key``."""
    aead = get_suite_by_id(suite_id).aead
    c = aead.seal(key, nonce, message_bytes, GROUP_TRANSPORT_AAD)
    return get_suite_by_id(suite_id).pad(encode(GroupEnvelope(nonce=nonce, c=c)))


def parse(body: bytes) -> GroupEnvelope | None:
    """The group envelope in an envelope body, or ``None`` if it is not one."""
    try:
        return decode(unpad(body), GroupEnvelope, max_size=MAX_BODY + 1024)
    except (PaddingError, WireError):
        return None


def unwrap(suite_id: int, key: bytes, envelope: GroupEnvelope) -> bytes | None:
    try:
        return get_suite_by_id(suite_id).aead.open(
            key, envelope.nonce, envelope.c, GROUP_TRANSPORT_AAD
        )
    except AeadFailed:
        return None


# --- the book -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What a control did: ``changed`` the group state or keys; ``refused`` a code."""

    group_id: bytes
    changed: bool
    refused: str | None = None


class GroupBook:
    """This device's groups in the store (one record each, cached)."""

    def __init__(self, store: StateStore, device: Device, entropy: Entropy) -> None:
        self._store = store
        self._device = device
        self._entropy = entropy
        self._cache: dict[bytes, NetGroup] = {}
        self.refused: list[tuple[bytes, str]] = []
        """(group id, code) of every control refused since this book was made."""

    # --- storage ---

    def get(self, group_id: bytes) -> NetGroup | None:
        if group_id in self._cache:
            return self._cache[group_id]
        raw = self._store.get(NS_GROUPS, group_id)
        if raw is None:
            return None
        ng = self._from_record(decode(raw, GroupNetRecord, max_size=MAX_RECORD_SIZE + (1 << 20)))
        self._cache[group_id] = ng
        return ng

    def _from_record(self, rec: GroupNetRecord) -> NetGroup:
        identity = self._device.identity
        group = None if rec.group is None else Group.from_bytes(identity, rec.group)
        return NetGroup(
            rec.group_id,
            group,
            list(rec.keys),
            list(rec.pending),
            {(p.address, p.device) for p in rec.distributed},
        )

    def save(self, ng: NetGroup) -> None:
        """Write ``ng`` (inside the transaction that saved what changed it)."""
        rec = GroupNetRecord(
            group_id=ng.group_id,
            group=None if ng.group is None else ng.group.to_bytes(),
            keys=tuple(ng.keys[-MAX_KEYS:]),
            pending=tuple(ng.pending[-MAX_PENDING:]),
            distributed=tuple(PeerKey(address=a, device=d) for a, d in sorted(ng.distributed)),
        )
        self._store.put(NS_GROUPS, ng.group_id, encode(rec))
        self._cache[ng.group_id] = ng

    def all(self) -> list[NetGroup]:
        found = [self.get(key) for key, _ in self._store.items(NS_GROUPS)]
        return [ng for ng in found if ng is not None and ng.group is not None]

    def mark_message(self, eid: bytes, group_id: bytes) -> None:
        self._store.put(NS_GROUP_MESSAGES, eid, group_id)

    def message_group(self, eid: bytes) -> bytes | None:
        return self._store.get(NS_GROUP_MESSAGES, eid)

    # --- transport keys ---

    def new_key(self, ng: NetGroup) -> GroupKey:
        """A fresh transport key for the current state (after this device's change)."""
        assert ng.group is not None  # noqa: S101 - called right after a propose/create
        head = ng.group.state.chain()[-1]
        gk = GroupKey(
            head=change_id(ng.group.state.suite, head),
            key=self._entropy.random_bytes(TRANSPORT_KEY_LEN),
        )
        self._add_key(ng, TransportKey(head=gk.head, epoch=head.body.epoch, key=gk.key))
        return gk

    @staticmethod
    def _add_key(ng: NetGroup, key: TransportKey) -> None:
        ng.keys = [k for k in ng.keys if k.head != key.head] + [key]
        ng.keys.sort(key=lambda k: k.epoch)
        del ng.keys[:-MAX_KEYS]

    def sending_key(self, ng: NetGroup) -> bytes:
        """The key of the newest state on this device's chain with no removal after it."""
        assert ng.group is not None  # noqa: S101 - the caller checked membership
        held = {k.head: k.key for k in ng.keys}
        suite = ng.group.state.suite
        for change in reversed(ng.group.state.chain()):
            cid = change_id(suite, change)
            if cid in held:
                return held[cid]
            if isinstance(change.body.op, OpRemove | OpLeave):
                break
        raise GroupUnavailable("the transport key of the group's current state has not come")

    def _take_key(self, ng: NetGroup, sender: str, device: int, gk: GroupKey) -> bool:
        """Accept ``gk`` if ``sender``/``device`` signed change ``gk.head`` of the chain;
        keep it for later if that change is not known yet."""
        if ng.group is not None:
            suite = ng.group.state.suite
            for change in ng.group.state.chain():
                if change_id(suite, change) == gk.head:
                    if (change.body.signer, change.body.device) != (sender, device):
                        self.refused.append((ng.group_id, "group.key_not_from_signer"))
                        return False
                    key = TransportKey(head=gk.head, epoch=change.body.epoch, key=gk.key)
                    self._add_key(ng, key)
                    return True
        ng.pending.append(PendingControl(sender=sender, device=device, control=None, key=gk))
        del ng.pending[:-MAX_PENDING]
        return False

    # --- receiving controls ---

    def receive(
        self, sender: str, device: int, payload: GroupControl | GroupNote, peer_sig: bytes
    ) -> Outcome:
        """Apply a pairwise group control from ``sender``/``device`` (whose pairwise
        identity signing key is ``peer_sig``); save the group."""
        note = payload if isinstance(payload, GroupNote) else None
        control = payload.control if isinstance(payload, GroupNote) else payload
        ng = self.get(control.group) or NetGroup(control.group, None)
        refused = self._apply(ng, sender, device, control, peer_sig)
        changed = refused is None
        if note is not None and note.key is not None:
            changed = self._take_key(ng, sender, device, note.key) or changed
        if refused is not None:
            self.refused.append((ng.group_id, refused))
            log.warning("group %s: control refused (%s)", ng.group_id.hex(), refused)
        if ng.group is not None or ng.pending:
            self.save(ng)
        return Outcome(ng.group_id, changed, refused)

    def _apply(
        self, ng: NetGroup, sender: str, device: int, control: GroupControl, peer_sig: bytes
    ) -> str | None:
        body = control.body
        try:
            if ng.group is None:
                return self._first(ng, sender, device, control, peer_sig)
            result = ng.group.receive_control(sender, device, control)
        except NotMember:
            self._keep(ng, sender, device, control)
            return None
        except GroupError as exc:
            return exc.code
        if result is not None and isinstance(body, GroupChange | GroupHistory):
            self._retry_pending(ng)
        return None

    def _first(
        self, ng: NetGroup, sender: str, device: int, control: GroupControl, peer_sig: bytes
    ) -> str | None:
        """A control for a group this device does not have: a welcome joins it (from a
        member device whose fingerprint matches its pairwise identity); a distribution
        waits; anything else is refused."""
        if isinstance(control.body, SenderKeyDistribution):
            self._keep(ng, sender, device, control)
            return None
        if not isinstance(control.body, GroupHistory):
            return "group.unknown_group"
        dev = self._device
        group = Group.join(
            dev.identity, dev.address, dev.device_id, encode(control.body), self._entropy
        )
        fp = group.state.view.device_fingerprint(sender, device)
        if fp is None or fp != key_fingerprint(group.state.suite, peer_sig):
            return "group.welcome_not_from_member"
        ng.group = group
        self._retry_pending(ng)
        return None

    @staticmethod
    def _keep(ng: NetGroup, sender: str, device: int, control: GroupControl) -> None:
        ng.pending.append(
            PendingControl(sender=sender, device=device, control=encode(control), key=None)
        )
        del ng.pending[:-MAX_PENDING]

    def _retry_pending(self, ng: NetGroup) -> None:
        """Try the kept distributions and keys again (after a change)."""
        waiting, ng.pending = ng.pending, []
        for item in waiting:
            if item.key is not None:
                self._take_key(ng, item.sender, item.device, item.key)
                continue
            assert item.control is not None  # noqa: S101 - one of the two is set
            control = decode(item.control, GroupControl, max_size=MAX_RECORD_SIZE)
            try:
                assert ng.group is not None  # noqa: S101 - retried only once joined
                ng.group.receive_control(item.sender, item.device, control)
            except NotMember:
                self._keep(ng, item.sender, item.device, control)
            except GroupError as exc:
                self.refused.append((ng.group_id, exc.code))

    # --- receiving group messages ---

    def open(self, envelope: GroupEnvelope) -> tuple[NetGroup, GroupMessage]:
        """The group and message of a group envelope; :class:`GroupPending` if no key held
        opens it, or its chain is not known (yet)."""
        for ng in self.all():
            group = ng.group
            assert group is not None  # noqa: S101 - all() returns joined groups only
            suite_id = group.state.suite.suite_id
            for key in reversed(ng.keys):
                inner = unwrap(suite_id, key.key, envelope)
                if inner is None:
                    continue
                try:
                    return ng, group.decrypt(inner)
                except GroupError:
                    raise GroupPending("the sender's chain is not known here") from None
        raise GroupPending("no transport key held opens this envelope")


# --- the async flows (called by client.app.Client) -------------------------------------------


@dataclass(frozen=True)
class GroupSendResult:
    """The uploads of one group message (one per destination domain, or more past 256
    recipients), the refused ones, and per-recipient refusals of the stored ones."""

    group: bytes
    eids: tuple[bytes, ...]
    failed: dict[bytes, Refused]
    partial: dict[bytes, tuple[str, ...]]


def _domain(address: str) -> str:
    return address.rpartition("@")[2].lower()


async def _all_targets(client: Client, addresses: Sequence[str]) -> dict[str, dict[int, Contact]]:
    """``Client._targets`` of every address, :data:`FETCH_CONCURRENCY` at a time (most of
    a first send to a big group is waiting for prekey bundles of other domains)."""
    found: dict[str, dict[int, Contact]] = {}
    errors: list[ClientError] = []
    limiter = trio.CapacityLimiter(FETCH_CONCURRENCY)

    async def one(address: str) -> None:
        async with limiter:
            try:
                found[address] = await client._targets(address)
            except ClientError as exc:
                errors.append(exc)

    async with trio.open_nursery() as nursery:
        for address in dict.fromkeys(addresses):
            nursery.start_soon(one, address)
    if errors:
        raise errors[0]
    return found


async def _members(client: Client, addresses: Sequence[str]) -> list[GroupMember]:
    """Group member entries of ``addresses``: their devices with sessions here, named by the
    fingerprint of the identity their pairwise sessions verified."""
    suite = client.device.suite
    found = []
    for address in addresses:
        if client.device.identity_changed(address):
            raise UntrustedIdentity(address)
    every = await _all_targets(client, addresses)
    for address in addresses:
        targets = every[address]
        peer = client.peer_identity(address)
        if peer is None or not targets:
            raise ClientError(f"no device of {address} could be reached")
        found.append(member_of(suite, address, {dev: peer.sig for dev in targets}))
    return found


def note_bytes(client: Client, control: bytes, key: GroupKey | None) -> bytes:
    """The pairwise plaintext of a group control (``pack_control``'s output wrapped)."""
    return encode(
        GroupNote(
            control=decode(control, GroupControl, max_size=MAX_RECORD_SIZE),
            key=key,
            reply_token=client.info.delivery_token,
            reply_mailbox=client.info.mailbox,
        )
    )


async def send_pairwise(
    client: Client, ng: NetGroup, plan: Sequence[tuple[str, Sequence[int], bytes]]
) -> list[bytes]:
    """Queue pairwise ``(address, devices, plaintext)`` messages, and save ``ng`` in the
    same transaction; the envelope ids."""
    prepared = []
    every = await _all_targets(client, [address for address, _, _ in plan])
    for address, devices, plaintext in plan:
        targets = every[address]
        wanted = {dev: c for dev, c in targets.items() if dev in devices}
        domain = _domain(address)
        remote = None if domain == client.domain.lower() else await client.domain_document(domain)
        prepared.append((address, wanted, plaintext, remote))
    eids: list[bytes] = []
    with client.store.transaction():
        for address, wanted, plaintext, remote in prepared:
            eids += client._queue(address, wanted, plaintext, 0, remote)
        client.groups.save(ng)
    client.pump.notify()
    return eids


def _by_address(devices: Sequence[tuple[str, int]], skip: tuple[str, int]) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    for address, dev in devices:
        if (address, dev) != skip:
            found.setdefault(address, []).append(dev)
    return found


async def create(client: Client, name: str, addresses: Sequence[str]) -> tuple[bytes, list[bytes]]:
    """A new group with ``addresses``; the group id and the envelope ids of the welcomes."""
    dev = client.device
    others = tuple(await _members(client, addresses))
    group, _ = Group.create(dev.identity, dev.address, dev.device_id, name, others, client.entropy)
    ng = NetGroup(group.state.group_id, group)
    key = client.groups.new_key(ng)
    welcome = note_bytes(client, pack_control(ng.group_id, group.welcome()), key)
    me = (dev.address, dev.device_id)
    plan = [(a, ds, welcome) for a, ds in _by_address(ng.member_devices(), me).items()]
    return ng.group_id, await send_pairwise(client, ng, plan)


def _joined(client: Client, group_id: bytes) -> tuple[NetGroup, Group]:
    ng = client.groups.get(group_id)
    if ng is None or ng.group is None:
        raise GroupUnavailable(f"no group {group_id.hex()} here")
    if not ng.group.is_member:
        raise GroupUnavailable("this device is no longer a member of the group")
    return ng, ng.group


async def change(
    client: Client, group_id: bytes, add: Sequence[str] = (), remove: Sequence[str] = ()
) -> list[bytes]:
    """Add and remove members (one signed change each); send the changes to every member
    device before and after, a welcome to the new ones, the new transport key to the
    members of the resulting state only."""
    ng, group = _joined(client, group_id)
    before = set(ng.member_devices())
    changes = [group.propose(OpAdd(member=m))[0] for m in await _members(client, add)]
    changes += [group.propose(OpRemove(address=a))[0] for a in remove]
    key = client.groups.new_key(ng)
    after = set(ng.member_devices())
    me = (client.device.address, client.device.device_id)
    plan: list[tuple[str, Sequence[int], bytes]] = []
    for address, devs in _by_address(sorted(before), me).items():
        for i, data in enumerate(changes):
            last = i == len(changes) - 1
            gk = key if last and (address, devs[0]) in after else None
            plan.append((address, devs, note_bytes(client, pack_control(group_id, data), gk)))
    welcome = note_bytes(client, pack_control(group_id, group.welcome()), key)
    for address, devs in _by_address(sorted(after - before), me).items():
        plan.append((address, devs, welcome))
    return await send_pairwise(client, ng, plan)


async def send(
    client: Client,
    group_id: bytes,
    text: str,
    files: Sequence[Path] = (),
    expire: int | None = None,
    ttl: int = 0,
) -> GroupSendResult:
    """Encrypt once, upload once per destination domain; wait for the node's answers."""
    ng, group = _joined(client, group_id)
    await _distribute(client, ng, group)
    pointers = [
        await upload_file(client.link.request, client.info.node_url, path, client.entropy)
        for path in files
    ]
    content = Content(
        text=text,
        sent=int(client.clock() * 1000),
        reply_token=client.info.delivery_token,
        reply_mailbox=client.info.mailbox,
        expire=expire,
        attachments=tuple(pointers),
    )
    recipients = await _recipients(client, ng)
    docs = {d: await client.domain_document(d) for d in recipients if d != client.domain.lower()}
    with client.store.transaction():
        body = wrap(
            group.state.suite.suite_id,
            client.groups.sending_key(ng),
            group.encrypt(pack(content)),
            client.entropy.random_bytes(NONCE_LEN),
        )
        now = int(client.clock() * 1000)
        items = list(uploads(client.domain, recipients, docs, body, ttl, now, client.entropy))
        for item in items:
            client.outbox.add(item)
        client.groups.save(ng)
    client.pump.notify()
    eids = [item.eid for item in items]
    failed = await client.pump.wait(eids)
    partial = {eid: client.pump.partial[eid] for eid in eids if eid in client.pump.partial}
    return GroupSendResult(group_id, tuple(eids), failed, partial)


async def _distribute(client: Client, ng: NetGroup, group: Group) -> None:
    """Rotate after a removal; send this device's chain to member devices without it."""
    if group.needs_rotation:
        group.rotate(client.entropy)
        ng.distributed.clear()
    me = (client.device.address, client.device.device_id)
    missing = [m for m in ng.member_devices() if m != me and m not in ng.distributed]
    if not missing:
        return
    note = note_bytes(client, pack_control(ng.group_id, group.distribution()), None)
    ng.distributed.update(missing)
    plan = [(a, ds, note) for a, ds in _by_address(missing, me).items()]
    await send_pairwise(client, ng, plan)


async def _recipients(client: Client, ng: NetGroup) -> dict[str, list[tuple[bytes, bytes | None]]]:
    """Per destination domain, the ``(mailbox, token)`` of every other member device."""
    me = (client.device.address, client.device.device_id)
    contacts = persist.contacts(client.store)
    found: dict[str, list[tuple[bytes, bytes | None]]] = {}
    for address, dev in ng.member_devices():
        if (address, dev) == me:
            continue
        contact = contacts.get((address, dev))
        if contact is None:
            contact = (await client._targets(address)).get(dev)
            if contact is None:
                log.warning("group %s: no mailbox known for a member device", ng.group_id.hex())
                continue
        found.setdefault(_domain(address), []).append((contact.mailbox, contact.delivery_token))
    return found


def uploads(
    home: str,
    recipients: dict[str, list[tuple[bytes, bytes | None]]],
    docs: dict[str, ServerKeyDocument],
    body: bytes,
    ttl: int,
    now_ms: int,
    entropy: Entropy,
) -> Iterator[OutboxShared]:
    """One upload per destination domain (split past the per-upload recipient bound): the
    ``home`` domain's as ``SendShared``, another's as a routing layer sealed to it."""
    home = home.lower()
    for domain, members in sorted(recipients.items()):
        step = MAX_SHARED_RECIPIENTS if domain == home else MAX_GROUP_RECIPIENTS
        for start in range(0, len(members), step):
            chunk = members[start : start + step]
            eid = entropy.random_bytes(16)
            shared = tuple(SharedRecipient(mailbox=m, token=t) for m, t in chunk)
            if domain == home:
                yield OutboxShared(eid=eid, ttl=ttl, recipients=shared, body=body, domain="")
                continue
            layer = seal_for_domain(
                docs[domain], now_ms, recipients=chunk, eid=eid, ttl=ttl, body=body
            )
            yield OutboxShared(eid=eid, ttl=ttl, recipients=shared, body=layer, domain=domain)


def describe(ng: NetGroup) -> dict[str, object]:
    """The JSON object ``group list`` prints for one group."""
    assert ng.group is not None  # noqa: S101 - listed groups are joined
    state = ng.group.state
    return {
        "group": ng.group_id.hex(),
        "name": state.name,
        "epoch": state.epoch,
        "members": sorted(state.members),
        "admins": sorted(state.admins),
        "member": ng.group.is_member,
    }
