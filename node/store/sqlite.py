"""The embedded default :class:`~node.store.base.Store`: one SQLite file in WAL mode.

    store = await SqliteStore.open(DIR / "node.sqlite3")      # synchronous="FULL"
    ...
    await store.aclose()

Writes go to one writer thread that commits everything queued in one transaction (group
commit, ``node.store.commit``); a write's ``await`` returns once its batch is committed,
so with ``synchronous=FULL`` an enqueued envelope survives ``kill -9`` and power loss.
Reads run on reader threads with their own connections. Blob bytes are files in
``DIR/node.sqlite3-blobs/`` (``node.store.blobfiles``); the schema is in
``node.store.sqlite_schema``.
"""

from __future__ import annotations

import hmac
import sqlite3
from collections.abc import Collection
from functools import partial
from pathlib import Path
from typing import Any, Final

import trio

from node.store import sqlite_schema as schema
from node.store.base import (
    BundleParts,
    DeviceRecord,
    OutboundItem,
    PrekeyRecord,
    StoredEnvelope,
    SweepResult,
)
from node.store.blobfiles import BlobFiles
from node.store.commit import Readers, Writer
from node.store.sqlite_schema import KIND_DH, KIND_KEM

DEFAULT_READERS: Final = 2
SWEEP_CHUNK: Final = 5000  # rows deleted per writer operation, so a sweep never stalls sends

_SELECT_DEVICE: Final = "SELECT address, device, identity, mailbox, created FROM devices"
_SELECT_PENDING: Final = (
    "SELECT mailbox, eid, seq, ts, expires, origin, sender,"
    " CASE WHEN shared IS NULL THEN body"
    " ELSE (SELECT s.body FROM shared_bodies AS s WHERE s.id = shared) END"
    " FROM envelopes"
    " WHERE mailbox = ? AND seq > ? AND body IS NOT NULL AND expires > ? ORDER BY seq LIMIT ?"
)


