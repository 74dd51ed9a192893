"""The send path: from a plaintext for an address to envelopes in the durable outbox.

Every pairwise send (a message, a draft, a group control) takes the same steps:

1. **targets**: the recipient's devices with a session and a mailbox
   (:meth:`SendPath.targets`): the contacts held, or else the prekey bundles the node
   hands out (``FetchPrekeys``), with a session started for each device;
2. **plan** (:func:`plan`, pure): one :class:`PlannedEnvelope` per device to write, with
   the domain whose routing layer wraps it (empty for the home domain);
3. **write** (:meth:`SendPath.write`): encrypt each planned envelope, seal it for another
   domain (``client.routing``), and add it to the outbox in **one** store transaction
   with the ratchet states it moved (and whatever else the caller saves with it: the
   draft it deletes, the group it changes), so a crash neither loses nor repeats one;
4. **wake** the outbox pump (:meth:`SendPath.wake`) and, if the caller wants the node's
   answers, :meth:`SendPath.wait` for them.

Group uploads (one body for many mailboxes) are written by :meth:`SendPath.write_items`,
in the same transaction as the group state they moved.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Final, Protocol

import trio

from client import persist
from client.clock import Clock, now_ms
from client.entropy import Entropy
from client.errors import (
    ClientError,
    NetworkError,
    Refused,
    SelfAddressed,
    UnknownAccount,
    UntrustedIdentity,
)
from client.outbox import AnyItem, Outbox, OutboxItem, OutboxPump, Request
from client.records import Contact
from client.routing import check_address, seal_for_domain
from client.session import Device
from client.store.base import StateStore
from trust.errors import PREKEYS_NONE
from wire.relay import FetchPrekeys, PrekeyBundles
from wire.server import ServerKeyDocument

EID_LEN: Final = 16
FETCH_CONCURRENCY: Final = 16
"""Prekey fetches (session set-ups) a send to many addresses has in flight at once."""


class Documents(Protocol):
    """Verified key documents of other domains (``client.domains.DomainKeys``)."""

    async def document(self, domain: str) -> ServerKeyDocument: ...


@dataclass(frozen=True)
class Pairwise:
    """One plaintext for the devices of ``address`` (only ``devices``, if given)."""

    address: str
    plaintext: bytes
    devices: frozenset[int] | None = None


@dataclass(frozen=True)
class PlannedEnvelope:
    """One envelope to write: ``plaintext`` for ``device`` of ``address``, delivered to
    ``contact``; ``domain`` is the recipient's domain when a routing layer sealed to it
    carries the envelope, empty for the home domain."""

    address: str
    device: int
    contact: Contact
    plaintext: bytes
    domain: str


def domain_of(address: str) -> str:
    """The domain of ``NAME@DOMAIN``, lower-cased."""
    return address.rpartition("@")[2].lower()


def remote_domains(domains: Iterable[str], home: str) -> list[str]:
    """``domains`` but ``home``, lower-cased, each once, in order."""
    return [d for d in dict.fromkeys(d.lower() for d in domains) if d != home.lower()]


def plan(
    messages: Sequence[Pairwise], targets: Mapping[str, Mapping[int, Contact]], home: str
) -> list[PlannedEnvelope]:
    """The envelopes that deliver ``messages`` to the devices in ``targets`` (per address,
    device id to contact), in the order of the messages and of their devices."""
    planned = []
    for message in messages:
        domain = domain_of(message.address)
        remote = "" if domain == home.lower() else domain
        for device, contact in targets[message.address].items():
            if message.devices is None or device in message.devices:
                planned.append(
                    PlannedEnvelope(message.address, device, contact, message.plaintext, remote)
                )
    return planned


def outbox_item(planned: PlannedEnvelope, eid: bytes, ttl: int, body: bytes) -> OutboxItem:
    """The outbox item of ``planned``, its encrypted (and, for another domain, sealed)
    ``body`` under envelope id ``eid``."""
    contact = planned.contact
    return OutboxItem(
        planned.address,
        planned.device,
        contact.mailbox,
        eid,
        contact.delivery_token,
        ttl,
        body,
        planned.domain,
    )


GroupTokenOf = Callable[[str, int], bytes | None]
"""A group token of a peer device from a group this device is in (``GroupBook.member_token``)."""


class SendPath:
    """Target resolution, the durable outbox write and the pump's wake-up, for one device.

    ``request`` sends one request over the live connection; ``documents`` gives verified
    key documents of other domains; ``pump`` delivers what is written to ``outbox``;
    ``group_token`` gives the group token an envelope to a fellow group member presents
    (before the contact's own token, which may be an older group token; without either
    the envelope is an introduction).
    """

    def __init__(
        self,
        store: StateStore,
        device: Device,
        *,
        outbox: Outbox,
        pump: OutboxPump,
        request: Request,
        documents: Documents,
        entropy: Entropy,
        clock: Clock,
        group_token: GroupTokenOf | None = None,
    ) -> None:
        self._store = store
        self._device = device
        self._group_token = group_token
        self._outbox = outbox
        self._pump = pump
        self._request = request
        self._documents = documents
        self._entropy = entropy
        self._clock = clock
        self._compose_lock = trio.Lock()
        self.home = device.address.rpartition("@")[2]

    # --- checks and targets ---

    def check_recipient(self, to: str) -> None:
        """:class:`BadAddress` unless ``to`` is NAME@DOMAIN; :class:`SelfAddressed` for this
        account's own address (notes to self are not supported: refused, not lost);
        :class:`UntrustedIdentity` if its identity key changed."""
        check_address(to)
        if to.lower() == self._device.address.lower():
            raise SelfAddressed(f"{to} is your own address: a message to yourself is not sent")
        if self._device.identity_changed(to):
            raise UntrustedIdentity(to)

    async def targets(self, to: str) -> dict[int, Contact]:
        """The recipient's devices with a session and a mailbox, fetching bundles if none."""
        # the contacts of devices with a session, each read alone (not every contact for
        # each address: a big group's first send asks for hundreds of addresses)
        known = {}
        for dev in sorted(d for a, d in self._device.sessions if a == to):
            contact = persist.load_contact(self._store, to, dev)
            if contact is not None:
                known[dev] = contact
        if known:
            return known
        try:
            bundles = await self._request(FetchPrekeys(id=0, address=to))
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
            old = persist.load_contact(self._store, to, entry.device)
            contact = Contact(entry.mailbox, old.delivery_token if old else None)
            with self._store.transaction():
                self._device.start_session(entry.bundle)
                persist.save_peer(self._store, self._device, to, entry.device)
                persist.save_contact(self._store, to, entry.device, contact)
            targets[entry.device] = contact
        return targets

    async def all_targets(self, addresses: Sequence[str]) -> dict[str, dict[int, Contact]]:
        """:meth:`targets` of every address, :data:`FETCH_CONCURRENCY` at a time (most of a
        first send to a big group is waiting for prekey bundles of other domains)."""
        found: dict[str, dict[int, Contact]] = {}
        errors: list[ClientError] = []
        limiter = trio.CapacityLimiter(FETCH_CONCURRENCY)

        async def one(address: str) -> None:
            async with limiter:
                try:
                    found[address] = await self.targets(address)
                except ClientError as exc:
                    errors.append(exc)

        async with trio.open_nursery() as nursery:
            for address in dict.fromkeys(addresses):
                nursery.start_soon(one, address)
        if errors:
            raise errors[0]
        return found

    async def documents(self, domains: Iterable[str]) -> dict[str, ServerKeyDocument]:
        """The verified key document of each of ``domains`` but the home domain."""
        return {d: await self._documents.document(d) for d in remote_domains(domains, self.home)}

    # --- writing ---

    def write(
        self,
        planned: Sequence[PlannedEnvelope],
        ttl: int,
        docs: Mapping[str, ServerKeyDocument],
        *,
        also: Callable[[], None] | None = None,
    ) -> list[bytes]:
        """Encrypt and queue ``planned`` in one transaction (with ``also``, which saves
        what else changed with them); the envelope ids. An envelope for another domain is
        wrapped in a routing layer sealed to that domain's document in ``docs``."""
        eids = []
        now = now_ms(self._clock)
        with self._store.transaction():
            for raw in planned:
                one = self._with_group_token(raw)
                body = self._device.encrypt(one.address, one.device, one.plaintext)
                eid = self._entropy.random_bytes(EID_LEN)
                if one.domain:
                    contact = one.contact
                    body = seal_for_domain(
                        docs[one.domain],
                        now,
                        mailbox=contact.mailbox,
                        token=contact.delivery_token,
                        eid=eid,
                        ttl=ttl,
                        body=body,
                    )
                persist.save_peer(self._store, self._device, one.address, one.device)
                self._outbox.add(outbox_item(one, eid, ttl, body))
                eids.append(eid)
            if also is not None:
                also()
        return eids

    def _with_group_token(self, one: PlannedEnvelope) -> PlannedEnvelope:
        token = None if self._group_token is None else self._group_token(one.address, one.device)
        if token is None or token == one.contact.delivery_token:
            return one
        return replace(one, contact=Contact(one.contact.mailbox, token))

    def write_items(
        self, make: Callable[[], Iterable[AnyItem]], *, also: Callable[[], None] | None = None
    ) -> list[bytes]:
        """Queue the items ``make`` builds, in one transaction with ``make`` itself (which
        may move ratchet or chain state) and ``also``; their envelope ids."""
        with self._store.transaction():
            items = list(make())
            for item in items:
                self._outbox.add(item)
            if also is not None:
                also()
        return [item.eid for item in items]

    async def compose(
        self, to: str, plaintext: bytes, ttl: int, *, also: Callable[[], None] | None = None
    ) -> list[bytes]:
        """Encrypt ``plaintext`` for every device of ``to`` into the outbox (with ``also`` in
        the same transaction); the envelope ids. The pump is not woken (see :meth:`wake`).
        One composition at a time, so two never start a session with the same device."""
        async with self._compose_lock:
            if self._device.identity_changed(to):
                raise UntrustedIdentity(to)
            docs = await self.documents([domain_of(to)])
            targets = await self.targets(to)
            planned = plan([Pairwise(to, plaintext)], {to: targets}, self.home)
            return self.write(planned, ttl, docs, also=also)

    async def pairwise(
        self, messages: Sequence[Pairwise], *, also: Callable[[], None] | None = None
    ) -> list[bytes]:
        """Queue ``messages`` (the targets of all their addresses resolved at once) in one
        transaction with ``also``, and wake the pump; the envelope ids."""
        every = await self.all_targets([m.address for m in messages])
        docs = await self.documents(domain_of(m.address) for m in messages)
        # home-domain envelopes first (a device's envelopes keep their order), so the pump
        # finds the introductions among them together (one IntroduceMany)
        planned = sorted(plan(messages, every, self.home), key=lambda p: p.domain != "")
        eids = self.write(planned, 0, docs, also=also)
        self.wake()
        return eids

    # --- the pump ---

    def wake(self) -> None:
        """Let the pump deliver what was written."""
        self._pump.notify()

    async def wait(self, eids: Iterable[bytes]) -> dict[bytes, Refused]:
        """Wait until the node settled every envelope of ``eids``; the refused ones."""
        return await self._pump.wait(eids)

    def partial(self, eids: Iterable[bytes]) -> dict[bytes, tuple[str, ...]]:
        """The per-recipient results of the shared uploads among ``eids`` that the node
        stored for some recipients only."""
        return {eid: self._pump.partial[eid] for eid in eids if eid in self._pump.partial}
