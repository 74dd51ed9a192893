"""The client state store: both backends behave alike; the SQLite file is encrypted,
authenticated slot by slot, and holds no plaintext."""

from __future__ import annotations

import sqlite3
import stat
import tempfile
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from client.errors import StoreError, WrongPassphrase
from client.store import (
    NAMESPACES,
    NS_MESSAGES,
    NS_SESSIONS,
    MemoryStore,
    SqliteStore,
    StateStore,
)

PASSPHRASE = "correct horse battery staple"  # noqa: S105 (a test passphrase)
FAST_N = 2**10  # scrypt cost for tests only; the default is 2**15


def open_sqlite(path: Path, passphrase: str = PASSPHRASE) -> SqliteStore:
    return SqliteStore.open(path, passphrase, scrypt_n=FAST_N)


BACKENDS: dict[str, Callable[[Path], StateStore]] = {
    "memory": lambda _dir: MemoryStore(),
    "sqlite": lambda directory: open_sqlite(directory / "state.db"),
}


@pytest.fixture(params=sorted(BACKENDS))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StateStore]:
    s = BACKENDS[request.param](tmp_path)
    yield s
    s.close()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state.db"


class Boom(Exception):
    pass


def fail_in_transaction(store: StateStore, body: Callable[[], object]) -> None:
    """Run ``body`` in a transaction, then raise :class:`Boom` inside it."""
    with store.transaction():
        body()
        raise Boom


def close_in_transaction(store: StateStore) -> None:
    with store.transaction():
        store.put(NS_SESSIONS, b"a", b"1")
        store.close()


# --- both backends --------------------------------------------------------------------------


def test_round_trip(store: StateStore) -> None:
    assert store.get(NS_SESSIONS, b"k") is None
    store.put(NS_SESSIONS, b"k", b"v1")
    assert store.get(NS_SESSIONS, b"k") == b"v1"
    store.put(NS_SESSIONS, b"k", b"v2")
    assert store.get(NS_SESSIONS, b"k") == b"v2"
    store.put(NS_SESSIONS, b"", b"")
    store.put(NS_SESSIONS, b"\x00\xff", b"\x00" * 1000)
    assert store.get(NS_SESSIONS, b"") == b""
    assert store.get(NS_SESSIONS, b"\x00\xff") == b"\x00" * 1000
    store.delete(NS_SESSIONS, b"k")
    store.delete(NS_SESSIONS, b"absent")
    assert store.get(NS_SESSIONS, b"k") is None


def test_items_sorted_by_key(store: StateStore) -> None:
    keys = [b"b", b"a", b"\x00", b"ab", b"\xff", b""]
    for k in keys:
        store.put(NS_MESSAGES, k, b"v" + k)
    assert store.items(NS_MESSAGES) == [(k, b"v" + k) for k in sorted(keys)]
    assert store.items(NS_SESSIONS) == []


def test_namespaces_isolated(store: StateStore) -> None:
    for i, ns in enumerate(NAMESPACES):
        store.put(ns, b"same", bytes([i]))
    for i, ns in enumerate(NAMESPACES):
        assert store.get(ns, b"same") == bytes([i])
        assert store.items(ns) == [(b"same", bytes([i]))]
    store.delete(NAMESPACES[0], b"same")
    assert store.get(NAMESPACES[0], b"same") is None
    assert store.get(NAMESPACES[1], b"same") == b"\x01"


def test_put_many(store: StateStore) -> None:
    store.put_many(NS_SESSIONS, [(b"x", b"1"), (b"y", b"2")])
    assert store.items(NS_SESSIONS) == [(b"x", b"1"), (b"y", b"2")]


def test_put_many_is_atomic(store: StateStore) -> None:
    def pairs() -> Iterator[tuple[bytes, bytes]]:
        yield b"x", b"1"
        raise Boom

    with pytest.raises(Boom):
        store.put_many(NS_SESSIONS, pairs())
    assert store.items(NS_SESSIONS) == []