class SqliteStore:
    """Open with :meth:`open`; close with :meth:`aclose`."""

    def __init__(self, path: Path, writer: Writer, readers: Readers, blob_files: BlobFiles) -> None:
        self.path = path
        self.writer = writer
        self.readers = readers
        self._blob_files = blob_files

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
        await self.writer.aclose()
        await self.readers.aclose()

    # --- enrollment and accounts -------------------------------------------------------
    async def add_invite(self, code_hash: bytes, name: str, expires: int) -> None:
        await self.writer.run(
            partial(
                _execute,
                "INSERT OR REPLACE INTO invites (code_hash, name, expires) VALUES (?, ?, ?)",
                (code_hash, name, expires),
            )
        )

    async def register(self, code_hash: bytes, name: str, device: DeviceRecord, now: int) -> bool:
        return await self.writer.run(partial(_register, code_hash, name, device, now))

    async def device(self, address: str, device: int) -> DeviceRecord | None:
        rows = await self.readers.run(
            partial(
                _select,
                _SELECT_DEVICE + " WHERE address = ? AND device = ?",
                (address, device),
            )
        )
        return DeviceRecord(*rows[0]) if rows else None

    async def has_account(self, name: str) -> bool:
        prefix = name + "@"
        query = "SELECT 1 FROM devices WHERE substr(address, 1, ?) = ? LIMIT 1"
        rows = await self.readers.run(partial(_select, query, (len(prefix), prefix)))
        return bool(rows)

    async def devices(self, address: str) -> list[DeviceRecord]:
        rows = await self.readers.run(
            partial(
                _select,
                _SELECT_DEVICE + " WHERE address = ? ORDER BY device",
                (address,),
            )
        )
        return [DeviceRecord(*row) for row in rows]

    async def mailbox_owner(self, mailbox: bytes) -> DeviceRecord | None:
        rows = await self.readers.run(
            partial(_select, _SELECT_DEVICE + " WHERE mailbox = ?", (mailbox,))
        )
        return DeviceRecord(*rows[0]) if rows else None

    async def set_token_verifier(self, address: str, verifier: bytes) -> None:
        await self.writer.run(
            partial(
                _execute,
                "INSERT OR REPLACE INTO token_verifiers (address, verifier) VALUES (?, ?)",
                (address, verifier),
            )
        )

    async def token_verifier(self, address: str) -> bytes | None:
        rows = await self.readers.run(
            partial(_select, "SELECT verifier FROM token_verifiers WHERE address = ?", (address,))
        )
        return rows[0][0] if rows else None

    async def set_accepts_introductions(self, address: str, accept: bool) -> None:
        await self.writer.run(
            partial(
                _execute,
                "INSERT OR REPLACE INTO introductions (address, accept) VALUES (?, ?)",
                (address, int(accept)),
            )
        )

    async def accepts_introductions(self, address: str) -> bool:
        rows = await self.readers.run(
            partial(_select, "SELECT accept FROM introductions WHERE address = ?", (address,))
        )
        return bool(rows[0][0]) if rows else False

    # --- prekeys -------------------------------------------------------------------------
    async def put_prekeys(self, address: str, device: int, record: PrekeyRecord) -> None:
        await self.writer.run(partial(_put_prekeys, address, device, record))

    async def take_bundle(self, address: str, device: int) -> BundleParts | None:
        return await self.writer.run(partial(_take_bundle, address, device))

    async def prekey_counts(self, address: str, device: int) -> tuple[int, int]:
        rows = await self.readers.run(
            partial(
                _select,
                "SELECT kind, count(*) FROM one_time_keys INDEXED BY one_time_keys_left"
                " WHERE address = ? AND device = ?"
                " AND key IS NOT NULL GROUP BY kind",
                (address, device),
            )
        )
        counts = dict(rows)
        return counts.get(KIND_DH, 0), counts.get(KIND_KEM, 0)

    # --- mailboxes -----------------------------------------------------------------------
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
                _select,
                _SELECT_PENDING,
                (mailbox, after_seq, now, limit),
            )
        )
        return [StoredEnvelope(*row) for row in rows]

    async def count_pending(self, mailbox: bytes, now: int) -> int:
        rows = await self.readers.run(
            partial(
                _select,
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

    # --- blobs ---------------------------------------------------------------------------
    async def grant_blob(self, blob: bytes, token_hash: bytes, size: int, expires: int) -> None:
        await self.writer.run(
            partial(
                _execute,
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
                _select,
                "SELECT 1 FROM blobs WHERE blob = ? AND uploaded = 1 AND expires > ?",
                (blob, now),
            )
        )
        if not rows:
            return None
        return await trio.to_thread.run_sync(self._blob_files.read, blob)

    # --- federation ------------------------------------------------------------------------
    async def outbound_put(self, item: OutboundItem) -> bool:
        changed = await self.writer.run(
            partial(
                _execute,
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
                _select,
                "SELECT domain, count(*) FROM outbound WHERE expires > ? GROUP BY domain",
                (now,),
            )
        )
        return {domain: count for domain, count in rows}

    async def txn_result(self, origin: str, txn: bytes) -> bytes | None:
        rows = await self.readers.run(
            partial(
                _select, "SELECT result FROM fed_txns WHERE origin = ? AND txn = ?", (origin, txn)
            )
        )
        return rows[0][0] if rows else None

    async def record_txn(self, origin: str, txn: bytes, result: bytes, expires: int) -> None:
        await self.writer.run(
            partial(
                _execute,
                "INSERT OR REPLACE INTO fed_txns (origin, txn, result, expires)"
                " VALUES (?, ?, ?, ?)",
                (origin, txn, result, expires),
            )
        )

    async def remember_nonce(self, origin: str, nonce: bytes, expires: int) -> bool:
        changed = await self.writer.run(
            partial(
                _execute,
                "INSERT INTO fed_nonces (origin, nonce, expires) VALUES (?, ?, ?)"
                " ON CONFLICT (origin, nonce) DO NOTHING",
                (origin, nonce, expires),
            )
        )
        return changed == 1

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
                _execute,
                "DELETE FROM shared_bodies WHERE expires <= ? OR id NOT IN"
                " (SELECT shared FROM envelopes WHERE shared IS NOT NULL AND body IS NOT NULL)",
                (now,),
            )
        )
        for table in ("fed_txns", "fed_nonces"):
            await self.writer.run(
                partial(_execute, f"DELETE FROM {table} WHERE expires <= ?", (now,))  # noqa: S608
            )
        blobs = await self.writer.run(
            partial(_returning, "DELETE FROM blobs WHERE expires <= ? RETURNING blob", (now,))
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
        await self.writer.run(partial(_execute_bare, "PRAGMA wal_checkpoint(TRUNCATE)"), bare=True)

    async def _sweep_chunks(self, statement: str, now: int) -> int:
        total = 0
        while True:
            deleted = await self.writer.run(partial(_execute, statement, (now, SWEEP_CHUNK)))
            total += deleted
            if deleted < SWEEP_CHUNK:
                return total

    async def _remove_blob_leftovers(self) -> None:
        files, junk = await trio.to_thread.run_sync(self._blob_files.listing)
        if files:
            rows = await self.readers.run(partial(_select, "SELECT blob FROM blobs", ()))
            known = {row[0] for row in rows}
            junk += [path for blob, path in files.items() if blob not in known]
        await trio.to_thread.run_sync(self._blob_files.discard, junk)

    async def stats(self) -> dict[str, int]:
        return await self.readers.run(_stats)


# --- operations, run on the worker threads ---------------------------------------------
Params = tuple[Any, ...]


def _execute(statement: str, params: Params, conn: sqlite3.Connection) -> int:
    """Run one statement; the number of rows it changed."""
    return conn.execute(statement, params).rowcount


def _execute_bare(statement: str, conn: sqlite3.Connection) -> None:
    conn.execute(statement).fetchall()


def _select(statement: str, params: Params, conn: sqlite3.Connection) -> list[Any]:
    return conn.execute(statement, params).fetchall()


_returning = _select


def _register(
    code_hash: bytes, name: str, device: DeviceRecord, now: int, conn: sqlite3.Connection
) -> bool:
    invite = conn.execute(
        "SELECT name, expires FROM invites WHERE code_hash = ?", (code_hash,)
    ).fetchone()
    if invite is None or invite[0] != name or invite[1] <= now:
        return False
    taken = conn.execute(
        "SELECT 1 FROM devices WHERE address = ? OR mailbox = ? LIMIT 1",
        (device.address, device.mailbox),
    ).fetchone()
    if taken is not None:
        return False
    conn.execute("DELETE FROM invites WHERE code_hash = ?", (code_hash,))
    conn.execute(
        "INSERT INTO devices (address, device, identity, mailbox, created) VALUES (?, ?, ?, ?, ?)",
        (device.address, device.device, device.identity, device.mailbox, device.created),
    )
    return True


def _put_prekeys(address: str, device: int, record: PrekeyRecord, conn: sqlite3.Connection) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO prekeys (address, device, identity, signed_prekey,"
        " last_resort, sealed_key) VALUES (?, ?, ?, ?, ?, ?)",
        (
            address,
            device,
            record.identity,
            record.signed_prekey,
            record.last_resort,
            record.sealed_key,
        ),
    )
    rows = [(address, device, KIND_DH, i, key) for i, key in record.one_time.items()]
    rows += [(address, device, KIND_KEM, i, key) for i, key in record.kem_one_time.items()]
    conn.executemany(
        "INSERT OR IGNORE INTO one_time_keys (address, device, kind, id, key)"
        " VALUES (?, ?, ?, ?, ?)",
        rows,
    )


def _take_bundle(address: str, device: int, conn: sqlite3.Connection) -> BundleParts | None:
    standing = conn.execute(
        "SELECT identity, signed_prekey, last_resort, sealed_key FROM prekeys"
        " WHERE address = ? AND device = ?",
        (address, device),
    ).fetchone()
    if standing is None:
        return None
    identity, signed_prekey, last_resort, sealed_key = standing
    one_time = _take_one_time(conn, address, device, KIND_DH)
    kem = _take_one_time(conn, address, device, KIND_KEM)
    return BundleParts(
        identity=identity,
        signed_prekey=signed_prekey,
        sealed_key=sealed_key,
        one_time=one_time,
        kem_prekey=last_resort if kem is None else kem,
        kem_last_resort=kem is None,
    )


def _take_one_time(conn: sqlite3.Connection, address: str, device: int, kind: int) -> bytes | None:
    """The lowest-id key of ``kind`` left, marked taken (its key cleared, its id kept)."""
    row = conn.execute(
        "SELECT id, key FROM one_time_keys INDEXED BY one_time_keys_left"
        " WHERE address = ? AND device = ? AND kind = ?"
        " AND key IS NOT NULL ORDER BY id LIMIT 1",
        (address, device, kind),
    ).fetchone()
    if row is None:
        return None
    conn.execute(
        "UPDATE one_time_keys SET key = NULL WHERE address = ? AND device = ? AND kind = ?"
        " AND id = ?",
        (address, device, kind, row[0]),
    )
    key: bytes = row[1]
    return key


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
