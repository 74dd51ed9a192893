"""The Redis backend's :class:`~node.store.ports.GroupTokens` (the scripts and key in
``node.store.redis_scripts_grouptokens``): every replica checks the same verifiers."""

from __future__ import annotations

from node.store.redis_parts import RedisParts


class RedisGroupTokens(RedisParts):
    """Group token verifiers as one set per address; each write is one script."""

    def _group_tokens_key(self, address: str) -> bytes:
        return self._key("gtok:", address)

    async def put_group_token(
        self, address: str, verifier: bytes, replaces: bytes | None, limit: int
    ) -> bool:
        keys = [self._group_tokens_key(address)]
        args = [verifier, replaces or b"", limit]
        return bool(await self._run("put_group_token", keys, args, write=True))

    async def revoke_group_token(self, address: str, verifier: bytes) -> bool:
        keys = [self._group_tokens_key(address)]
        return bool(await self._run("revoke_group_token", keys, [verifier], write=True))

    async def has_group_token(self, address: str, verifier: bytes) -> bool:
        key = self._group_tokens_key(address)
        found = await self._redis.read("has_group_token", lambda c: c.sismember(key, verifier))
        return bool(found)

    async def count_group_tokens(self, address: str) -> int:
        key = self._group_tokens_key(address)
        count = await self._redis.read("count_group_tokens", lambda c: c.scard(key))
        return int(count)
