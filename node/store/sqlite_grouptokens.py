"""The SQLite backend's :class:`~node.store.ports.GroupTokens` (table ``group_tokens``,
``node.store.sqlite_schema`` version 6)."""

from __future__ import annotations

import sqlite3
from functools import partial

from node.store.sqlite_ops import SqliteParts, execute, select


class SqliteGroupTokens(SqliteParts):
    """Group token verifiers, one row per (address, verifier); a put is one writer
    operation (atomic with its revocation and its limit check)."""

    async def put_group_token(
        self, address: str, verifier: bytes, replaces: bytes | None, limit: int
    ) -> bool:
        done: bool = await self.writer.run(
            partial(_put_group_token, address, verifier, replaces, limit)
        )
        return done

    async def revoke_group_token(self, address: str, verifier: bytes) -> bool:
        changed = await self.writer.run(
            partial(
                execute,
                "DELETE FROM group_tokens WHERE address = ? AND verifier = ?",
                (address, verifier),
            )
        )
        return changed == 1

    async def has_group_token(self, address: str, verifier: bytes) -> bool:
        rows = await self.readers.run(
            partial(
                select,
                "SELECT 1 FROM group_tokens WHERE address = ? AND verifier = ?",
                (address, verifier),
            )
        )
        return bool(rows)

    async def count_group_tokens(self, address: str) -> int:
        rows = await self.readers.run(
            partial(select, "SELECT count(*) FROM group_tokens WHERE address = ?", (address,))
        )
        return int(rows[0][0])


# --- operations, run on the writer thread -----------------------------------------------


def _put_group_token(
    address: str, verifier: bytes, replaces: bytes | None, limit: int, conn: sqlite3.Connection
) -> bool:
    rows = conn.execute(
        "SELECT verifier FROM group_tokens WHERE address = ?", (address,)
    ).fetchall()
    live = {bytes(row[0]) for row in rows}
    if replaces is not None:
        live.discard(replaces)
    live.add(verifier)
    if len(live) > limit:
        return False
    if replaces is not None and replaces != verifier:
        conn.execute(
            "DELETE FROM group_tokens WHERE address = ? AND verifier = ?", (address, replaces)
        )
    conn.execute(
        "INSERT INTO group_tokens (address, verifier) VALUES (?, ?) ON CONFLICT DO NOTHING",
        (address, verifier),
    )
    return True
