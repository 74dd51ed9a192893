"""The durable outbox: envelopes encrypted but not yet acknowledged by the node.

An envelope is written to the outbox in the same store transaction that saves the ratchet
state it was encrypted with, *before* anything goes on the wire. A retry resends the same
``eid`` and the same bytes, so the node stores it once (``Sent.duplicate``), and a crash
at any point neither loses the message nor encrypts it twice.

:class:`Outbox` is the synchronous store side; :class:`OutboxPump` the trio shell that
sends every pending item over the current connection, in order, and removes it once the
node answered ``Sent`` (or refused it for good: see :data:`RETRYABLE`).

Two kinds of items share the outbox: :class:`OutboxItem` (one envelope for one device) and
:class:`OutboxShared` (one group message body for several mailboxes of one domain: a
``SendShared`` for the home domain, a ``Forward`` of a many-recipient routing layer for
another). Items written before the second kind existed decode as before.

Sealed sending is unattributed (issue 20): with ``sealed`` given, every envelope authorised
by its recipients' delivery tokens (``Send``, ``SendBatch``, ``Forward``, and a
``SendShared`` whose every recipient has a token) goes over the anonymous connection
(``/v1/sealed``), so the home node cannot tie it to this account. Only an introduction,
which names its sender by design (``Introduce``, a ``SendShared`` naming a recipient
without a token), goes over the authenticated connection. There is no fallback: a
sealed envelope waits for the anonymous connection, retried with the same ``eid`` and
bytes as ever.

With ``batch`` above 1 the pump sends consecutive ``Send`` items together in one
``SendBatch`` (at most ``batch`` of them and :data:`BATCH_BYTES` of bodies), answered per
item; a node that does not know ``SendBatch`` (it answers ``proto.*``) gets single Sends
from then on.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Annotated, Any, Final

import trio

from client.errors import NetworkError, Refused
from client.store.base import StateStore
from trust.errors import RETRYABLE as RETRYABLE
from trust.errors import UNREADABLE
from trust.limits import MAX_LAYER_BYTES
from wire import U32, Bytes16, MaxLen, decode, encode, message
from wire.e2e import Address, DeliveryToken, DeviceId
from wire.relay import (
    MAX_SHARED_RECIPIENTS,
    Error,
    Forward,
    Introduce,
    Send,
    SendBatch,
    SendShared,
    Sent,
    SentBatch,
    SentShared,
    SharedRecipient,
)

NS_OUTBOX: Final = "outbox"
"""Store namespace of pending envelopes, keyed by u64 sequence number || eid."""

RETRY_PAUSE: Final = 1.0
"""Seconds to wait before retrying after an error that says nothing more precise."""
MAX_RETRY_PAUSE: Final = 60.0
BATCH_BYTES: Final = 512 * 1024
"""Most body bytes in one ``SendBatch`` (a larger item goes alone)."""


@message("client.outbox-item")
class OutboxItem:
    """One envelope to deliver: to ``mailbox`` of ``address``/``device``; without a
    ``token`` it goes as an ``Introduce``."""

    address: Address
    device: DeviceId
    mailbox: Bytes16
    eid: Bytes16
    token: DeliveryToken | None
    ttl: U32
    body: Annotated[bytes, MaxLen(MAX_LAYER_BYTES)]
    domain: Annotated[str, MaxLen(253)]
    """Empty for the home domain; else the recipient's domain, and ``body`` is the sealed
    routing layer (``client.routing``) that carries mailbox, token and envelope."""

    def request(self) -> Send | Introduce | Forward:
        """The frame that delivers it (``id`` is set by the connection)."""
        if self.domain:
            return Forward(id=0, domain=self.domain, eid=self.eid, ttl=self.ttl, layer=self.body)
        if self.token is None:
            return Introduce(id=0, mailbox=self.mailbox, eid=self.eid, ttl=self.ttl, body=self.body)
        return Send(
            id=0,
            mailbox=self.mailbox,
            eid=self.eid,
            token=self.token,
            ttl=self.ttl,
            body=self.body,
        )


@message("client.outbox-shared")
class OutboxShared:
    """One group message upload: to ``recipients`` of the home node (``domain`` empty:
    ``SendShared``), or to another domain (``body`` is then the sealed routing layer that
    names the recipients: ``Forward``). ``recipients`` is kept either way, for the record."""

    eid: Bytes16
    ttl: U32
    recipients: Annotated[tuple[SharedRecipient, ...], MaxLen(MAX_SHARED_RECIPIENTS)]
    body: Annotated[bytes, MaxLen(MAX_LAYER_BYTES)]
    domain: Annotated[str, MaxLen(253)]

    def request(self) -> SendShared | Forward:
        if self.domain:
            return Forward(id=0, domain=self.domain, eid=self.eid, ttl=self.ttl, layer=self.body)
        return SendShared(
            id=0, eid=self.eid, ttl=self.ttl, recipients=self.recipients, body=self.body
        )


AnyItem = OutboxItem | OutboxShared


class Outbox:
    """Pending envelopes in a :class:`StateStore`, oldest first."""

    def __init__(self, store: StateStore) -> None:
        self._store = store

    def add(self, item: AnyItem) -> None:
        """Queue ``item`` (call inside the transaction that saved its ratchet state)."""
        self._store.put(NS_OUTBOX, self._next_seq().to_bytes(8, "big") + item.eid, encode(item))

    def pending(self) -> list[AnyItem]:
        return [decode(raw, (OutboxItem, OutboxShared)) for _, raw in self._store.items(NS_OUTBOX)]

    def remove(self, eid: bytes) -> None:
        for key, _ in self._store.items(NS_OUTBOX):
            if key[8:] == eid:
                self._store.delete(NS_OUTBOX, key)

    def __len__(self) -> int:
        return len(self._store.items(NS_OUTBOX))

    def _next_seq(self) -> int:
        keys = self._store.items(NS_OUTBOX)
        return int.from_bytes(keys[-1][0][:8], "big") + 1 if keys else 1


Request = Callable[[Any], Awaitable[Any]]
"""Sends one request over the current connection (``Link.request``)."""


class OutboxPump:
    """Delivers the outbox whenever there is a connection and something to send.

    :meth:`run` loops forever; :meth:`notify` after adding items; :meth:`wait` until given
    envelopes are settled: ``sent`` (acknowledged) or ``failed`` (refused for good, and
    dropped from the outbox with the node's error).
    """

    def __init__(
        self, outbox: Outbox, request: Request, *, batch: int = 1, sealed: Request | None = None
    ) -> None:
        self._outbox = outbox
        self._request = request
        self._sealed = sealed
        """Sends over the anonymous connection (None: everything over ``request``)."""
        self._batch = batch
        self._wake = trio.Event()
        self._progress = trio.Event()
        self.sent: set[bytes] = set()
        self.failed: dict[bytes, Refused] = {}
        self.partial: dict[bytes, tuple[str, ...]] = {}
        """Shared uploads the node stored for some recipients only: its per-recipient
        results (``""`` stored, ``"duplicate"``, or the code that refused that one)."""

    def notify(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        while True:
            self._wake = trio.Event()
            try:
                await self.flush()
            except NetworkError:
                await trio.sleep(RETRY_PAUSE / 10)  # the link is reconnecting
                continue
            await self._wake.wait()

    async def flush(self) -> None:
        """Send every pending item once; raises :class:`NetworkError` if the link broke."""
        pending = self._outbox.pending()
        while pending:
            batch = _batch(pending, self._batch)
            if len(batch) < 2:
                await self._deliver(pending[0])
                pending = pending[1:]
            else:
                await self._deliver_batch(batch)
                pending = pending[len(batch) :]

    async def _deliver_batch(self, items: list[OutboxItem]) -> None:
        """Send ``items`` in one SendBatch; what it does not settle goes one by one."""
        sends = tuple(
            Send(n, item.mailbox, item.eid, item.token, item.ttl, item.body)
            for n, item in enumerate(items, 1)
        )
        try:
            response = await self._send(SendBatch(id=0, sends=sends))
        except Refused as exc:
            if exc.node_code in UNREADABLE:
                self._batch = 1
            response = None
        if response is not None:
            items = self._settle_batch(items, response)
        for item in items:
            await self._deliver(item)

    def _settle_batch(self, items: list[OutboxItem], response: object) -> list[OutboxItem]:
        """Settle what ``response`` answers for good; the items left to send again."""
        if not isinstance(response, SentBatch) or len(response.results) != len(items):
            raise NetworkError("unexpected answer to a batch of sends")
        left = []
        for item, result in zip(items, response.results, strict=True):
            if isinstance(result, Sent) and result.eid == item.eid:
                self._settle(item.eid, None)
            elif isinstance(result, Error) and result.code not in RETRYABLE:
                self._settle(item.eid, Refused(result.code, result.message, result.retry_after))
            elif isinstance(result, Error):
                left.append(item)
            else:
                raise NetworkError("unexpected answer to a send")
        return left

    async def _deliver(self, item: AnyItem) -> None:
        pause = RETRY_PAUSE
        while True:
            try:
                response = await self._send(item.request())
            except Refused as exc:
                if exc.node_code not in RETRYABLE:
                    self._settle(item.eid, exc)
                    return
                await trio.sleep(exc.retry_after / 1000 if exc.retry_after else pause)
                pause = min(pause * 2, MAX_RETRY_PAUSE)
                continue
            if isinstance(response, SentShared) and response.eid == item.eid:
                if any(code in RETRYABLE for code in response.results):
                    # the same eid again: the recipients that have it answer "duplicate"
                    await trio.sleep(pause)
                    pause = min(pause * 2, MAX_RETRY_PAUSE)
                    continue
                if any(code not in ("", "duplicate") for code in response.results):
                    self.partial[item.eid] = response.results
            elif not isinstance(response, Sent) or response.eid != item.eid:
                raise NetworkError("unexpected answer to a send")
            self._settle(item.eid, None)
            return

    async def _send(self, frame: Any) -> Any:
        """``frame`` over the anonymous connection if it is sealed sending, else over the
        authenticated one (an introduction)."""
        if self._sealed is not None and unattributed(frame):
            return await self._sealed(frame)
        return await self._request(frame)

    def _settle(self, eid: bytes, failure: Refused | None) -> None:
        self._outbox.remove(eid)
        if failure is None:
            self.sent.add(eid)
        else:
            self.failed[eid] = failure
        self._progress.set()
        self._progress = trio.Event()

    async def wait(self, eids: Iterable[bytes]) -> dict[bytes, Refused]:
        """Wait until every envelope in ``eids`` is settled; the refused ones."""
        wanted = set(eids)
        while not wanted <= self.sent | set(self.failed):
            await self._progress.wait()
        return {eid: self.failed[eid] for eid in wanted if eid in self.failed}


def unattributed(frame: object) -> bool:
    """Whether ``frame`` goes over the anonymous connection: every sealed envelope but an
    introduction (``Introduce``, or a ``SendShared`` naming a recipient without a token,
    which the node records with its sender)."""
    if isinstance(frame, Introduce):
        return False
    if isinstance(frame, SendShared):
        return all(r.token is not None for r in frame.recipients)
    return isinstance(frame, Send | SendBatch | Forward)


def _sendable(item: AnyItem) -> OutboxItem | None:
    """``item`` if it goes as a plain ``Send`` (one device of the home domain, with a
    token), which is what a ``SendBatch`` carries; else None."""
    if isinstance(item, OutboxItem) and item.token is not None and not item.domain:
        return item
    return None


def _batch(pending: list[AnyItem], most: int) -> list[OutboxItem]:
    """The consecutive ``Send`` items at the head of ``pending`` to send together, at most
    ``most`` and :data:`BATCH_BYTES` of bodies (empty when the first is of another kind)."""
    first = _sendable(pending[0])
    if first is None:
        return []
    group = [first]
    size = len(first.body)
    for item in pending[1:most]:
        send = _sendable(item)
        if send is None or size + len(send.body) > BATCH_BYTES:
            break
        group.append(send)
        size += len(send.body)
    return group
