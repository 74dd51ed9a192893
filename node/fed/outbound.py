"""The durable outbound queues: one sender per destination domain (DESIGN section 6).

A sender takes the next transaction from the store (``OutboundQueue.outbound_batch``: an open one
it does not hold, after a failure or a restart, so the same txn id is retried until
acknowledged; else up to ``MAX_TXN_ITEMS`` items / ``MAX_TXN_BYTES`` that are in no
transaction), sends it with ``PUT /federation/v1/send/{txn}``, and on an answer deletes
what the peer took (``OutboundQueue.outbound_done``), putting back the items it asked to retry. A
failure waits with full-jitter exponential backoff (0.5 s doubling, capped at
``federation_backoff_cap``); hearing from the domain (any request it makes to us) ends the
wait at once. Items leave the queue only by delivery or their TTL.

Probing: a long backoff must not keep a healed link idle, nor may a request that a black
hole or a one-way cut swallowed hang until its read timeout. So while a domain fails, or a
transaction to it has been in flight for more than ``PROBE_EVERY`` seconds, a prober asks
it every ``PROBE_EVERY`` s whether it is up: the signed ``POST /federation/v1/hello``
(which also ends the peer's backoff towards us), given ``PROBE_TIMEOUT`` s; probes
overlap. When one is answered after a failure (of a transaction or of a probe), the sender
stops backing off and sends at once, and the requests in flight since before that probe
are abandoned and sent again with the same txn ids (the peer de-duplicates them). A peer
that is only slow answers every probe, so its transactions are never abandoned.

Pipelining: a sender runs ``federation_in_flight`` workers. The first always works; the
others join only while there is a backlog (the last transaction taken was full) and the
peer is healthy, so a failing peer gets one transaction at a time and an idle queue costs
one store call per wake. Transactions in flight are kept apart by ``busy``. Envelopes of
different transactions may arrive in another order than they were queued; clients order
by their own counters (the Double Ratchet accepts messages out of order).
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import secrets
from collections.abc import Awaitable, Callable, Iterator
from typing import Final

import trio

from federation.errors import ClockSkew, FederationError
from node.metrics import Metrics
from node.store import OutboundQueue, StoreError
from node.store.base import OutboundItem
from wire import WireError, decode, encode
from wire.federation import (
    ITEM_OK,
    ITEM_RETRY,
    MAX_TXN_BYTES,
    MAX_TXN_ITEMS,
    Transaction,
    TransactionItem,
    TransactionResult,
)

log = logging.getLogger("sealrelay.node.federation")

SEND_PATH: Final = "/federation/v1/send/"
BACKOFF_BASE: Final = 0.5
IDLE_POLL: Final = 30.0  # seconds an idle sender waits before looking at its queue again
GAUGE_EVERY: Final = 1.0  # least seconds between two counts of a domain's queue (the gauge)
SCAN_INTERVAL: Final = 5.0  # seconds between looks for domains with queued items
PROBE_EVERY: Final = 2.0  # seconds between probes of a failing or hanging domain
PROBE_TIMEOUT: Final = 4.0  # a probe not answered within this failed

SendTxn = Callable[[str, str, bytes], Awaitable[bytes]]
Probe = Callable[[str], Awaitable[bool]]


class Backoff:
    """Full-jitter exponential backoff (``random`` is injected for tests)."""

    def __init__(self, cap: float, rng: Callable[[], float] = random.random) -> None:
        self.cap = cap
        self.failures = 0
        self._rng = rng

    def next(self) -> float:
        self.failures += 1
        ceiling: float = min(self.cap, BACKOFF_BASE * 2.0 ** min(self.failures - 1, 30))
        return ceiling * (0.5 + self._rng() / 2)

    def reset(self) -> None:
        self.failures = 0


class DomainSender:
    """The sender of one destination domain: its workers share the backoff, the wake-up
    and the set of transactions in flight."""

    def __init__(self, domain: str, cap: float) -> None:
        self.domain = domain
        self.backoff = Backoff(cap)
        self.wake = trio.Event()
        self.busy: set[bytes] = set()
        self.taking = trio.Lock()
        self.backlog = False  # the last transaction taken was full: more are queued
        self.more = trio.Event()  # set when a backlog appears, for the helper workers
        self.requests: dict[trio.CancelScope, float] = {}  # in flight -> trio time sent
        self.unreached = False  # the last probe failed
        self.last_up = -math.inf  # trio time the latest answered probe was sent

    def poke(self, *, reset: bool = False) -> None:
        """Send now: at once if ``reset`` (we heard from the domain) or if the sender is
        not backing off. New items for a failing domain wait out the backoff: otherwise
        every item queued during an outage would cut it short, each cut a failed attempt
        (a store round trip, a signature and a refused connection)."""
        if reset:
            self.backoff.reset()
        if not self.backoff.failures:
            self.wake.set()

    async def wait(self, seconds: float) -> None:
        event = self.wake
        with trio.move_on_after(seconds):
            await event.wait()
        if self.wake is event and event.is_set():  # every waiter of it was woken too
            self.wake = trio.Event()

    @contextlib.contextmanager
    def request(self) -> Iterator[trio.CancelScope]:
        """A transaction's request in flight, which :meth:`reached` may abandon."""
        scope = trio.CancelScope()
        self.requests[scope] = trio.current_time()
        try:
            with scope:
                yield scope
        finally:
            del self.requests[scope]

    def troubled(self) -> bool:
        """Failing, or a request in flight for longer than ``PROBE_EVERY``: worth a probe."""
        now = trio.current_time()
        hanging = any(now - sent > PROBE_EVERY for sent in self.requests.values())
        return bool(self.backoff.failures) or hanging

    def reached(self, since: float) -> int:
        """A probe sent at trio time ``since`` was answered after a failure: send now, and
        abandon the requests sent before it (how many)."""
        stale = [scope for scope, sent in self.requests.items() if sent < since]
        for scope in stale:
            scope.cancel()
        self.unreached = False
        self.poke(reset=True)
        return len(stale)

    def took(self, full: bool) -> None:
        """A worker took a transaction (``full``: as many items as allowed, or half the
        bytes) or found none."""
        self.backlog = full
        if full:
            self.more.set()

    async def wait_for_backlog(self) -> None:
        """Until there is a backlog to help with and the peer is healthy."""
        while not self.backlog or self.backoff.failures:
            if self.more.is_set():
                self.more = trio.Event()
            await self.more.wait()