def test_transaction_commits_together(store: StateStore) -> None:
    store.put(NS_SESSIONS, b"old", b"o")
    with store.transaction():
        store.put(NS_SESSIONS, b"a", b"1")
        store.delete(NS_SESSIONS, b"old")
        store.put(NS_MESSAGES, b"m", b"2")
        # reads inside the transaction see its own writes
        assert store.get(NS_SESSIONS, b"a") == b"1"
        assert store.get(NS_SESSIONS, b"old") is None
        assert store.items(NS_SESSIONS) == [(b"a", b"1")]
    assert store.items(NS_SESSIONS) == [(b"a", b"1")]
    assert store.get(NS_MESSAGES, b"m") == b"2"


def test_transaction_rolls_back_on_exception(store: StateStore) -> None:
    store.put(NS_SESSIONS, b"keep", b"k")
    store.put(NS_SESSIONS, b"change", b"before")

    def body() -> None:
        store.put(NS_SESSIONS, b"new", b"n")
        store.put(NS_SESSIONS, b"change", b"after")
        store.delete(NS_SESSIONS, b"keep")
        store.put(NS_MESSAGES, b"m", b"m")

    with pytest.raises(Boom):
        fail_in_transaction(store, body)
    assert store.items(NS_SESSIONS) == [(b"change", b"before"), (b"keep", b"k")]
    assert store.items(NS_MESSAGES) == []
    # the store is usable afterwards
    with store.transaction():
        store.put(NS_SESSIONS, b"new", b"n")
    assert store.get(NS_SESSIONS, b"new") == b"n"


def test_nested_transaction_rolls_back_only_itself(store: StateStore) -> None:
    def inner() -> None:
        store.put(NS_SESSIONS, b"inner", b"i")
        store.delete(NS_SESSIONS, b"outer")

    with store.transaction():
        store.put(NS_SESSIONS, b"outer", b"o")
        with pytest.raises(Boom):
            fail_in_transaction(store, inner)
        assert store.get(NS_SESSIONS, b"outer") == b"o"
        with store.transaction():
            store.put(NS_SESSIONS, b"inner2", b"i2")
    assert store.items(NS_SESSIONS) == [(b"inner2", b"i2"), (b"outer", b"o")]


def test_outer_rollback_undoes_committed_inner(store: StateStore) -> None:
    def inner_committed() -> None:
        with store.transaction():
            store.put(NS_SESSIONS, b"inner", b"i")

    with pytest.raises(Boom):
        fail_in_transaction(store, inner_committed)
    assert store.get(NS_SESSIONS, b"inner") is None


@pytest.mark.parametrize("ns", ["", "Sessions", "a\x00b", "x" * 65, "1abc"])
def test_invalid_namespace(store: StateStore, ns: str) -> None:
    with pytest.raises(ValueError, match="namespace"):
        store.put(ns, b"k", b"v")


def test_non_bytes_rejected(store: StateStore) -> None:
    with pytest.raises(TypeError):
        store.put(NS_SESSIONS, "k", b"v")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        store.put(NS_SESSIONS, b"k", bytearray(b"v"))  # type: ignore[arg-type]


def test_closed_store_refuses(store: StateStore) -> None:
    store.put(NS_SESSIONS, b"k", b"v")
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.get(NS_SESSIONS, b"k")
    with pytest.raises(StoreError, match="closed"):
        store.put(NS_SESSIONS, b"k", b"v")
    store.close()  # idempotent


def test_close_inside_transaction_loses_it(store: StateStore) -> None:
    with pytest.raises(StoreError, match="closed"):
        close_in_transaction(store)


def test_uncommitted_transaction_lost_on_close(db_path: Path) -> None:
    s = open_sqlite(db_path)
    with pytest.raises(StoreError, match="closed"):
        close_in_transaction(s)
    s = open_sqlite(db_path)
    try:
        assert s.get(NS_SESSIONS, b"a") is None
    finally:
        s.close()


_ops = st.lists(
    st.tuples(
        st.sampled_from(["put", "delete", "txn_ok", "txn_fail"]),
        st.sampled_from(NAMESPACES[:2]),
        st.binary(max_size=3),
        st.binary(max_size=8),
    ),
    max_size=25,
)


