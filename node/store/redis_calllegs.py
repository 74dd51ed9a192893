"""The Redis backend's :class:`~node.store.ports.CallLegs` (scripts and keys in
``node.store.redis_scripts_calls``): every replica of a cluster finds every leg here."""

from __future__ import annotations

from typing import Any, Final

from node.store.base import LegRecord
from node.store.redis_parts import RedisParts

SWEEP_CHUNK: Final = 1000


class RedisCallLegs(RedisParts):
    """Call legs as hashes, with an expiry index; each write is one script."""

    def _leg_keys(self, leg_id: bytes) -> list[bytes]:
        return [self._key("leg:", leg_id), self._key("legs:exp")]

    async def add_leg(self, leg: LegRecord) -> bool:
        args = [leg.replica, leg.secret_hash, leg.expires, int(leg.claimed), leg.leg_id]
        return bool(await self._run("add_leg", self._leg_keys(leg.leg_id), args, write=True))

    async def leg(self, leg_id: bytes, now: int) -> LegRecord | None:
        key = self._key("leg:", leg_id)
        fields = await self._redis.read("leg", lambda c: c.hmget(key, ["r", "h", "e", "c"]))
        return _record(leg_id, fields, now)

    async def claim_leg(self, leg_id: bytes, now: int) -> LegRecord | None:
        keys = [self._key("leg:", leg_id)]
        fields = await self._run("claim_leg", keys, [now], write=True)
        return _record(leg_id, fields, now) if fields else None

    async def release_leg(self, leg_id: bytes, now: int) -> bool:
        keys = [self._key("leg:", leg_id)]
        return bool(await self._run("release_leg", keys, [now], write=True))

    async def renew_leg(self, leg_id: bytes, replica: bytes, expires: int, now: int) -> bool:
        args = [replica, expires, now, leg_id]
        return bool(await self._run("renew_leg", self._leg_keys(leg_id), args, write=True))

    async def delete_leg(self, leg_id: bytes) -> bool:
        keys = self._leg_keys(leg_id)
        return bool(await self._run("delete_leg", keys, [leg_id], write=True))

    async def sweep_legs(self, now: int) -> int:
        total = 0
        while True:
            deleted = int(
                await self._run(
                    "sweep_legs",
                    [self._key("legs:exp")],
                    [self._prefix, now, SWEEP_CHUNK],
                    write=True,
                )
            )
            total += deleted
            if deleted < SWEEP_CHUNK:
                return total

    async def count_legs(self, now: int) -> int:
        key = self._key("legs:exp")
        count = await self._redis.read("count_legs", lambda c: c.zcount(key, f"({now}", "+inf"))
        return int(count)


def _record(leg_id: bytes, fields: list[Any], now: int) -> LegRecord | None:
    replica, hashed, expires, claimed = fields
    if replica is None or int(expires) <= now:
        return None
    return LegRecord(leg_id, replica, hashed, int(expires), claimed in (b"1", "1"))
