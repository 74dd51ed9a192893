"""A :class:`~client.store.base.StateStore` in one SQLite file, encrypted at rest.

Keys::

    master   = scrypt(NFC(passphrase), salt, n, r, p)               32 bytes
    enc||mac = HKDF-SHA-256(master, info=STORE_KEY_INFO)            32 + 32 bytes

Layout (DESIGN section 4, docs/protocol.md section 8)::

    meta(name, value)        in the clear: format version, KDF name and parameters, the
                             16-byte salt, and the check record
    records(ns, id, box)     ns  the namespace name (public constants of ``base``)
                             id  HMAC-SHA-256(mac, ns || 0x00 || key)
                             box nonce(12) || AES-256-GCM(enc, nonce,
                                     u32(len(key)) || key || value,
                                     aad = ns || 0x00 || id)

So the file holds no plaintext key or value, and a box moved to another slot fails to
open (its associated data names the slot); after opening, the embedded key is checked
against ``id`` as well. The check record is ``STORE_CHECK_RECORD`` sealed under ``enc``
with itself as associated data: if it does not open, the passphrase is wrong
(:class:`~client.errors.WrongPassphrase`). Any other record that does not open, or a
malformed file, raises :class:`~client.errors.StoreError`.

The file is created with mode 0600, uses WAL with ``synchronous=FULL`` (a committed
transaction survives a power cut) and ``secure_delete`` (deleted records are overwritten).
Nothing here logs, and no error or repr carries a key, a value or the passphrase.
"""

from __future__ import annotations

import os
import sqlite3
import struct
import unicodedata
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from client.errors import StoreError, WrongPassphrase
from client.store.base import check_slot, check_value
from suites import DecryptionFailed, labels
from suites.aead import Aead
from suites.kdf import Kdf, constant_time_equal

DEFAULT_SCRYPT_N: Final = 2**15
DEFAULT_SCRYPT_R: Final = 8
DEFAULT_SCRYPT_P: Final = 1
SALT_LEN: Final = 16
KEY_LEN: Final = 32
# Bounds on parameters read from a file, so a crafted file cannot exhaust memory or time.
_MAX_SCRYPT_MEMORY: Final = 1 << 30  # scrypt needs 128 * n * r bytes
_MAX_SCRYPT_P: Final = 16

_AEAD: Final = Aead("aes-256-gcm")
_KDF: Final = Kdf("sha256")
_SEP: Final = b"\x00"
_KEY_LEN_PREFIX: Final = struct.Struct(">I")
_FILE_MODE: Final = 0o600

_SCHEMA: Final = (
    "CREATE TABLE meta (name TEXT PRIMARY KEY, value) WITHOUT ROWID",
    "CREATE TABLE records (ns TEXT NOT NULL, id BLOB NOT NULL, box BLOB NOT NULL,"
    " PRIMARY KEY (ns, id)) WITHOUT ROWID",
)


@dataclass(frozen=True)
class ScryptParams:
    """The passphrase KDF's parameters, stored in the clear."""

    salt: bytes
    n: int
    r: int
    p: int

    @classmethod
    def new(cls, n: int, r: int, p: int) -> ScryptParams:
        """Fresh parameters with a random salt; ``ValueError`` if ``n, r, p`` are unusable
        (``n`` a power of two, at most 1 GiB of scrypt memory, ``p`` at most 16)."""
        params = cls(os.urandom(SALT_LEN), n, r, p)
        if not params.valid():
            raise ValueError("invalid scrypt parameters")
        return params

    def check(self) -> None:
        """Raise :class:`StoreError` unless the parameters read from a file are valid."""
        if not self.valid():
            raise StoreError("invalid scrypt parameters")

    def valid(self) -> bool:
        return (
            isinstance(self.salt, bytes)
            and len(self.salt) == SALT_LEN
            and all(isinstance(x, int) for x in (self.n, self.r, self.p))
            and self.n > 1
            and self.n & (self.n - 1) == 0
            and self.r >= 1
            and 1 <= self.p <= _MAX_SCRYPT_P
            and 128 * self.n * self.r <= _MAX_SCRYPT_MEMORY
        )