@pytest.mark.parametrize("backend", sorted(BACKENDS))
@settings(max_examples=40, deadline=None)
@given(ops=_ops)
def test_behaves_like_a_dict(backend: str, ops: list[tuple[str, str, bytes, bytes]]) -> None:
    model: dict[tuple[str, bytes], bytes] = {}
    with tempfile.TemporaryDirectory() as d:
        store = BACKENDS[backend](Path(d))
        try:
            for op, ns, key, value in ops:
                if op == "put":
                    store.put(ns, key, value)
                    model[ns, key] = value
                elif op == "delete":
                    store.delete(ns, key)
                    model.pop((ns, key), None)
                else:
                    try:
                        with store.transaction():
                            store.put(ns, key, value)
                            store.delete(ns, key + b"!")
                            if op == "txn_fail":
                                raise Boom
                    except Boom:
                        pass
                    if op == "txn_ok":
                        model[ns, key] = value
                        model.pop((ns, key + b"!"), None)
            for ns in NAMESPACES[:2]:
                expected = sorted((k, v) for (n, k), v in model.items() if n == ns)
                assert store.items(ns) == expected
        finally:
            store.close()


# --- SQLite only ----------------------------------------------------------------------------


def rows(path: Path) -> list[tuple[str, bytes, bytes]]:
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute("SELECT ns, id, box FROM records ORDER BY ns, id").fetchall()


def tamper(path: Path, *statements: tuple[str, tuple[object, ...]]) -> None:
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        for sql, args in statements:
            conn.execute(sql, args)


def test_persists_across_reopen(db_path: Path) -> None:
    s = open_sqlite(db_path)
    s.put(NS_SESSIONS, b"a", b"1")
    with s.transaction():
        s.put(NS_SESSIONS, b"b", b"2")
    with pytest.raises(Boom):
        fail_in_transaction(s, lambda: s.put(NS_SESSIONS, b"c", b"3"))
    s.close()
    s = open_sqlite(db_path)
    try:
        assert s.items(NS_SESSIONS) == [(b"a", b"1"), (b"b", b"2")]
        assert s.params.n == FAST_N
    finally:
        s.close()


def test_wrong_passphrase(db_path: Path) -> None:
    open_sqlite(db_path).close()
    with pytest.raises(WrongPassphrase):
        open_sqlite(db_path, "wrong horse")
    assert issubclass(WrongPassphrase, StoreError)
    open_sqlite(db_path).close()  # the right one still works


def test_passphrase_is_unicode_normalised(db_path: Path) -> None:
    open_sqlite(db_path, "caf\u00e9").close()  # precomposed é
    open_sqlite(db_path, "cafe\u0301").close()  # e + combining acute accent


def test_tampered_ciphertext_detected(db_path: Path) -> None:
    s = open_sqlite(db_path)
    s.put(NS_SESSIONS, b"a", b"secret value")
    s.close()
    ((_ns, rid, box),) = rows(db_path)
    flipped = box[:20] + bytes([box[20] ^ 1]) + box[21:]
    tamper(db_path, ("UPDATE records SET box = ? WHERE id = ?", (flipped, rid)))
    s = open_sqlite(db_path)
    try:
        with pytest.raises(StoreError, match="tampered"):
            s.get(NS_SESSIONS, b"a")
        with pytest.raises(StoreError, match="tampered"):
            s.items(NS_SESSIONS)
    finally:
        s.close()


def test_swapped_records_detected(db_path: Path) -> None:
    s = open_sqlite(db_path)
    s.put(NS_SESSIONS, b"a", b"value-1")
    s.put(NS_SESSIONS, b"b", b"value-2")
    s.close()
    (_, id1, box1), (_, id2, box2) = rows(db_path)
    tamper(
        db_path,
        ("UPDATE records SET box = ? WHERE id = ?", (box2, id1)),
        ("UPDATE records SET box = ? WHERE id = ?", (box1, id2)),
    )
    s = open_sqlite(db_path)
    try:
        for key in (b"a", b"b"):
            with pytest.raises(StoreError):
                s.get(NS_SESSIONS, key)
        with pytest.raises(StoreError):
            s.items(NS_SESSIONS)
    finally:
        s.close()


def test_record_moved_to_another_namespace_detected(db_path: Path) -> None:
    s = open_sqlite(db_path)
    s.put(NS_SESSIONS, b"a", b"value")
    s.close()
    tamper(db_path, ("UPDATE records SET ns = ?", (NS_MESSAGES,)))
    s = open_sqlite(db_path)
    try:
        assert s.get(NS_SESSIONS, b"a") is None
        with pytest.raises(StoreError):
            s.items(NS_MESSAGES)
    finally:
        s.close()


