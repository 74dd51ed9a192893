"""The embedded default :class:`~node.store.ports.Store`: one SQLite file in WAL mode.

    store = await SqliteStore.open(DIR / "node.sqlite3")      # synchronous="FULL"
    ...
    await store.aclose()

Writes go to one writer thread that commits everything queued in one transaction (group
commit, ``node.store.commit``); a write's ``await`` returns once its batch is committed,
so with ``synchronous=FULL`` an enqueued envelope survives ``kill -9`` and power loss.
Reads run on reader threads with their own connections. Blob bytes are files in
``DIR/node.sqlite3-blobs/`` (``node.store.blobfiles``); the schema is in
``node.store.sqlite_schema``.

Each port is a class of its own module, all on the same connections (``sqlite_ops``):

    SqliteAccounts, SqlitePrekeys               node.store.sqlite_accounts
    SqliteMailboxes                             node.store.sqlite_mailboxes
    SqliteBlobs, SqliteOutbound, SqliteReplay   node.store.sqlite_federation
    SqliteCallLegs                              node.store.sqlite_calllegs
    SqliteGroupTokens                           node.store.sqlite_grouptokens
    LocalMediaPlacement                         node.store.local_placement (in this
                                                process's memory: one node, one process)
    Maintenance (open, sweep, stats, aclose)    here
"""

from __future__ import annotations

import sqlite3
from functools import partial
from pathlib import Path
from typing import Final

import trio

from node.store import sqlite_schema as schema
from node.store.base import SweepResult
from node.store.blobfiles import BlobFiles
from node.store.commit import Readers, Writer
from node.store.local_placement import LocalMediaPlacement
from node.store.placement import PlacementTable
from node.store.sqlite_accounts import SqliteAccounts, SqlitePrekeys
from node.store.sqlite_calllegs import SqliteCallLegs
from node.store.sqlite_federation import SqliteBlobs, SqliteOutbound, SqliteReplay
from node.store.sqlite_grouptokens import SqliteGroupTokens
from node.store.sqlite_mailboxes import SqliteMailboxes
from node.store.sqlite_ops import execute, execute_bare, returning, select

DEFAULT_READERS: Final = 2
SWEEP_CHUNK: Final = 5000  # rows deleted per writer operation, so a sweep never stalls sends