@dataclass(frozen=True, repr=False)
class _Keys:
    enc: bytes
    mac: bytes


def _passphrase_bytes(passphrase: str) -> bytes:
    if not isinstance(passphrase, str) or not passphrase:
        raise ValueError("the passphrase must be a non-empty str")
    return unicodedata.normalize("NFC", passphrase).encode("utf-8")


def _derive_keys(passphrase: str, params: ScryptParams) -> _Keys:
    scrypt = Scrypt(salt=params.salt, length=KEY_LEN, n=params.n, r=params.r, p=params.p)
    master = scrypt.derive(_passphrase_bytes(passphrase))
    okm = _KDF.derive(master, b"", labels.STORE_KEY_INFO, 2 * KEY_LEN)
    return _Keys(enc=okm[:KEY_LEN], mac=okm[KEY_LEN:])


def _record_id(keys: _Keys, ns: str, key: bytes) -> bytes:
    return _KDF.hmac(keys.mac, ns.encode() + _SEP + key)


def _aad(ns: str, record_id: bytes) -> bytes:
    return ns.encode() + _SEP + record_id


def _seal(keys: _Keys, plaintext: bytes, aad: bytes) -> bytes:
    nonce = os.urandom(_AEAD.nonce_len)
    return nonce + _AEAD.seal(keys.enc, nonce, plaintext, aad)


def _open(keys: _Keys, box: object, aad: bytes) -> bytes:
    """The plaintext of ``box``; :class:`DecryptionFailed` if it does not open."""
    if not isinstance(box, bytes) or len(box) < _AEAD.nonce_len + _AEAD.tag_len:
        raise DecryptionFailed()
    n = _AEAD.nonce_len
    return _AEAD.open(keys.enc, box[:n], box[n:], aad)


def _seal_record(keys: _Keys, ns: str, key: bytes, value: bytes) -> tuple[bytes, bytes]:
    """``(id, box)`` of slot ``(ns, key)`` holding ``value``."""
    record_id = _record_id(keys, ns, key)
    plaintext = _KEY_LEN_PREFIX.pack(len(key)) + key + value
    return record_id, _seal(keys, plaintext, _aad(ns, record_id))


def _open_record(keys: _Keys, ns: str, record_id: object, box: object) -> tuple[bytes, bytes]:
    """``(key, value)`` of a row; :class:`StoreError` if it is not the slot it claims."""
    if not isinstance(record_id, bytes):
        raise StoreError("corrupt store record")
    try:
        plaintext = _open(keys, box, _aad(ns, record_id))
    except DecryptionFailed:
        raise StoreError("corrupt or tampered store record") from None
    prefix = _KEY_LEN_PREFIX.size
    if len(plaintext) < prefix:
        raise StoreError("corrupt store record")
    (key_len,) = _KEY_LEN_PREFIX.unpack_from(plaintext)
    if len(plaintext) < prefix + key_len:
        raise StoreError("corrupt store record")
    key = plaintext[prefix : prefix + key_len]
    if not constant_time_equal(_record_id(keys, ns, key), record_id):
        raise StoreError("corrupt or tampered store record")
    return key, plaintext[prefix + key_len :]


@contextmanager
def _translated() -> Iterator[None]:
    """Turn SQLite's and the file system's exceptions into :class:`StoreError` (the only
    place that does)."""
    try:
        yield
    except (sqlite3.Error, OSError) as exc:
        raise StoreError(f"store database error ({type(exc).__name__}: {exc})") from None


