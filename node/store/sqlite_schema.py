"""The SQLite backend's file: connections, pragmas, schema and its versions.

Tables (version 6; ``introductions`` came with version 2, the federation tables
``outbound``, ``fed_txns`` and ``fed_nonces`` with version 3, fan-out ``shared_bodies``
and ``envelopes.shared`` with version 4, ``call_legs`` with version 5, ``group_tokens``
with version 6)::

    schema_version(version, applied)          one row per migration applied
    invites(code_hash, name, expires)         code hashes only, deleted when spent
    devices(address, device, identity, mailbox, created)
    token_verifiers(address, verifier)
    introductions(address, accept)            accept 1: the account takes Introduce
                                              frames (no row: it does not)
    prekeys(address, device, identity, signed_prekey, last_resort, sealed_key)
    one_time_keys(address, device, kind, id, key)
                                              kind 0 DH, 1 KEM; key NULL once handed
                                              out, so the id is never added again
    envelopes(seq, mailbox, eid, ts, expires, origin, sender, body, shared)
                                              body NULL: acked, a tombstone that keeps
                                              (mailbox, eid) until ``expires``; its
                                              ts, origin and sender are cleared.
                                              shared: the id of a fan-out body in
                                              shared_bodies (then body is x'')
    shared_bodies(id, body, expires)          a group message's body, stored once for
                                              all its recipients on this node
    blobs(blob, token_hash, size, expires, uploaded)
                                              the bytes are files (``node.store.blobfiles``)
    outbound(seq, domain, eid, expires, layer, txn)
                                              routing layers queued per destination; txn
                                              x'' until put in a transaction
    fed_txns(origin, txn, result, expires)    transactions answered, for de-duplication
    fed_nonces(origin, nonce, expires)        federation request nonces seen
    call_legs(leg_id, replica, secret_hash, expires, claimed)
                                              call legs (``node.calls``): the secret's
                                              SHA-256 only; claimed 1 once bridged
    group_tokens(address, verifier)           live group delivery-token verifiers

``envelopes.seq`` is ``AUTOINCREMENT``, so a seq is never reused after the envelope with
the highest one is acked (a client's ``after_seq`` stays meaningful).

The file is created with mode 0600 and runs in WAL mode, so readers never block the writer
and another process (``sealrelay admin invite``) can write while the node runs: each
connection waits up to ``busy_timeout`` for the write lock.
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path
from typing import Final

from node.store.errors import StoreError

SCHEMA_VERSION: Final = 6
SYNCHRONOUS_MODES: Final = ("OFF", "NORMAL", "FULL", "EXTRA")
DEFAULT_BUSY_TIMEOUT_MS: Final = 10_000
_FILE_MODE: Final = 0o600
_JOURNAL_SIZE_LIMIT: Final = 64 << 20  # truncate the WAL back to this after checkpoints
_CACHE_KIB: Final = 16 << 10

KIND_DH: Final = 0
KIND_KEM: Final = 1

_V1: Final = (
    "CREATE TABLE invites (code_hash BLOB PRIMARY KEY, name TEXT NOT NULL,"
    " expires INTEGER NOT NULL) WITHOUT ROWID",
    "CREATE INDEX invites_expires ON invites (expires)",
    "CREATE TABLE devices (address TEXT NOT NULL, device INTEGER NOT NULL,"
    " identity BLOB NOT NULL, mailbox BLOB NOT NULL UNIQUE, created INTEGER NOT NULL,"
    " PRIMARY KEY (address, device)) WITHOUT ROWID",
    "CREATE TABLE token_verifiers (address TEXT PRIMARY KEY, verifier BLOB NOT NULL) WITHOUT ROWID",
    "CREATE TABLE prekeys (address TEXT NOT NULL, device INTEGER NOT NULL,"
    " identity BLOB NOT NULL, signed_prekey BLOB NOT NULL, last_resort BLOB NOT NULL,"
    " sealed_key BLOB NOT NULL, PRIMARY KEY (address, device)) WITHOUT ROWID",
    "CREATE TABLE one_time_keys (address TEXT NOT NULL, device INTEGER NOT NULL,"
    " kind INTEGER NOT NULL, id INTEGER NOT NULL, key BLOB,"
    " PRIMARY KEY (address, device, kind, id)) WITHOUT ROWID",
    # The keys not yet handed out: a take never walks past the ids already taken.
    "CREATE INDEX one_time_keys_left ON one_time_keys (address, device, kind, id)"
    " WHERE key IS NOT NULL",
    "CREATE TABLE envelopes (seq INTEGER PRIMARY KEY AUTOINCREMENT, mailbox BLOB NOT NULL,"
    " eid BLOB NOT NULL, ts INTEGER NOT NULL, expires INTEGER NOT NULL, origin TEXT NOT NULL,"
    " sender TEXT, body BLOB, UNIQUE (mailbox, eid))",
    "CREATE INDEX envelopes_pending ON envelopes (mailbox, seq) WHERE body IS NOT NULL",
    "CREATE INDEX envelopes_expires ON envelopes (expires)",
    "CREATE TABLE blobs (blob BLOB PRIMARY KEY, token_hash BLOB NOT NULL,"
    " size INTEGER NOT NULL, expires INTEGER NOT NULL, uploaded INTEGER NOT NULL DEFAULT 0)"
    " WITHOUT ROWID",
    "CREATE INDEX blobs_expires ON blobs (expires)",
)

_V2: Final = (
    "CREATE TABLE introductions (address TEXT PRIMARY KEY, accept INTEGER NOT NULL) WITHOUT ROWID",
)

_V3: Final = (
    "CREATE TABLE outbound (seq INTEGER PRIMARY KEY AUTOINCREMENT, domain TEXT NOT NULL,"
    " eid BLOB NOT NULL, expires INTEGER NOT NULL, layer BLOB NOT NULL,"
    " txn BLOB NOT NULL DEFAULT x'', UNIQUE (domain, eid))",
    "CREATE INDEX outbound_queue ON outbound (domain, seq)",
    "CREATE INDEX outbound_txn ON outbound (domain, txn) WHERE txn != x''",
    "CREATE INDEX outbound_expires ON outbound (expires)",
    "CREATE TABLE fed_txns (origin TEXT NOT NULL, txn BLOB NOT NULL, result BLOB NOT NULL,"
    " expires INTEGER NOT NULL, PRIMARY KEY (origin, txn)) WITHOUT ROWID",
    "CREATE INDEX fed_txns_expires ON fed_txns (expires)",
    "CREATE TABLE fed_nonces (origin TEXT NOT NULL, nonce BLOB NOT NULL,"
    " expires INTEGER NOT NULL, PRIMARY KEY (origin, nonce)) WITHOUT ROWID",
    "CREATE INDEX fed_nonces_expires ON fed_nonces (expires)",
)

_V4: Final = (
    "CREATE TABLE shared_bodies (id INTEGER PRIMARY KEY AUTOINCREMENT, body BLOB NOT NULL,"
    " expires INTEGER NOT NULL)",
    "CREATE INDEX shared_bodies_expires ON shared_bodies (expires)",
    "ALTER TABLE envelopes ADD COLUMN shared INTEGER",
    "CREATE INDEX envelopes_shared ON envelopes (shared) WHERE shared IS NOT NULL",
)

_V5: Final = (
    "CREATE TABLE call_legs (leg_id BLOB PRIMARY KEY, replica BLOB NOT NULL,"
    " secret_hash BLOB NOT NULL, expires INTEGER NOT NULL, claimed INTEGER NOT NULL DEFAULT 0)"
    " WITHOUT ROWID",
    "CREATE INDEX call_legs_expires ON call_legs (expires)",
)

_V6: Final = (
    "CREATE TABLE group_tokens (address TEXT NOT NULL, verifier BLOB NOT NULL,"
    " PRIMARY KEY (address, verifier)) WITHOUT ROWID",
)

# MIGRATIONS[v] takes a file from version v - 1 to version v.
MIGRATIONS: Final[dict[int, tuple[str, ...]]] = {
    1: _V1,
    2: _V2,
    3: _V3,
    4: _V4,
    5: _V5,
    6: _V6,
}


def connect(
    path: Path,
    *,
    synchronous: str,
    busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
    read_only: bool = False,
) -> sqlite3.Connection:
    """A connection in autocommit mode (the caller issues ``BEGIN``), WAL, busy timeout."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {_synchronous(synchronous)}")
        conn.execute(f"PRAGMA journal_size_limit = {_JOURNAL_SIZE_LIMIT}")
        conn.execute(f"PRAGMA cache_size = -{_CACHE_KIB}")
        conn.execute("PRAGMA foreign_keys = OFF")
        # Deleted content is overwritten with zeros, so an expired or acknowledged
        # envelope's bytes do not linger in free pages (DESIGN section 4: nothing is held
        # past its TTL); the sweep then truncates the WAL, which held the old pages.
        conn.execute("PRAGMA secure_delete = ON")
        if read_only:
            conn.execute("PRAGMA query_only = ON")
    except BaseException:
        conn.close()
        raise
    return conn


