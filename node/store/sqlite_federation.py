"""The SQLite backend's :class:`~node.store.ports.Blobs` (bytes in files,
``node.store.blobfiles``), :class:`~node.store.ports.OutboundQueue` and
:class:`~node.store.ports.ReplayGuard`."""

from __future__ import annotations

import hmac
import sqlite3
from collections.abc import Collection
from functools import partial
from pathlib import Path

import trio

from node.store.base import OutboundItem
from node.store.blobfiles import BlobFiles
from node.store.sqlite_ops import SqliteParts, execute, select


class SqliteBlobs(SqliteParts):
    """Grants, uploads and downloads; a wrong token or size never writes to disk."""

    async def grant_blob(self, blob: bytes, token_hash: bytes, size: int, expires: int) -> None:
        await self.writer.run(
            partial(
                execute,
                "INSERT OR REPLACE INTO blobs (blob, token_hash, size, expires, uploaded)"
                " VALUES (?, ?, ?, ?, 0)",
                (blob, token_hash, size, expires),
            )
        )

    async def blob_grant(self, blob: bytes, token_hash: bytes, now: int) -> int | None:
        return await self.readers.run(partial(_grant_size, blob, token_hash, now))

    async def put_blob(self, blob: bytes, token_hash: bytes, data: bytes, now: int) -> bool:
        # A cheap check first, so a wrong token or size never writes tens of MiB to disk;
        # the writer checks again, atomically with marking the blob uploaded.
        if not await self.readers.run(partial(_grant_accepts, blob, token_hash, len(data), now)):
            return False
        part = await trio.to_thread.run_sync(self._blob_files.write_part, blob, data)
        try:
            stored = await self.writer.run(
                partial(_install_blob, self._blob_files, part, blob, token_hash, len(data), now)
            )
        finally:  # after a successful install the part file is gone already
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(self._blob_files.discard, [part])
        return stored

    async def get_blob(self, blob: bytes, now: int) -> bytes | None:
        rows = await self.readers.run(
            partial(
                select,
                "SELECT 1 FROM blobs WHERE blob = ? AND uploaded = 1 AND expires > ?",
                (blob, now),
            )
        )
        if not rows:
            return None
        return await trio.to_thread.run_sync(self._blob_files.read, blob)


class SqliteOutbound(SqliteParts):
    """The federation queue per destination domain."""

    async def outbound_put(self, item: OutboundItem) -> bool:
        changed = await self.writer.run(
            partial(
                execute,
                "INSERT INTO outbound (domain, eid, expires, layer) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (domain, eid) DO NOTHING",
                (item.domain, item.eid, item.expires, item.layer),
            )
        )
        return changed == 1

    async def outbound_batch(
        self,
        domain: str,
        txn: bytes,
        limit: int,
        max_bytes: int,
        now: int,
        busy: Collection[bytes] = (),
    ) -> tuple[bytes, list[OutboundItem]]:
        return await self.writer.run(
            partial(_outbound_batch, domain, txn, limit, max_bytes, now, tuple(busy))
        )

    async def outbound_done(self, domain: str, txn: bytes, retry: list[bytes]) -> int:
        return await self.writer.run(partial(_outbound_done, domain, txn, retry))

    async def outbound_depths(self, now: int) -> dict[str, int]:
        rows = await self.readers.run(
            partial(
                select,
                "SELECT domain, count(*) FROM outbound WHERE expires > ? GROUP BY domain",
                (now,),
            )
        )
        return {domain: count for domain, count in rows}


class SqliteReplay(SqliteParts):
    """Transaction results and nonces of peer domains."""

    async def txn_result(self, origin: str, txn: bytes) -> bytes | None:
        rows = await self.readers.run(
            partial(
                select, "SELECT result FROM fed_txns WHERE origin = ? AND txn = ?", (origin, txn)
            )
        )
        return rows[0][0] if rows else None

    async def record_txn(self, origin: str, txn: bytes, result: bytes, expires: int) -> None:
        await self.writer.run(
            partial(
                execute,
                "INSERT OR REPLACE INTO fed_txns (origin, txn, result, expires)"
                " VALUES (?, ?, ?, ?)",
                (origin, txn, result, expires),
            )
        )

    async def remember_nonce(self, origin: str, nonce: bytes, expires: int) -> bool:
        changed = await self.writer.run(
            partial(
                execute,
                "INSERT INTO fed_nonces (origin, nonce, expires) VALUES (?, ?, ?)"
                " ON CONFLICT (origin, nonce) DO NOTHING",
                (origin, nonce, expires),
            )
        )
        return changed == 1


