"""The SQLite backend's :class:`~node.store.ports.CallLegs` (table ``call_legs``,
``node.store.sqlite_schema`` version 5)."""

from __future__ import annotations

import sqlite3
from functools import partial
from typing import Final

from node.store.base import LegRecord
from node.store.sqlite_ops import SqliteParts, execute, select

_COLUMNS: Final = "leg_id, replica, secret_hash, expires, claimed"


class SqliteCallLegs(SqliteParts):
    """Call legs, one row each; a claim is one writer operation (atomic)."""

    async def add_leg(self, leg: LegRecord) -> bool:
        changed = await self.writer.run(
            partial(
                execute,
                f"INSERT INTO call_legs ({_COLUMNS}) VALUES (?, ?, ?, ?, ?)"  # noqa: S608
                " ON CONFLICT (leg_id) DO NOTHING",
                (leg.leg_id, leg.replica, leg.secret_hash, leg.expires, int(leg.claimed)),
            )
        )
        return changed == 1

    async def leg(self, leg_id: bytes, now: int) -> LegRecord | None:
        return await self.readers.run(partial(_live_leg, leg_id, now))

    async def claim_leg(self, leg_id: bytes, now: int) -> LegRecord | None:
        return await self.writer.run(partial(_claim_leg, leg_id, now))

    async def release_leg(self, leg_id: bytes, now: int) -> bool:
        changed = await self.writer.run(
            partial(
                execute,
                "UPDATE call_legs SET claimed = 0 WHERE leg_id = ? AND expires > ? AND claimed = 1",
                (leg_id, now),
            )
        )
        return changed == 1

    async def renew_leg(self, leg_id: bytes, replica: bytes, expires: int, now: int) -> bool:
        changed = await self.writer.run(
            partial(
                execute,
                "UPDATE call_legs SET replica = ?, expires = ? WHERE leg_id = ? AND expires > ?",
                (replica, expires, leg_id, now),
            )
        )
        return changed == 1

    async def delete_leg(self, leg_id: bytes) -> bool:
        changed = await self.writer.run(
            partial(execute, "DELETE FROM call_legs WHERE leg_id = ?", (leg_id,))
        )
        return changed == 1

    async def sweep_legs(self, now: int) -> int:
        deleted: int = await self.writer.run(
            partial(execute, "DELETE FROM call_legs WHERE expires <= ?", (now,))
        )
        return deleted

    async def count_legs(self, now: int) -> int:
        rows = await self.readers.run(
            partial(select, "SELECT count(*) FROM call_legs WHERE expires > ?", (now,))
        )
        return int(rows[0][0])


# --- operations, run on the worker threads ---------------------------------------------


def _live_leg(leg_id: bytes, now: int, conn: sqlite3.Connection) -> LegRecord | None:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM call_legs WHERE leg_id = ? AND expires > ?",  # noqa: S608
        (leg_id, now),
    ).fetchone()
    if row is None:
        return None
    found_id, replica, hashed, expires, claimed = row
    return LegRecord(found_id, replica, hashed, int(expires), bool(claimed))


def _claim_leg(leg_id: bytes, now: int, conn: sqlite3.Connection) -> LegRecord | None:
    found = _live_leg(leg_id, now, conn)
    if found is not None and not found.claimed:
        conn.execute("UPDATE call_legs SET claimed = 1 WHERE leg_id = ?", (leg_id,))
    return found