def test_no_plaintext_on_disk(db_path: Path) -> None:
    key, value = b"KEY-MARKER-4242", b"VALUE-MARKER-1717"
    s = open_sqlite(db_path)
    for ns in NAMESPACES:
        s.put(ns, key + ns.encode(), value + ns.encode())
    s.put_many(NS_MESSAGES, [(key + bytes([i]), value * 3) for i in range(20)])
    s.delete(NS_MESSAGES, key + b"\x00")
    wal = db_path.with_name(db_path.name + "-wal")

    def check() -> None:
        files = [p for p in (db_path, wal) if p.exists()]
        data = b"".join(p.read_bytes() for p in files)
        assert data  # the check is about real bytes
        for secret in (b"MARKER", PASSPHRASE.encode()):
            assert secret not in data

    assert wal.stat().st_size > 0  # records are in the WAL while the store is open
    check()
    s.close()
    check()


def test_file_permissions(db_path: Path) -> None:
    s = open_sqlite(db_path)
    s.put(NS_SESSIONS, b"k", b"v")
    try:
        for suffix in ("", "-wal", "-shm"):
            mode = db_path.with_name(db_path.name + suffix).stat().st_mode
            assert stat.S_IMODE(mode) == 0o600
    finally:
        s.close()


def test_wal_and_full_sync(db_path: Path) -> None:
    s = open_sqlite(db_path)
    try:
        conn = s._db()
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL
    finally:
        s.close()


def test_change_passphrase(db_path: Path) -> None:
    s = open_sqlite(db_path)
    s.put(NS_SESSIONS, b"a", b"1")
    s.put(NS_MESSAGES, b"b", b"2")
    old_salt, old_rows = s.params.salt, rows(db_path)
    with pytest.raises(WrongPassphrase):
        s.change_passphrase("not it", "new passphrase")
    assert s.get(NS_SESSIONS, b"a") == b"1"
    s.change_passphrase(PASSPHRASE, "new passphrase")
    assert s.params.salt != old_salt
    assert s.get(NS_SESSIONS, b"a") == b"1"
    s.close()
    new_rows = rows(db_path)
    assert {r[1] for r in new_rows}.isdisjoint({r[1] for r in old_rows})  # row ids re-keyed
    with pytest.raises(WrongPassphrase):
        open_sqlite(db_path)
    s = open_sqlite(db_path, "new passphrase")
    try:
        assert s.items(NS_SESSIONS) == [(b"a", b"1")]
        assert s.items(NS_MESSAGES) == [(b"b", b"2")]
    finally:
        s.close()


def test_change_passphrase_refused_inside_transaction(db_path: Path) -> None:
    s = open_sqlite(db_path)
    try:
        with s.transaction(), pytest.raises(StoreError, match="transaction"):
            s.change_passphrase(PASSPHRASE, "new")
    finally:
        s.close()


def test_not_a_store(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError):
        open_sqlite(junk)
    other = tmp_path / "other.db"
    tamper(other, ("CREATE TABLE t (x)", ()))
    with pytest.raises(StoreError, match="not a sealrelay"):
        open_sqlite(other)


@pytest.mark.parametrize(
    ("name", "value", "error"),
    [
        ("version", 99, "format version"),
        ("n", 3, "scrypt"),
        ("n", 2**40, "scrypt"),
        ("salt", b"short", "scrypt"),
    ],
)
def test_tampered_meta_refused(db_path: Path, name: str, value: object, error: str) -> None:
    open_sqlite(db_path).close()
    tamper(db_path, ("UPDATE meta SET value = ? WHERE name = ?", (value, name)))
    with pytest.raises(StoreError, match=error):
        open_sqlite(db_path)


def test_repr_has_no_secrets(db_path: Path) -> None:
    s = open_sqlite(db_path)
    try:
        text = repr(s) + repr(s.params)
        assert PASSPHRASE not in text
        assert s._keys.enc.hex() not in text
        assert repr(s._keys.enc) not in repr(vars(s))
        assert repr(s._keys.mac) not in repr(vars(s))
    finally:
        s.close()
