"""The in-process :class:`~node.store.ports.MediaPlacement`, a base of both
:class:`~node.store.memory.MemoryStore` and :class:`~node.store.sqlite.SqliteStore`, each of
which creates the table (``node.store.placement.PlacementTable``) and closes it.

A SQLite node is one process, so the placement is that process's own: nothing goes to
the file, and a restart (new sockets, a new replica id) starts with an empty table.
"""

from __future__ import annotations

import trio

from node.store.base import MediaAddress
from node.store.errors import StoreClosed
from node.store.placement import PlacementTable


class LocalMediaPlacement:
    """Media addresses and room holds in this process's memory."""

    _placement: PlacementTable

    async def _enter_placement(self) -> PlacementTable:
        await trio.lowlevel.checkpoint()
        if self._placement.closed:
            raise StoreClosed("the store is closed")
        return self._placement

    async def announce_media(
        self, replica: bytes, address: str, port: int, now: int, ttl_ms: int
    ) -> None:
        (await self._enter_placement()).announce(replica, address, port, now, ttl_ms)

    async def media_address(self, replica: bytes, now: int) -> MediaAddress | None:
        return (await self._enter_placement()).lookup(replica, now)

    async def withdraw_media(self, replica: bytes) -> bool:
        return (await self._enter_placement()).withdraw(replica)

    async def place_room(self, room: bytes, replica: bytes, now: int, ttl_ms: int) -> bytes:
        return (await self._enter_placement()).place(room, replica, now, ttl_ms)

    async def renew_room(self, room: bytes, replica: bytes, now: int, ttl_ms: int) -> bool:
        return (await self._enter_placement()).renew(room, replica, now, ttl_ms)

    async def release_room(self, room: bytes, replica: bytes) -> bool:
        return (await self._enter_placement()).release(room, replica)

    async def room_holder(self, room: bytes, now: int) -> bytes | None:
        return (await self._enter_placement()).holder(room, now)