def _make_private(path: Path) -> None:
    """Create ``path`` with mode 0600 if absent; tighten it and its journals if present."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _FILE_MODE)
    except FileExistsError:
        pass
    else:
        os.close(fd)
    for suffix in ("", "-wal", "-shm"):
        sibling = path.with_name(path.name + suffix)
        if sibling.exists():
            os.chmod(sibling, _FILE_MODE)


def _connect(path: Path) -> sqlite3.Connection:
    _make_private(path)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        (mode,) = conn.execute("PRAGMA journal_mode=WAL").fetchone()
        if mode != "wal":
            raise StoreError("the store file cannot use WAL mode")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA secure_delete=ON")
    except BaseException:
        conn.close()
        raise
    return conn


def _read_meta(conn: sqlite3.Connection) -> dict[str, Any] | None:
    """The clear ``meta`` table, or ``None`` for an empty (new) database."""
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    if not tables:
        return None
    if not {"meta", "records"} <= tables:
        raise StoreError("not a sealrelay client store")
    meta = dict(conn.execute("SELECT name, value FROM meta").fetchall())
    if meta.get("version") != labels.STORE_FORMAT_VERSION:
        raise StoreError("unsupported store format version")
    if meta.get("kdf") != labels.STORE_KDF_SCRYPT:
        raise StoreError("unsupported store KDF")
    return meta


def _params_from_meta(meta: dict[str, Any]) -> ScryptParams:
    params = ScryptParams(
        meta.get("salt", b""), meta.get("n", 0), meta.get("r", 0), meta.get("p", 0)
    )
    params.check()
    return params


def _write_meta(conn: sqlite3.Connection, params: ScryptParams, keys: _Keys) -> None:
    check = _seal(keys, labels.STORE_CHECK_RECORD, labels.STORE_CHECK_RECORD)
    rows = {
        "version": labels.STORE_FORMAT_VERSION,
        "kdf": labels.STORE_KDF_SCRYPT,
        "salt": params.salt,
        "n": params.n,
        "r": params.r,
        "p": params.p,
        "check": check,
    }
    conn.executemany("INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)", rows.items())


def _verify_check(meta: dict[str, Any], keys: _Keys) -> None:
    try:
        plaintext = _open(keys, meta.get("check"), labels.STORE_CHECK_RECORD)
    except DecryptionFailed:
        raise WrongPassphrase("wrong passphrase for the client store") from None
    if plaintext != labels.STORE_CHECK_RECORD:
        raise StoreError("corrupt store check record")


class SqliteStore:
    """The encrypted SQLite store; create or open one with :meth:`open`."""

    def __init__(self, conn: sqlite3.Connection, path: Path, params: ScryptParams, keys: _Keys):
        self._conn: sqlite3.Connection | None = conn
        self._path = path
        self._params = params
        self._keys = keys
        self._depth = 0

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        passphrase: str,
        *,
        scrypt_n: int = DEFAULT_SCRYPT_N,
        scrypt_r: int = DEFAULT_SCRYPT_R,
        scrypt_p: int = DEFAULT_SCRYPT_P,
    ) -> SqliteStore:
        """Open the store at ``path``, creating it if the file is absent or empty.

        The scrypt parameters apply only to a new store (an existing one keeps those in
        its file). Raises :class:`WrongPassphrase` or :class:`StoreError`.
        """
        _passphrase_bytes(passphrase)
        path = Path(path)
        with _translated():
            conn = _connect(path)
            try:
                return cls._load(conn, path, passphrase, (scrypt_n, scrypt_r, scrypt_p))
            except BaseException:
                conn.close()
                raise

    @classmethod
    def _load(
        cls, conn: sqlite3.Connection, path: Path, passphrase: str, nrp: tuple[int, int, int]
    ) -> SqliteStore:
        conn.execute("BEGIN IMMEDIATE")
        try:
            meta = _read_meta(conn)
            if meta is None:
                params = ScryptParams.new(*nrp)
                keys = _derive_keys(passphrase, params)
                for statement in _SCHEMA:
                    conn.execute(statement)
                _write_meta(conn, params, keys)
            else:
                params = _params_from_meta(meta)
                keys = _derive_keys(passphrase, params)
                _verify_check(meta, keys)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return cls(conn, path, params, keys)

    def __repr__(self) -> str:
        state = "closed" if self._conn is None else "open"
        return f"SqliteStore({str(self._path)!r}, {state})"

    @property
    def path(self) -> Path:
        return self._path

    @property
    def params(self) -> ScryptParams:
        """The scrypt parameters of the file (not secret)."""
        return self._params

    # --- StateStore ---------------------------------------------------------------------

    def get(self, ns: str, key: bytes) -> bytes | None:
        conn = self._db()
        check_slot(ns, key)
        record_id = _record_id(self._keys, ns, key)
        with _translated():
            row = conn.execute(
                "SELECT box FROM records WHERE ns = ? AND id = ?", (ns, record_id)
            ).fetchone()
        if row is None:
            return None
        return _open_record(self._keys, ns, record_id, row[0])[1]

    def put(self, ns: str, key: bytes, value: bytes) -> None:
        conn = self._db()
        check_slot(ns, key)
        check_value(value)
        record_id, box = _seal_record(self._keys, ns, key, value)
        with _translated():
            conn.execute(
                "INSERT OR REPLACE INTO records (ns, id, box) VALUES (?, ?, ?)",
                (ns, record_id, box),
            )

    def delete(self, ns: str, key: bytes) -> None:
        conn = self._db()
        check_slot(ns, key)
        record_id = _record_id(self._keys, ns, key)
        with _translated():
            conn.execute("DELETE FROM records WHERE ns = ? AND id = ?", (ns, record_id))

    def items(self, ns: str) -> list[tuple[bytes, bytes]]:
        conn = self._db()
        check_slot(ns, b"")
        with _translated():
            rows = conn.execute("SELECT id, box FROM records WHERE ns = ?", (ns,)).fetchall()
        return sorted(_open_record(self._keys, ns, rid, box) for rid, box in rows)

    def put_many(self, ns: str, pairs: Iterable[tuple[bytes, bytes]]) -> None:
        with self.transaction():
            for key, value in pairs:
                self.put(ns, key, value)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` at the outermost level, savepoints inside."""
        depth = self._depth
        savepoint = f"sp{depth}"
        with _translated():
            self._db().execute("BEGIN IMMEDIATE" if depth == 0 else f"SAVEPOINT {savepoint}")
        self._depth += 1
        try:
            yield
        except BaseException:
            self._depth = depth
            self._undo(depth, savepoint)
            raise
        self._depth = depth
        with _translated():
            try:
                self._db().execute("COMMIT" if depth == 0 else f"RELEASE {savepoint}")
            except sqlite3.Error:
                self._undo(depth, savepoint)
                raise

    def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            self._keys = _Keys(b"", b"")
            with _translated():
                conn.close()

    # --- passphrase ---------------------------------------------------------------------

    def change_passphrase(self, old: str, new: str, *, scrypt_n: int | None = None) -> None:
        """Re-key the store: check ``old``, then re-encrypt every record under a key derived
        from ``new`` with a fresh salt (and ``scrypt_n`` if given), in one transaction."""
        if self._depth:
            raise StoreError("cannot change the passphrase inside a transaction")
        with _translated():
            meta = dict(self._db().execute("SELECT name, value FROM meta").fetchall())
        _verify_check(meta, _derive_keys(old, self._params))
        n = self._params.n if scrypt_n is None else scrypt_n
        params = ScryptParams.new(n, self._params.r, self._params.p)
        keys = _derive_keys(new, params)
        with self.transaction(), _translated():
            conn = self._db()
            rows = conn.execute("SELECT ns, id, box FROM records").fetchall()
            opened = [(ns, *_open_record(self._keys, ns, rid, box)) for ns, rid, box in rows]
            conn.execute("DELETE FROM records")
            conn.executemany(
                "INSERT INTO records (ns, id, box) VALUES (?, ?, ?)",
                ((ns, *_seal_record(keys, ns, k, v)) for ns, k, v in opened),
            )
            _write_meta(conn, params, keys)
        self._params, self._keys = params, keys
        with _translated():
            self._db().execute("PRAGMA wal_checkpoint(TRUNCATE)")

    # --- internals ----------------------------------------------------------------------

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError("the store is closed")
        return self._conn

    def _undo(self, depth: int, savepoint: str) -> None:
        if self._conn is None:
            return
        with _translated():
            if depth == 0:
                self._conn.execute("ROLLBACK")
            else:
                self._conn.execute(f"ROLLBACK TO {savepoint}")
                self._conn.execute(f"RELEASE {savepoint}")
