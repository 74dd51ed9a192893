"""node.fed.outbound: the sender of one destination, over a MemoryStore, with the peer
replaced by a function that answers transactions (the transport is tested in
tests/integration/test_federation.py). The clock is trio's mock clock."""

from __future__ import annotations

from collections.abc import Callable

import trio
import trio.testing

from federation.errors import FederationError
from node.fed.outbound import PROBE_EVERY, PROBE_TIMEOUT, SEND_PATH, Outbound, Probe
from node.metrics import Metrics
from node.store import MemoryStore
from node.store.base import OutboundItem
from wire import decode, encode
from wire.federation import ITEM_OK, ITEM_RETRY, Transaction, TransactionResult

PEER = "b.example"
NOW_S = 1_700_000_000.0
HOUR_MS = 3_600_000


class Peer:
    """Answers every item ``ITEM_OK`` after ``delay`` seconds, or fails while ``down``;
    records what it took and how many transactions were in flight at once."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.down = False
        self.took: list[bytes] = []
        self.txns: list[bytes] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self.retry_once: set[bytes] = set()
        self.hole = False  # requests sent meanwhile are swallowed: never answered
        self.probes = 0
        self.sent: list[bytes] = []  # every request's txn id, answered or not

    async def probe(self, domain: str) -> bool:
        """The hello: answered at once when the peer is up, never in a black hole."""
        assert domain == PEER
        self.probes += 1
        if self.hole:
            await trio.sleep_forever()
        return not self.down

    async def send(self, domain: str, path: str, body: bytes) -> bytes:
        assert domain == PEER
        txn = bytes.fromhex(path.removeprefix(SEND_PATH))
        self.sent.append(txn)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if self.hole:
                await trio.sleep_forever()
            await trio.sleep(self.delay)
            if self.down:
                raise FederationError("connection refused")
            items = decode(body, Transaction).items
            results = []
            for item in items:
                if item.eid in self.retry_once:
                    self.retry_once.discard(item.eid)
                    results.append(ITEM_RETRY)
                else:
                    self.took.append(item.eid)
                    results.append(ITEM_OK)
            self.txns.append(txn)
            return encode(TransactionResult(txn, tuple(results)))
        finally:
            self.in_flight -= 1


async def _queue(outbound: Outbound, count: int) -> list[bytes]:
    eids = [n.to_bytes(16, "big") for n in range(count)]
    for eid in eids:
        item = OutboundItem(PEER, eid, int(NOW_S * 1000) + HOUR_MS, b"L" * 64)
        assert await outbound.queue(item)
    return eids


def _outbound(
    store: MemoryStore, peer: Peer, in_flight: int, probe: Probe | None = None, cap: float = 10.0
) -> Outbound:
    return Outbound("a.example", store, peer.send, Metrics(), lambda: NOW_S, cap, in_flight, probe)


async def _until(check: Callable[[], bool], seconds: float) -> None:
    """Poll ``check`` (state the peer's tasks change) until true, at most ``seconds``."""
    with trio.fail_after(seconds):
        while not check():  # noqa: ASYNC110 - polled state, no event to wait on
            await trio.sleep(0.01)


async def test_a_backlog_is_sent_several_transactions_at_a_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store, peer = MemoryStore(), Peer(delay=0.05)
    outbound = _outbound(store, peer, in_flight=4)
    async with trio.open_nursery() as nursery:
        await nursery.start(outbound.run)
        eids = await _queue(outbound, 1000)
        peer.retry_once = set(eids[::97])
        await _until(lambda: len(peer.took) == len(eids), 60)
        await trio.sleep(1)  # nothing more comes
        nursery.cancel_scope.cancel()
    assert sorted(peer.took) == sorted(eids)  # each exactly once, the retried ones too
    assert peer.most_in_flight == 4
    assert await store.outbound_depths(int(NOW_S * 1000)) == {}


async def test_a_failing_peer_gets_one_transaction_at_a_time_and_the_same_ids(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store, peer = MemoryStore(), Peer(delay=0.01)
    peer.down = True
    outbound = _outbound(store, peer, in_flight=4)
    async with trio.open_nursery() as nursery:
        await nursery.start(outbound.run)
        eids = await _queue(outbound, 450)
        await trio.sleep(120)  # a peer down for two minutes: attempts back off
        assert peer.most_in_flight == 1
        peer.down = False
        outbound.heard_from(PEER)  # it is back and calls us: the backoff ends at once
        await _until(lambda: len(peer.took) == len(eids), 30)
        nursery.cancel_scope.cancel()
    assert sorted(peer.took) == sorted(eids)
    assert len(set(peer.txns)) == len(peer.txns)


async def test_one_in_flight_keeps_the_queue_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store, peer = MemoryStore(), Peer(delay=0.02)
    outbound = _outbound(store, peer, in_flight=1)
    async with trio.open_nursery() as nursery:
        await nursery.start(outbound.run)
        eids = await _queue(outbound, 300)
        await _until(lambda: len(peer.took) == len(eids), 30)
        nursery.cancel_scope.cancel()
    assert peer.took == eids
    assert peer.most_in_flight == 1


async def _resume_after_heal(peer: Peer, outbound: Outbound, store: MemoryStore) -> float:
    """Queue items while the peer is down or a black hole, heal it: seconds until the peer
    took them all."""
    async with trio.open_nursery() as nursery:
        await nursery.start(outbound.run)
        eids = await _queue(outbound, 50)
        await trio.sleep(120)
        assert not peer.took
        peer.down = peer.hole = False
        healed = trio.current_time()
        await _until(lambda: len(peer.took) == len(eids), 600)
        took = trio.current_time() - healed
        await trio.sleep(1)  # the last answer is recorded in the store
        nursery.cancel_scope.cancel()
    assert sorted(peer.took) == sorted(eids)
    assert await store.outbound_depths(int(NOW_S * 1000)) == {}
    return took


async def test_a_probe_ends_a_long_backoff_once_the_peer_answers(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store, peer = MemoryStore(), Peer(delay=0.01)
    peer.down = True
    outbound = _outbound(store, peer, 4, peer.probe, cap=300.0)
    took = await _resume_after_heal(peer, outbound, store)
    assert took <= PROBE_EVERY + 0.5
    assert peer.probes >= 120 / PROBE_EVERY / 2  # probed all along, not only at the end


async def test_without_a_probe_the_backoff_keeps_a_healed_link_idle(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """What the probe is for: the same outage, no probe (the transactions' backoff alone)."""
    store, peer = MemoryStore(), Peer(delay=0.01)
    peer.down = True
    outbound = _outbound(store, peer, 4, None, cap=300.0)
    assert await _resume_after_heal(peer, outbound, store) > 10


async def test_a_request_swallowed_by_a_black_hole_is_abandoned_and_sent_again(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store, peer = MemoryStore(), Peer(delay=0.01)
    peer.hole = True
    outbound = _outbound(store, peer, 4, peer.probe)
    took = await _resume_after_heal(peer, outbound, store)
    assert took <= PROBE_EVERY + PROBE_TIMEOUT + 0.5
    metrics = outbound.metrics.labeled
    assert sum(metrics["federation_abandoned"].values()) >= 1
    swallowed = peer.sent[0]
    assert peer.sent.count(swallowed) == 2  # the same transaction id, sent again
    assert swallowed in peer.txns
    assert len(peer.txns) == len(set(peer.txns))


async def test_a_slow_peer_that_answers_probes_is_never_abandoned(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store, peer = MemoryStore(), Peer(delay=30.0)  # every transaction takes 30 s
    outbound = _outbound(store, peer, 1, peer.probe)
    async with trio.open_nursery() as nursery:
        await nursery.start(outbound.run)
        eids = await _queue(outbound, 250)
        await _until(lambda: len(peer.took) == len(eids), 600)
        nursery.cancel_scope.cancel()
    assert sorted(peer.took) == sorted(eids)
    assert peer.probes > 0  # it was probed while a request hung
    assert "federation_abandoned" not in outbound.metrics.labeled
    assert len(peer.txns) == len(set(peer.txns))
