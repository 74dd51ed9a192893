"""Rate limits (token buckets keyed by account or client address) and connection counts.

Pure: the caller passes the time (seconds, any monotonic origin). A bucket holds at most
``burst`` tokens and refills at ``rate`` per second; :meth:`RateLimiter.take` spends one
token or says how long to wait. Idle full buckets are dropped by :meth:`RateLimiter.prune`
so the table stays as small as the set of active keys.
"""

from __future__ import annotations

import math


class RateLimiter:
    """Token buckets of one ``rate``/``burst``, one per key.

    Cluster mode (``node.clusterlimits``) sets :attr:`track`: then every spend is also
    added to :attr:`spent`, which the cluster sync drains, and what the other replicas spent
    for a key comes back through :meth:`debit`."""

    __slots__ = ("_buckets", "burst", "rate", "spent", "track")

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, last time)
        self.track = False
        self.spent: dict[str, float] = {}

    def take(self, key: str, now: float, cost: float = 1.0) -> float:
        """Spend ``cost`` tokens of ``key``: 0.0 if allowed, else seconds until it would be."""
        tokens, last = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + max(0.0, now - last) * self.rate)
        if tokens >= cost:
            self._buckets[key] = (tokens - cost, now)
            if self.track:
                self.spent[key] = self.spent.get(key, 0.0) + cost
            return 0.0
        self._buckets[key] = (tokens, now)
        return (cost - tokens) / self.rate

    def take_run(self, key: str, now: float, count: int) -> tuple[int, float]:
        """:meth:`take` of one token ``count`` times at ``now``, in one call: how many
        were allowed (the first ones) and the wait :meth:`take` gives each of the others
        (0.0 if none was refused). The bucket, and :attr:`spent`, end as after the
        ``count`` calls: once the bucket holds less than one token every later call at the
        same ``now`` is refused alike, and subtracting one from a float between one and
        ``2**53`` is exact, so the allowed are ``floor(tokens)`` at most."""
        if count <= 0:
            return 0, 0.0
        tokens, last = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + max(0.0, now - last) * self.rate)
        allowed = min(count, int(tokens)) if tokens >= 1.0 else 0
        tokens -= allowed
        self._buckets[key] = (tokens, now)
        if allowed and self.track:
            self.spent[key] = self.spent.get(key, 0.0) + allowed
        return allowed, 0.0 if allowed == count else (1.0 - tokens) / self.rate

    def debit(self, key: str, amount: float, now: float) -> None:
        """Take ``amount`` tokens that were spent elsewhere (another replica) from ``key``'s
        bucket. The bucket may go below zero, to at most ``-burst``: a key that spent its
        allowance on several replicas at once waits until the whole of it has refilled."""
        if amount <= 0:
            return
        tokens, last = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + max(0.0, now - last) * self.rate)
        self._buckets[key] = (max(-self.burst, tokens - amount), now)

    def keys(self) -> list[str]:
        """The keys with a bucket (the active ones; full idle buckets are pruned)."""
        return list(self._buckets)

    def drain_spent(self) -> dict[str, float]:
        """What was spent per key since the last call."""
        spent, self.spent = self.spent, {}
        return spent

    def prune(self, now: float) -> int:
        """Forget buckets that have refilled completely; the number dropped."""
        full = [
            key
            for key, (tokens, last) in self._buckets.items()
            if tokens + (now - last) * self.rate >= self.burst
        ]
        for key in full:
            del self._buckets[key]
        return len(full)

    def __len__(self) -> int:
        return len(self._buckets)


def retry_after_ms(seconds: float) -> int:
    """A wait in seconds as the whole milliseconds an Error frame carries (at least 1)."""
    return max(1, min(2**32 - 1, math.ceil(seconds * 1000)))


class ConnectionCounter:
    """Live connections per client address, capped at ``limit``."""

    __slots__ = ("_counts", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._counts: dict[str, int] = {}

    def acquire(self, key: str) -> bool:
        count = self._counts.get(key, 0)
        if count >= self.limit:
            return False
        self._counts[key] = count + 1
        return True

    def release(self, key: str) -> None:
        count = self._counts.get(key, 0) - 1
        if count > 0:
            self._counts[key] = count
        else:
            self._counts.pop(key, None)

    def total(self) -> int:
        return sum(self._counts.values())