class Outbound:
    """All senders. ``send_txn(domain, path, body)`` returns the response body of a 200
    and raises :class:`FederationError` otherwise."""

    def __init__(
        self,
        own_domain: str,
        store: OutboundQueue,
        send_txn: SendTxn,
        metrics: Metrics,
        clock: Callable[[], float],
        cap: float,
        in_flight: int = 1,
        probe: Probe | None = None,
    ) -> None:
        self.own_domain = own_domain
        self.store = store
        self._send_txn = send_txn
        self.metrics = metrics
        self._clock = clock
        self._cap = cap
        self._in_flight = in_flight
        self._probe = probe
        self.senders: dict[str, DomainSender] = {}
        self._counted: dict[str, float] = {}
        self._nursery: trio.Nursery | None = None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            await self._scan()
            task_status.started()
            while True:
                await trio.sleep(SCAN_INTERVAL)
                await self._scan()

    async def _scan(self) -> None:
        """Start or wake the sender of every domain with queued items: at start, and
        periodically, so that items another replica queued (and may have died with) are
        sent by this one (cluster mode; on SQLite only this process queues)."""
        try:
            depths = await self.store.outbound_depths(self._now())
        except StoreError as exc:
            log.warning("outbound scan failed", extra={"error": str(exc)})
            return
        for domain in depths:
            # Also the senders that already run: items in transactions of another
            # replica come back to this one once that replica's lease has lapsed.
            self.poke(domain)

    def _now(self) -> int:
        return int(self._clock() * 1000)

    def poke(self, domain: str, *, reset: bool = False) -> None:
        """Something was queued for ``domain`` (or it called us): send now."""
        sender = self.senders.get(domain)
        if sender is None:
            if self._nursery is None:
                return
            sender = self.senders[domain] = DomainSender(domain, self._cap)
            self._nursery.start_soon(self._loop, sender)
        sender.poke(reset=reset)

    def heard_from(self, domain: str) -> None:
        if domain in self.senders:
            self.poke(domain, reset=True)

    async def queue(self, item: OutboundItem) -> bool:
        stored = await self.store.outbound_put(item)
        if stored:  # counted again from the store at the sender's next attempt
            depths = self.metrics.queue_depths
            depths[item.domain] = depths.get(item.domain, 0) + 1
        self.poke(item.domain)
        return stored

    async def _loop(self, sender: DomainSender) -> None:
        async with trio.open_nursery() as nursery:
            for helper in range(1, self._in_flight):
                nursery.start_soon(self._worker, sender, helper)
            if self._probe is not None:
                nursery.start_soon(self._prober, sender, self._probe)
            await self._worker(sender, 0)

    async def _prober(self, sender: DomainSender, probe: Probe) -> None:
        """Probe ``sender.domain`` every ``PROBE_EVERY`` s while it fails or hangs (see the
        module docstring). Probes overlap: one swallowed by a black hole that has just
        healed does not hold back the next."""
        async with trio.open_nursery() as nursery:
            while True:
                await trio.sleep(PROBE_EVERY)
                if sender.troubled():
                    nursery.start_soon(self._probe_once, sender, probe)

    async def _probe_once(self, sender: DomainSender, probe: Probe) -> None:
        sent = trio.current_time()
        up = False
        with trio.move_on_after(PROBE_TIMEOUT):
            up = await probe(sender.domain)
        result = "up" if up else "down"
        self.metrics.count("federation_probes", domain=sender.domain, result=result)
        if not up:
            if sent > sender.last_up:  # not older than an answered one
                sender.unreached = True
            return
        sender.last_up = max(sender.last_up, sent)
        if sender.unreached or sender.backoff.failures:
            abandoned = sender.reached(sent)
            if abandoned:
                self.metrics.count("federation_abandoned", abandoned, domain=sender.domain)
            log.info(
                "federation peer reachable again",
                extra={"domain": sender.domain, "abandoned": abandoned},
            )

    async def _worker(self, sender: DomainSender, number: int) -> None:
        """Send transactions to ``sender.domain``; worker 0 always, the others while a
        backlog lasts and the peer is healthy."""
        while True:
            if number:
                await sender.wait_for_backlog()
            try:
                sent = await self._send_next(sender)
            except (FederationError, StoreError, WireError) as exc:
                await sender.wait(self._failed(sender, exc))
                continue
            if sent is None:
                if not number:
                    await sender.wait(IDLE_POLL)
            elif sent:
                sender.backoff.reset()
            else:  # the peer asked for every item again (rate-limited, busy): not at once
                await sender.wait(sender.backoff.next())

    def _failed(self, sender: DomainSender, exc: Exception) -> float:
        """Count and log a failed send; the seconds to back off."""
        self.metrics.count("federation_send_failures", domain=sender.domain)
        delay = sender.backoff.next()
        extra = {"domain": sender.domain, "error": str(exc), "retry_in": delay}
        if isinstance(exc, ClockSkew):
            self.metrics.count("federation_clock_skew_refusals", domain=sender.domain)
            extra["skew_s"] = round(exc.skew_ms / 1000, 1)
            log.warning("federation requests refused for clock skew: check NTP", extra=extra)
        else:
            log.warning("federation send failed", extra=extra)
        return delay

    async def _gauge(self, domain: str, batch: list[OutboundItem], in_flight: int) -> None:
        """Set the queue gauge of ``domain`` from the store's count (at most every
        ``GAUGE_EVERY`` seconds: counting costs a scan of the queue); gone when empty."""
        if not batch:
            if not in_flight:
                self.metrics.queue_depths.pop(domain, None)
            return
        await self._count(domain, len(batch))

    async def _count(self, domain: str, at_least: int = 0, *, now_or_never: bool = False) -> None:
        now = self._clock()
        if not now_or_never and now - self._counted.get(domain, -GAUGE_EVERY) < GAUGE_EVERY:
            return
        self._counted[domain] = now
        depth = max((await self.store.outbound_depths(self._now())).get(domain, 0), at_least)
        if depth:
            self.metrics.queue_depths[domain] = depth
        else:
            self.metrics.queue_depths.pop(domain, None)

    async def _send_next(self, sender: DomainSender) -> bool | None:
        """Send the next transaction: ``None`` if there is none to send, ``False`` if the
        peer asked to retry every item, else ``True`` (it took or refused some, or the
        request was abandoned because a probe found the domain back: go on at once)."""
        domain = sender.domain
        # One take at a time, so that a transaction another worker just took is in
        # ``busy`` before the next take (else both would send it).
        async with sender.taking:
            txn, items = await self.store.outbound_batch(
                domain,
                secrets.token_bytes(16),
                MAX_TXN_ITEMS,
                MAX_TXN_BYTES,
                self._now(),
                frozenset(sender.busy),
            )
            if items:
                sender.busy.add(txn)
        size = sum(len(i.layer) for i in items)
        sender.took(len(items) >= MAX_TXN_ITEMS or 2 * size >= MAX_TXN_BYTES)
        try:
            await self._gauge(domain, items, len(sender.busy))
            if not items:
                return None
            return await self._send_txn_items(sender, txn, items)
        finally:
            sender.busy.discard(txn)
            if items and not sender.busy and not sender.backlog:
                # the last transaction of a burst: the gauge may lag behind the queue
                with contextlib.suppress(StoreError):
                    await self._count(domain, now_or_never=True)

    async def _send_txn_items(
        self, sender: DomainSender, txn: bytes, items: list[OutboundItem]
    ) -> bool:
        domain = sender.domain
        body = encode(
            Transaction(
                origin=self.own_domain,
                destination=domain,
                items=tuple(TransactionItem(i.eid, i.expires, i.layer) for i in items),
            )
        )
        answer = b""
        with sender.request() as request:
            answer = await self._send_txn(domain, SEND_PATH + txn.hex(), body)
        if request.cancelled_caught:  # the same txn id goes again (the next take)
            return True
        result = decode(answer, TransactionResult)
        if result.txn_id != txn or len(result.results) != len(items):
            raise FederationError(f"{domain} answered another transaction")
        retry = [i.eid for i, code in zip(items, result.results, strict=True) if code == ITEM_RETRY]
        await self.store.outbound_done(domain, txn, retry)
        accepted = sum(code == ITEM_OK for code in result.results)
        self.metrics.count("federation_sent", accepted, domain=domain)
        refused = len(items) - accepted - len(retry)
        if refused:
            self.metrics.count("federation_dropped", refused, domain=domain)
        return len(retry) < len(items)
