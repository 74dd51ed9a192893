"""Rate limits shared by the replicas of a cluster (DESIGN section 7).

    limits = SharedLimits(store, relay.limiters(), relay.clock)   # store: a RedisStore
    nursery.start_soon(limits.run)

Each replica keeps its token buckets in memory (``node.limits.RateLimiter``): a request
is admitted or refused without a Redis round trip. Once a second (``SYNC_INTERVAL``) a
replica adds what it spent per key to a counter in Redis, in one script for all its active
keys, and gets back what the *other* replicas spent for those keys in the current and the
previous one-second window; that amount is taken from its own buckets
(:meth:`RateLimiter.debit`). So a client that spreads its requests over three replicas
(or moves to another one) draws on one allowance, not three: within a second of the
overspend every replica's bucket for that key is empty, and it stays refused until the
whole overspend has refilled.

What this is not: an exact global bucket. A key can overspend by what the replicas admit
in the second before they next sync (at most ``replicas x burst`` plus a second of rate),
and a failed sync (no primary during a failover) just skips that second's sharing.

Keys (account addresses, client IPs) are not written to Redis as they are: each is a keyed
BLAKE2b hash under a salt the replicas share (``<prefix>rl:salt``), and every counter
expires ``WINDOW_TTL_MS`` after its window.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping
from typing import Final

import trio

from node.limits import RateLimiter
from node.store import RedisStore, StoreError

log = logging.getLogger("sealrelay.node.cluster")

SYNC_INTERVAL: Final = 1.0
"""Seconds between two syncs, and the length of a counting window."""
WINDOW_TTL_MS: Final = 10_000
MAX_ENTRIES: Final = 2_000
"""Keys per script call; more active keys are shared in several calls."""
KEY_HASH_BYTES: Final = 16


class SharedLimits:
    """The sync of ``limiters`` (name -> limiter) with the other replicas through ``store``.

    ``clock`` is the limiters' clock, Unix seconds (windows are counted on it, so replicas
    share windows as far as their clocks agree)."""

    def __init__(
        self,
        store: RedisStore,
        limiters: Mapping[str, RateLimiter],
        clock: Callable[[], float],
    ) -> None:
        self._store = store
        self._limiters = dict(limiters)
        self._clock = clock
        self._salt = b""
        # (limiter, key) -> (window, others' spend in window - 1, in window) as last debited
        self._seen: dict[tuple[str, str], tuple[int, float, float]] = {}
        for limiter in self._limiters.values():
            limiter.track = True

    def key_hash(self, key: str) -> str:
        return hashlib.blake2b(key.encode(), key=self._salt, digest_size=KEY_HASH_BYTES).hexdigest()

    async def run(self) -> None:
        while True:
            await trio.sleep(SYNC_INTERVAL)
            try:
                await self.sync()
            except StoreError as exc:
                log.warning("rate-limit sync failed", extra={"error": str(exc)})

    async def sync(self) -> int:
        """Share this second's spending and take the others'; the number of keys debited."""
        if not self._salt:
            self._salt = await self._store.rate_salt()
        window = int(self._clock() // SYNC_INTERVAL)
        entries: list[tuple[str, str, float]] = []
        for name, limiter in self._limiters.items():
            spent = limiter.drain_spent()
            for key in spent.keys() | set(limiter.keys()):
                entries.append((name, key, spent.get(key, 0.0)))
        debited = 0
        seen: dict[tuple[str, str], tuple[int, float, float]] = {}
        for start in range(0, len(entries), MAX_ENTRIES):
            chunk = entries[start : start + MAX_ENTRIES]
            others = await self._store.share_rates(
                window,
                [(name, self.key_hash(key).encode(), amount) for name, key, amount in chunk],
                WINDOW_TTL_MS,
            )
            now = self._clock()
            for (name, key, _), (before, current) in zip(chunk, others, strict=True):
                amount = self._unseen(name, key, window, before, current)
                seen[name, key] = (window, before, current)
                if amount > 0:
                    self._limiters[name].debit(key, amount, now)
                    debited += 1
        self._seen = seen
        return debited

    def _unseen(self, name: str, key: str, window: int, before: float, current: float) -> float:
        """What the others spent for ``key`` that this replica has not yet debited."""
        last = self._seen.get((name, key))
        if last is None:
            return before + current
        last_window, last_before, last_current = last
        if last_window == window:
            return (before - last_before) + (current - last_current)
        if last_window == window - 1:
            return (before - last_current) + current
        return before + current