def prepare(path: Path, *, synchronous: str, busy_timeout_ms: int) -> None:
    """Create the file (mode 0600) if needed and bring its schema to ``SCHEMA_VERSION``.

    :class:`StoreError` if the file is from a newer version or is not a node database.
    """
    _synchronous(synchronous)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, _FILE_MODE)
    os.close(fd)
    try:
        conn = connect(path, synchronous=synchronous, busy_timeout_ms=busy_timeout_ms)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open {path.name}: {exc}") from exc
    try:
        conn.execute("BEGIN IMMEDIATE")
        _migrate(conn)
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        raise StoreError(f"cannot prepare {path.name}: {exc}") from exc
    finally:
        if conn.in_transaction:
            conn.rollback()
        conn.close()


def _migrate(conn: sqlite3.Connection) -> None:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_version"
        " (version INTEGER PRIMARY KEY, applied INTEGER NOT NULL)"
    )
    (current,) = conn.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()
    if current > SCHEMA_VERSION:
        raise StoreError(
            f"the database has schema version {current}; this node knows up to {SCHEMA_VERSION}"
        )
    if current == 0 and _has_foreign_tables(conn):
        raise StoreError("the file holds tables that are not a node's")
    for version in range(current + 1, SCHEMA_VERSION + 1):
        for statement in MIGRATIONS[version]:
            conn.execute(statement)
        conn.execute(
            "INSERT INTO schema_version (version, applied) VALUES (?, ?)",
            (version, int(time.time() * 1000)),
        )


def _has_foreign_tables(conn: sqlite3.Connection) -> bool:
    rows = conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table'"
        " AND name NOT IN ('schema_version', 'sqlite_sequence')"
    ).fetchall()
    return bool(rows)


def _synchronous(mode: str) -> str:
    if mode.upper() not in SYNCHRONOUS_MODES:
        raise ValueError(f"synchronous must be one of {', '.join(SYNCHRONOUS_MODES)}")
    return mode.upper()
