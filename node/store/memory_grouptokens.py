"""The in-memory :class:`~node.store.ports.GroupTokens` (a base of
:class:`~node.store.memory.MemoryStore`, which creates the table and the closed flag)."""

from __future__ import annotations

import trio

from node.store.errors import StoreClosed


class MemoryGroupTokens:
    """Group token verifiers in a dictionary, address -> set of verifiers."""

    _group_tokens: dict[str, set[bytes]]
    _closed: bool

    async def _enter_group_tokens(self) -> None:
        await trio.lowlevel.checkpoint()
        if self._closed:
            raise StoreClosed("the store is closed")

    async def put_group_token(
        self, address: str, verifier: bytes, replaces: bytes | None, limit: int
    ) -> bool:
        await self._enter_group_tokens()
        live = set(self._group_tokens.get(address, ()))
        if replaces is not None:
            live.discard(replaces)
        live.add(verifier)
        if len(live) > limit:
            return False
        self._group_tokens[address] = live
        return True

    async def revoke_group_token(self, address: str, verifier: bytes) -> bool:
        await self._enter_group_tokens()
        live = self._group_tokens.get(address)
        if live is None or verifier not in live:
            return False
        live.discard(verifier)
        if not live:
            del self._group_tokens[address]
        return True

    async def has_group_token(self, address: str, verifier: bytes) -> bool:
        await self._enter_group_tokens()
        return verifier in self._group_tokens.get(address, ())

    async def count_group_tokens(self, address: str) -> int:
        await self._enter_group_tokens()
        return len(self._group_tokens.get(address, ()))