# --- operations, run on the worker threads ---------------------------------------------


def _outbound_batch(
    domain: str,
    txn: bytes,
    limit: int,
    max_bytes: int,
    now: int,
    busy: tuple[bytes, ...],
    conn: sqlite3.Connection,
) -> tuple[bytes, list[OutboundItem]]:
    conn.execute("DELETE FROM outbound WHERE domain = ? AND expires <= ?", (domain, now))
    open_txns = conn.execute(
        "SELECT DISTINCT txn FROM outbound INDEXED BY outbound_txn WHERE domain = ? AND txn != x''",
        (domain,),
    ).fetchall()  # a few: one per transaction in flight
    row = next((r for r in open_txns if r[0] not in busy), None)
    if row is not None:
        rows = conn.execute(
            "SELECT eid, expires, layer FROM outbound WHERE domain = ? AND txn = ? ORDER BY seq",
            (domain, row[0]),
        ).fetchall()
        return row[0], [OutboundItem(domain, *r) for r in rows]
    chosen: list[OutboundItem] = []
    size = 0
    cursor = conn.execute(
        "SELECT eid, expires, layer FROM outbound WHERE domain = ? AND txn = x''"
        " ORDER BY seq LIMIT ?",
        (domain, limit),
    )
    for eid, expires, layer in cursor:
        if chosen and size + len(layer) > max_bytes:
            break
        chosen.append(OutboundItem(domain, eid, expires, layer))
        size += len(layer)
    cursor.close()
    conn.executemany(
        "UPDATE outbound SET txn = ? WHERE domain = ? AND eid = ?",
        [(txn, domain, item.eid) for item in chosen],
    )
    return txn, chosen


def _outbound_done(domain: str, txn: bytes, retry: list[bytes], conn: sqlite3.Connection) -> int:
    again = set(retry)
    rows = conn.execute(
        "SELECT eid, expires, layer FROM outbound WHERE domain = ? AND txn = ? ORDER BY seq",
        (domain, txn),
    ).fetchall()
    conn.execute("DELETE FROM outbound WHERE domain = ? AND txn = ?", (domain, txn))
    kept = [(domain, eid, expires, layer) for eid, expires, layer in rows if eid in again]
    conn.executemany(  # back in the queue, at its end
        "INSERT INTO outbound (domain, eid, expires, layer) VALUES (?, ?, ?, ?)", kept
    )
    return len(rows) - len(kept)


def _grant_size(blob: bytes, token_hash: bytes, now: int, conn: sqlite3.Connection) -> int | None:
    """The size of ``blob``'s unused, unexpired grant for ``token_hash``, or None."""
    row = conn.execute(
        "SELECT token_hash, size, expires, uploaded FROM blobs WHERE blob = ?", (blob,)
    ).fetchone()
    if row is None:
        return None
    stored_hash, stored_size, expires, uploaded = row
    if uploaded or expires <= now or not hmac.compare_digest(stored_hash, token_hash):
        return None
    return int(stored_size)


def _grant_accepts(
    blob: bytes, token_hash: bytes, size: int, now: int, conn: sqlite3.Connection
) -> bool:
    return _grant_size(blob, token_hash, now, conn) == size


def _install_blob(
    files: BlobFiles,
    part: Path,
    blob: bytes,
    token_hash: bytes,
    size: int,
    now: int,
    conn: sqlite3.Connection,
) -> bool:
    if not _grant_accepts(blob, token_hash, size, now, conn):
        return False
    files.install(part, blob)
    conn.execute("UPDATE blobs SET uploaded = 1 WHERE blob = ?", (blob,))
    return True