class SqliteStore(
    SqliteAccounts,
    SqlitePrekeys,
    SqliteMailboxes,
    SqliteBlobs,
    SqliteOutbound,
    SqliteReplay,
    SqliteCallLegs,
    SqliteGroupTokens,
    LocalMediaPlacement,
):
    """Every port on one writer and one reader pool. Open with :meth:`open`; close with
    :meth:`aclose`."""

    def __init__(self, path: Path, writer: Writer, readers: Readers, blob_files: BlobFiles) -> None:
        self.path = path
        self.writer = writer
        self.readers = readers
        self._blob_files = blob_files
        self._placement = PlacementTable()

    @classmethod
    async def open(
        cls,
        path: Path | str,
        *,
        synchronous: str = "FULL",
        blob_dir: Path | None = None,
        readers: int = DEFAULT_READERS,
        busy_timeout_ms: int = schema.DEFAULT_BUSY_TIMEOUT_MS,
    ) -> SqliteStore:
        """Open (creating if needed) the database at ``path``; blobs go to ``blob_dir``
        (default: ``path`` + ``-blobs``). :class:`~node.store.errors.StoreError` if the
        file cannot be used."""
        path = Path(path)
        blob_files = BlobFiles(blob_dir or path.with_name(path.name + "-blobs"))
        await trio.to_thread.run_sync(
            partial(schema.prepare, path, synchronous=synchronous, busy_timeout_ms=busy_timeout_ms)
        )
        await trio.to_thread.run_sync(blob_files.create)
        connect = partial(
            schema.connect, path, synchronous=synchronous, busy_timeout_ms=busy_timeout_ms
        )
        writer = Writer(connect)
        reader_pool = Readers(partial(connect, read_only=True), threads=readers)
        return cls(path, writer, reader_pool, blob_files)

    async def aclose(self) -> None:
        """Finish the queued operations and close the connections."""
        self._placement.closed = True
        await self.writer.aclose()
        await self.readers.aclose()

    # --- housekeeping --------------------------------------------------------------------
    async def sweep(self, now: int) -> SweepResult:
        envelopes = await self._sweep_chunks(
            "DELETE FROM envelopes WHERE seq IN (SELECT seq FROM envelopes"
            " WHERE expires <= ? AND body IS NOT NULL LIMIT ?)",
            now,
        )
        tombstones = await self._sweep_chunks(
            "DELETE FROM envelopes WHERE seq IN (SELECT seq FROM envelopes"
            " WHERE expires <= ? AND body IS NULL LIMIT ?)",
            now,
        )
        invites = await self._sweep_chunks(
            "DELETE FROM invites WHERE code_hash IN (SELECT code_hash FROM invites"
            " WHERE expires <= ? LIMIT ?)",
            now,
        )
        outbound = await self._sweep_chunks(
            "DELETE FROM outbound WHERE seq IN (SELECT seq FROM outbound"
            " WHERE expires <= ? LIMIT ?)",
            now,
        )
        await self.writer.run(
            partial(
                execute,
                "DELETE FROM shared_bodies WHERE expires <= ? OR id NOT IN"
                " (SELECT shared FROM envelopes WHERE shared IS NOT NULL AND body IS NOT NULL)",
                (now,),
            )
        )
        for table in ("fed_txns", "fed_nonces"):
            await self.writer.run(
                partial(execute, f"DELETE FROM {table} WHERE expires <= ?", (now,))  # noqa: S608
            )
        blobs = await self.writer.run(
            partial(returning, "DELETE FROM blobs WHERE expires <= ? RETURNING blob", (now,))
        )
        gone: list[bytes] = [row[0] for row in blobs]
        await trio.to_thread.run_sync(self._blob_files.delete, gone)
        await self._remove_blob_leftovers()
        if envelopes or tombstones or blobs or outbound:
            await self._truncate_wal()
        return SweepResult(
            envelopes=envelopes,
            blobs=len(blobs),
            tombstones=tombstones,
            invites=invites,
            outbound=outbound,
        )

    async def _truncate_wal(self) -> None:
        """Checkpoint and empty the WAL, whose frames still hold the deleted pages' old
        images. Busy readers may keep it from finishing; the next sweep tries again."""
        await self.writer.run(partial(execute_bare, "PRAGMA wal_checkpoint(TRUNCATE)"), bare=True)

    async def _sweep_chunks(self, statement: str, now: int) -> int:
        total = 0
        while True:
            deleted = await self.writer.run(partial(execute, statement, (now, SWEEP_CHUNK)))
            total += deleted
            if deleted < SWEEP_CHUNK:
                return total

    async def _remove_blob_leftovers(self) -> None:
        files, junk = await trio.to_thread.run_sync(self._blob_files.listing)
        if files:
            rows = await self.readers.run(partial(select, "SELECT blob FROM blobs", ()))
            known = {row[0] for row in rows}
            junk += [path for blob, path in files.items() if blob not in known]
        await trio.to_thread.run_sync(self._blob_files.discard, junk)

    async def stats(self) -> dict[str, int]:
        return await self.readers.run(_stats)


# --- operations, run on the worker threads ---------------------------------------------


def _stats(conn: sqlite3.Connection) -> dict[str, int]:
    def one(statement: str) -> int:
        value: int = conn.execute(statement).fetchone()[0]
        return value

    return {
        "envelopes": one("SELECT count(*) FROM envelopes WHERE body IS NOT NULL"),
        "tombstones": one("SELECT count(*) FROM envelopes WHERE body IS NULL"),
        "blobs": one("SELECT count(*) FROM blobs WHERE uploaded = 1"),
        "blob_bytes": one("SELECT coalesce(sum(size), 0) FROM blobs WHERE uploaded = 1"),
        "accounts": one("SELECT count(DISTINCT address) FROM devices"),
        "devices": one("SELECT count(*) FROM devices"),
        "invites": one("SELECT count(*) FROM invites"),
        "shared_bodies": one("SELECT count(*) FROM shared_bodies"),
    }
