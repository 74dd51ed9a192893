"""Rate limits shared by cluster replicas (``node.clusterlimits``) on a real redis-server:
each "replica" has its own RedisStore and limiter, on one key prefix; the clock is set by
the test, so refills happen only when it says."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import coredis

from node.clusterlimits import SharedLimits
from node.limits import RateLimiter
from node.store import RedisStore
from tests.node.store.contract import fresh_prefix, redis_server
from tests.redisproc import RedisServer

__all__ = ["redis_server"]

RATE, BURST = 10.0, 20.0
T0 = 1_700_000_000.25


def tokens(limiter: RateLimiter, key: str, now: float) -> float:
    """The tokens in ``key``'s bucket at ``now`` (a probe too large to be admitted)."""
    probe = 1e9
    return probe - limiter.take(key, now, probe) * limiter.rate


def admitted(limiter: RateLimiter, key: str, now: float, n: int) -> int:
    return sum(limiter.take(key, now) == 0.0 for _ in range(n))


@dataclass
class Clock:
    now: float = T0

    def __call__(self) -> float:
        return self.now


@dataclass
class Replica:
    store: RedisStore
    limiter: RateLimiter
    shared: SharedLimits
    prefix: str


@asynccontextmanager
async def replicas(url: str, n: int, clock: Clock) -> AsyncIterator[list[Replica]]:
    prefix = fresh_prefix()
    out: list[Replica] = []
    try:
        for _ in range(n):
            store = await RedisStore.open(url, prefix=prefix, retry_for=1.0)
            limiter = RateLimiter(RATE, BURST)
            shared = SharedLimits(store, {"ip": limiter}, clock)
            out.append(Replica(store, limiter, shared, prefix))
        yield out
    finally:
        for r in out:
            await r.store.aclose()


def test_debit_takes_what_was_spent_elsewhere_down_to_minus_burst() -> None:
    limiter = RateLimiter(RATE, BURST)
    limiter.debit("k", 5, T0)
    assert tokens(limiter, "k", T0) == BURST - 5
    limiter.debit("k", 100, T0)
    assert tokens(limiter, "k", T0) == -BURST  # bounded: the wait is at most 2 x burst / rate
    assert limiter.take("k", T0) == (1 + BURST) / RATE
    assert tokens(limiter, "k", T0 + 4.0) == 20.0  # refilled, to burst at most


def test_spending_is_tracked_only_when_asked() -> None:
    limiter = RateLimiter(RATE, BURST)
    limiter.take("k", T0)
    assert limiter.drain_spent() == {}
    limiter.track = True
    limiter.take("k", T0)
    limiter.take("k", T0, 2.0)
    limiter.take("j", T0, 1e9)  # refused: not spent
    assert limiter.drain_spent() == {"k": 3.0}
    assert limiter.drain_spent() == {}


async def test_one_allowance_across_replicas(redis_server: RedisServer) -> None:
    """A client that spread its requests and used its burst is refused by every replica
    after one sync; without the sync each replica would admit a burst of its own."""
    clock = Clock()
    async with replicas(redis_server.url, 3, clock) as (a, b, c):
        assert admitted(b.limiter, "10.0.0.1", clock.now, 1) == 1
        assert admitted(c.limiter, "10.0.0.1", clock.now, 1) == 1
        assert admitted(a.limiter, "10.0.0.1", clock.now, 30) == BURST
        assert admitted(b.limiter, "10.0.0.2", clock.now, 5) == 5  # another client
        for r in (a, b, c):
            await r.shared.sync()
        assert b.limiter.take("10.0.0.1", clock.now) > 0
        assert c.limiter.take("10.0.0.1", clock.now) > 0
        assert tokens(a.limiter, "10.0.0.2", clock.now) == BURST  # a never saw it
        assert tokens(c.limiter, "10.0.0.1", clock.now) == BURST - 1 - 20 - 1


async def test_a_client_new_to_a_replica_pays_its_debt_there(redis_server: RedisServer) -> None:
    """A client that moves to another replica gets at most one burst there before that
    replica's next sync, which then charges what the client spent elsewhere."""
    clock = Clock()
    async with replicas(redis_server.url, 2, clock) as (a, b):
        assert admitted(a.limiter, "acct", clock.now, 20) == 20
        await a.shared.sync()
        assert admitted(b.limiter, "acct", clock.now, 3) == 3  # new here: a fresh bucket
        await b.shared.sync()
        assert tokens(b.limiter, "acct", clock.now) == BURST - 3 - 20
        assert b.limiter.take("acct", clock.now) > 0


async def test_a_spread_overspend_is_paid_back_everywhere(redis_server: RedisServer) -> None:
    """Two replicas admit 15 each in the same second (30 against a burst of 20): after the
    sync both buckets are in debt and refuse until the overspend has refilled."""
    clock = Clock()
    async with replicas(redis_server.url, 2, clock) as (a, b):
        assert admitted(a.limiter, "acct", clock.now, 15) == 15
        assert admitted(b.limiter, "acct", clock.now, 15) == 15
        await a.shared.sync()
        await b.shared.sync()
        await a.shared.sync()  # a sees b's spend, written after a's first sync
        assert tokens(a.limiter, "acct", clock.now) == BURST - 30
        assert tokens(b.limiter, "acct", clock.now) == BURST - 30
        clock.now += 1.0  # +10 tokens: still in debt
        assert a.limiter.take("acct", clock.now) > 0
        clock.now += 0.5  # +5 more: 5 left
        assert admitted(b.limiter, "acct", clock.now, 10) == 5


async def test_each_spend_is_debited_once_across_windows(redis_server: RedisServer) -> None:
    """Spends shared in successive syncs, within one window and across its boundary, reach
    the other replica exactly once (a burst large enough that nothing is clamped)."""
    clock = Clock()
    async with replicas(redis_server.url, 2, clock) as (a, b):
        a.limiter.burst = b.limiter.burst = 1000.0
        a.limiter.rate = b.limiter.rate = 1e-9  # no refill to blur the count
        b.limiter.take("k", clock.now, 0.0)  # b has a bucket for k, full
        for step in range(6):
            assert admitted(a.limiter, "k", clock.now, 7) == 7
            await a.shared.sync()
            await b.shared.sync()
            clock.now += 0.4  # two or three syncs per window
            assert round(tokens(b.limiter, "k", clock.now), 6) == 1000.0 - 7 * (step + 1)


async def test_keys_reach_redis_only_hashed(redis_server: RedisServer) -> None:
    clock = Clock()
    async with replicas(redis_server.url, 1, clock) as (a,):
        a.limiter.take("192.0.2.77", clock.now)
        a.limiter.take("alice@agency-a.example", clock.now)
        await a.shared.sync()
        client = coredis.Redis.from_url(redis_server.url)
        async with client:
            found = [k async for k in client.scan_iter(match=f"{a.prefix}rl:*")]
            values = [await client.hgetall(k) for k in found if not k.endswith(b"rl:salt")]
        assert len(found) == 3  # the salt and one counter per key
        assert len(values) == 2
        for key in found:
            assert b"192.0.2.77" not in key
            assert b"alice" not in key
