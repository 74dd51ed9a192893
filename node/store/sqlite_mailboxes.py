"""The SQLite backend's :class:`~node.store.ports.Mailboxes`: envelopes (a fan-out's body
once, in ``shared_bodies``), each write one operation of the writer's group commit."""

from __future__ import annotations

import sqlite3
from functools import partial
from typing import Final

import trio

from node.store.base import StoredEnvelope
from node.store.sqlite_ops import SqliteParts, select

_SELECT_PENDING: Final = (
    "SELECT mailbox, eid, seq, ts, expires, origin, sender,"
    " CASE WHEN shared IS NULL THEN body"
    " ELSE (SELECT s.body FROM shared_bodies AS s WHERE s.id = shared) END"
    " FROM envelopes"
    " WHERE mailbox = ? AND seq > ? AND body IS NOT NULL AND expires > ? ORDER BY seq LIMIT ?"
)


class SqliteMailboxes(SqliteParts):
    """Enqueue (one, many, shared), pending, count and ack."""

    async def enqueue(self, envelope: StoredEnvelope) -> tuple[bool, int]:
        return await self.writer.run(partial(_enqueue, envelope))

    async def enqueue_shared(
        self, body: bytes, envelopes: list[StoredEnvelope]
    ) -> list[tuple[bool, int]]:
        if not envelopes:
            await trio.lowlevel.checkpoint()
            return []
        return await self.writer.run(partial(_enqueue_shared, body, envelopes))

    async def enqueue_shared_many(
        self, items: list[tuple[bytes, list[StoredEnvelope]]]
    ) -> list[list[tuple[bool, int]]]:
        if not any(envelopes for _, envelopes in items):
            await trio.lowlevel.checkpoint()
            return [[] for _ in items]
        return await self.writer.run(partial(_enqueue_shared_many, items))

    async def enqueue_many(self, envelopes: list[StoredEnvelope]) -> list[tuple[bool, int]]:
        return await self.writer.run(partial(_enqueue_many, envelopes))

    async def pending(
        self, mailbox: bytes, after_seq: int, limit: int, now: int
    ) -> list[StoredEnvelope]:
        if limit <= 0:
            await trio.lowlevel.checkpoint()
            return []
        rows = await self.readers.run(
            partial(
                select,
                _SELECT_PENDING,
                (mailbox, after_seq, now, limit),
            )
        )
        return [StoredEnvelope(*row) for row in rows]

    async def count_pending(self, mailbox: bytes, now: int) -> int:
        rows = await self.readers.run(
            partial(
                select,
                "SELECT count(*) FROM envelopes WHERE mailbox = ? AND body IS NOT NULL"
                " AND expires > ?",
                (mailbox, now),
            )
        )
        count: int = rows[0][0]
        return count

    async def ack(self, mailbox: bytes, eids: list[bytes]) -> int:
        if not eids:
            await trio.lowlevel.checkpoint()
            return 0
        return await self.writer.run(partial(_ack, mailbox, list(dict.fromkeys(eids))))


# --- operations, run on the writer thread ----------------------------------------------


def _enqueue(env: StoredEnvelope, conn: sqlite3.Connection) -> tuple[bool, int]:
    inserted = conn.execute(
        "INSERT INTO envelopes (mailbox, eid, ts, expires, origin, sender, body)"
        " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (mailbox, eid) DO NOTHING RETURNING seq",
        (env.mailbox, env.eid, env.ts, env.expires, env.origin, env.sender, env.body),
    ).fetchall()
    if inserted:
        return True, inserted[0][0]
    seq, acked = conn.execute(
        "SELECT seq, body IS NULL FROM envelopes WHERE mailbox = ? AND eid = ?",
        (env.mailbox, env.eid),
    ).fetchone()
    return False, 0 if acked else seq


def _enqueue_shared(
    body: bytes, envelopes: list[StoredEnvelope], conn: sqlite3.Connection
) -> list[tuple[bool, int]]:
    expires = max(env.expires for env in envelopes)
    (shared,) = conn.execute(
        "INSERT INTO shared_bodies (body, expires) VALUES (?, ?) RETURNING id", (body, expires)
    ).fetchone()
    results = []
    for env in envelopes:
        inserted = conn.execute(
            "INSERT INTO envelopes (mailbox, eid, ts, expires, origin, sender, body, shared)"
            " VALUES (?, ?, ?, ?, ?, ?, x'', ?) ON CONFLICT (mailbox, eid) DO NOTHING"
            " RETURNING seq",
            (env.mailbox, env.eid, env.ts, env.expires, env.origin, env.sender, shared),
        ).fetchall()
        if inserted:
            results.append((True, int(inserted[0][0])))
            continue
        seq, acked = conn.execute(
            "SELECT seq, body IS NULL FROM envelopes WHERE mailbox = ? AND eid = ?",
            (env.mailbox, env.eid),
        ).fetchone()
        results.append((False, 0 if acked else seq))
    if not any(stored for stored, _ in results):
        conn.execute("DELETE FROM shared_bodies WHERE id = ?", (shared,))
    return results


def _enqueue_shared_many(
    items: list[tuple[bytes, list[StoredEnvelope]]], conn: sqlite3.Connection
) -> list[list[tuple[bool, int]]]:
    return [
        _enqueue_shared(body, envelopes, conn) if envelopes else [] for body, envelopes in items
    ]


def _enqueue_many(
    envelopes: list[StoredEnvelope], conn: sqlite3.Connection
) -> list[tuple[bool, int]]:
    return [_enqueue(env, conn) for env in envelopes]


def _ack(mailbox: bytes, eids: list[bytes], conn: sqlite3.Connection) -> int:
    return conn.executemany(
        "UPDATE envelopes SET body = NULL, ts = 0, origin = '', sender = NULL, shared = NULL"
        " WHERE mailbox = ? AND eid = ? AND body IS NOT NULL",
        [(mailbox, eid) for eid in eids],
    ).rowcount
