"""The Redis backend's :class:`~node.store.ports.MediaPlacement` (scripts and keys in
``node.store.redis_scripts_placement``): every replica of a cluster sees the same media
addresses and the same holder of each room; a claim is one script, so of two replicas
claiming one room at once exactly one wins."""

from __future__ import annotations

from typing import Any, Final

from node.store.base import MediaAddress
from node.store.placement import check_replica, check_room, check_time, expiry, media_address
from node.store.redis_parts import RedisParts

BACKSTOP_GRACE_MS: Final = 60_000
"""How long after its end (by Redis' clock) a media or room key is deleted by Redis."""


class RedisMediaPlacement(RedisParts):
    """Media addresses and room holds as small hashes; each write is one script."""

    def _media_key(self, replica: bytes) -> bytes:
        return self._key("media:", check_replica(replica))

    def _room_key(self, room: bytes) -> bytes:
        return self._key("room:", check_room(room))

    async def announce_media(
        self, replica: bytes, address: str, port: int, now: int, ttl_ms: int
    ) -> None:
        found, expires = media_address(address, port), expiry(now, ttl_ms)
        args = [found.address, found.port, expires, ttl_ms + BACKSTOP_GRACE_MS]
        await self._run("announce_media", [self._media_key(replica)], args, write=True)

    async def media_address(self, replica: bytes, now: int) -> MediaAddress | None:
        key, now = self._media_key(replica), check_time(now, "now")
        fields = await self._redis.read("media_address", lambda c: c.hmget(key, ["a", "p", "e"]))
        return _address(fields, now)

    async def withdraw_media(self, replica: bytes) -> bool:
        keys = [self._media_key(replica)]
        return bool(await self._run("withdraw_media", keys, [], write=True))

    async def place_room(self, room: bytes, replica: bytes, now: int, ttl_ms: int) -> bytes:
        keys, args = [self._room_key(room)], _hold_args(replica, now, ttl_ms)
        holder: bytes = await self._run("place_room", keys, args, write=True)
        return holder

    async def renew_room(self, room: bytes, replica: bytes, now: int, ttl_ms: int) -> bool:
        keys, args = [self._room_key(room)], _hold_args(replica, now, ttl_ms)
        return bool(await self._run("renew_room", keys, args, write=True))

    async def release_room(self, room: bytes, replica: bytes) -> bool:
        keys = [self._room_key(room)]
        args = [check_replica(replica)]
        return bool(await self._run("release_room", keys, args, write=True))

    async def room_holder(self, room: bytes, now: int) -> bytes | None:
        key, now = self._room_key(room), check_time(now, "now")
        holder, expires = await self._redis.read("room_holder", lambda c: c.hmget(key, ["h", "e"]))
        return holder if holder is not None and int(expires) > now else None


def _hold_args(replica: bytes, now: int, ttl_ms: int) -> list[Any]:
    expires = expiry(now, ttl_ms)
    return [check_replica(replica), now, expires, ttl_ms + BACKSTOP_GRACE_MS]


def _address(fields: list[Any], now: int) -> MediaAddress | None:
    address, port, expires = fields
    if address is None or int(expires) <= now:
        return None
    return MediaAddress(address.decode("ascii"), int(port))
