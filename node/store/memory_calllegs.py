"""The in-memory :class:`~node.store.ports.CallLegs` (a base of
:class:`~node.store.memory.MemoryStore`, which creates the table and the closed flag)."""

from __future__ import annotations

import dataclasses

import trio

from node.store.base import LegRecord
from node.store.errors import StoreClosed


class MemoryCallLegs:
    """Call legs in a dictionary, leg id -> record."""

    _legs: dict[bytes, LegRecord]
    _closed: bool

    async def _enter_legs(self) -> None:
        await trio.lowlevel.checkpoint()
        if self._closed:
            raise StoreClosed("the store is closed")

    def _live_leg(self, leg_id: bytes, now: int) -> LegRecord | None:
        found = self._legs.get(leg_id)
        return found if found is not None and found.expires > now else None

    async def add_leg(self, leg: LegRecord) -> bool:
        await self._enter_legs()
        if leg.leg_id in self._legs:
            return False
        self._legs[leg.leg_id] = leg
        return True

    async def leg(self, leg_id: bytes, now: int) -> LegRecord | None:
        await self._enter_legs()
        return self._live_leg(leg_id, now)

    async def claim_leg(self, leg_id: bytes, now: int) -> LegRecord | None:
        await self._enter_legs()
        found = self._live_leg(leg_id, now)
        if found is not None and not found.claimed:
            self._legs[leg_id] = dataclasses.replace(found, claimed=True)
        return found

    async def release_leg(self, leg_id: bytes, now: int) -> bool:
        await self._enter_legs()
        found = self._live_leg(leg_id, now)
        if found is None or not found.claimed:
            return False
        self._legs[leg_id] = dataclasses.replace(found, claimed=False)
        return True

    async def renew_leg(self, leg_id: bytes, replica: bytes, expires: int, now: int) -> bool:
        await self._enter_legs()
        found = self._live_leg(leg_id, now)
        if found is None:
            return False
        self._legs[leg_id] = dataclasses.replace(found, replica=replica, expires=expires)
        return True

    async def delete_leg(self, leg_id: bytes) -> bool:
        await self._enter_legs()
        return self._legs.pop(leg_id, None) is not None

    async def sweep_legs(self, now: int) -> int:
        await self._enter_legs()
        gone = [leg_id for leg_id, leg in self._legs.items() if leg.expires <= now]
        for leg_id in gone:
            del self._legs[leg_id]
        return len(gone)

    async def count_legs(self, now: int) -> int:
        await self._enter_legs()
        return sum(1 for leg in self._legs.values() if leg.expires > now)
