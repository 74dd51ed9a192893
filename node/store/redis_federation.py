"""The Redis backend's :class:`~node.store.ports.Blobs`,
:class:`~node.store.ports.OutboundQueue` and :class:`~node.store.ports.ReplayGuard`
(scripts in ``node.store.redis_scripts_federation``)."""

from __future__ import annotations

import hmac
from collections.abc import Collection
from typing import Any

from node.store.base import OutboundItem
from node.store.redis_parts import RedisParts


class RedisBlobs(RedisParts):
    """Grants, uploads and downloads; the bytes are a hash field."""

    async def grant_blob(self, blob: bytes, token_hash: bytes, size: int, expires: int) -> None:
        keys = [self._key("blob:", blob), self._key("blobs:exp"), self._key("blobstat")]
        await self._run("grant_blob", keys, [token_hash, size, expires, blob], write=True)

    async def blob_grant(self, blob: bytes, token_hash: bytes, now: int) -> int | None:
        key = self._key("blob:", blob)

        async def read() -> list[Any]:
            async with self._redis.client.pipeline(transaction=False) as pipe:
                fields = pipe.hmget(key, ["t", "s", "e"])
                uploaded = pipe.hexists(key, "d")
            return [*(await fields), await uploaded]

        stored, size, expires, uploaded = await self._redis.call("blob_grant", read)
        if stored is None or uploaded or int(expires) <= now:
            return None
        return int(size) if hmac.compare_digest(stored, token_hash) else None

    async def put_blob(self, blob: bytes, token_hash: bytes, data: bytes, now: int) -> bool:
        keys = [self._key("blob:", blob), self._key("blobstat")]
        return bool(await self._run("put_blob", keys, [token_hash, data, now], write=True))

    async def get_blob(self, blob: bytes, now: int) -> bytes | None:
        key = self._key("blob:", blob)
        expires, data = await self._redis.read("get_blob", lambda c: c.hmget(key, ["e", "d"]))
        if expires is None or int(expires) <= now:
            return None
        found: bytes | None = data
        return found


class RedisOutbound(RedisParts):
    """The federation queue per destination domain: a stream with one consumer group."""

    def _queue_keys(self, domain: str) -> list[bytes]:
        kinds = ("obs:", "obi:", "obx:", "obsid:", "obtx:", "obtxn:")
        return [self._key(kind, domain) for kind in kinds]

    async def outbound_put(self, item: OutboundItem) -> bool:
        keys = [*self._queue_keys(item.domain)[:4], self._key("obdomains")]
        args = [item.eid, item.layer, item.expires, item.domain]
        return bool(await self._run("outbound_put", keys, args, write=True))

    async def outbound_batch(
        self,
        domain: str,
        txn: bytes,
        limit: int,
        max_bytes: int,
        now: int,
        busy: Collection[bytes] = (),
    ) -> tuple[bytes, list[OutboundItem]]:
        args = [txn, max(limit, 1), max_bytes, now, self.replica_id, self.outbound_lease_ms]
        args += list(busy)
        flat = await self._run("outbound_batch", self._queue_keys(domain), args, write=True)
        items = [
            OutboundItem(domain, flat[i], int(flat[i + 1]), flat[i + 2])
            for i in range(1, len(flat), 3)
        ]
        return flat[0], items

    async def outbound_done(self, domain: str, txn: bytes, retry: list[bytes]) -> int:
        keys = self._queue_keys(domain)
        return int(await self._run("outbound_done", keys, [txn, *retry], write=True))

    async def outbound_depths(self, now: int) -> dict[str, int]:
        keys = [self._key("obdomains")]
        flat = await self._run("outbound_depths", keys, [self._prefix, now], write=False)
        return {_text(flat[i]): int(flat[i + 1]) for i in range(0, len(flat), 2)}


class RedisReplay(RedisParts):
    """Transaction results and nonces of peer domains."""

    async def txn_result(self, origin: str, txn: bytes) -> bytes | None:
        key, member = self._key("txn"), _origin_member(origin, txn)
        found: bytes | None = await self._redis.read("txn_result", lambda c: c.hget(key, member))
        return found

    async def record_txn(self, origin: str, txn: bytes, result: bytes, expires: int) -> None:
        keys = [self._key("txn"), self._key("txn:exp")]
        args = [_origin_member(origin, txn), result, expires]
        await self._run("record_txn", keys, args, write=True)

    async def remember_nonce(self, origin: str, nonce: bytes, expires: int) -> bool:
        keys = [self._key("nonce")]
        args = [_origin_member(origin, nonce), expires]
        return bool(await self._run("remember_nonce", keys, args, write=True))


def _origin_member(origin: str, value: bytes) -> bytes:
    raw = origin.encode()
    return len(raw).to_bytes(2, "big") + raw + value


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
