"""What only the SQLite store promises: group commit with per-operation failures, durability
under ``kill -9``, a second process writing the same file, schema versions, blob files."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from functools import partial
from pathlib import Path

import pytest
import trio
import trio.testing

from node.store import SqliteStore, StoreError
from node.store.sqlite_schema import MIGRATIONS, SCHEMA_VERSION
from tests.node.harness import eid
from tests.node.store import store_child
from tests.node.store.contract import HOUR, MAILBOX, NOW, device, envelope

REPO = Path(__file__).resolve().parents[3]
CHILD = [sys.executable, "-m", "tests.node.store.store_child"]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "node.sqlite3"


async def hold_the_writer(store: SqliteStore, nursery: trio.Nursery) -> threading.Event:
    """Keep the writer thread busy in an op of its own until the returned event is set, so
    that whatever is queued meanwhile forms the next batch."""
    entered, gate = threading.Event(), threading.Event()

    def hold(_: sqlite3.Connection) -> None:
        entered.set()
        gate.wait(10)

    nursery.start_soon(store.writer.run, hold)
    await trio.to_thread.run_sync(entered.wait, 10)
    return gate


async def test_a_batch_commits_everything_but_the_op_that_failed(db: Path) -> None:
    store = await SqliteStore.open(db)
    results: dict[str, object] = {}

    def writes_then_fails(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO invites (code_hash, name, expires) VALUES (x'00', 'bad', 1)")
        raise ValueError("this op only")

    async def call(name: str, fn: object) -> None:
        try:
            results[name] = await fn()  # type: ignore[operator]
        except ValueError as exc:
            results[name] = exc

    async with trio.open_nursery() as nursery:
        gate = await hold_the_writer(store, nursery)
        batches = store.writer.batches
        nursery.start_soon(call, "first", partial(store.enqueue, envelope(eid(1))))
        nursery.start_soon(call, "bad", partial(store.writer.run, writes_then_fails))
        nursery.start_soon(call, "last", partial(store.enqueue, envelope(eid(2))))
        await trio.testing.wait_all_tasks_blocked()
        gate.set()
    assert store.writer.batches == batches + 2  # the blocker's batch, then the other three
    assert isinstance(results["bad"], ValueError)
    assert {results["first"], results["last"]} == {(True, 1), (True, 2)}  # in either order
    assert await store.count_pending(MAILBOX, NOW) == 2
    assert (await store.stats())["invites"] == 0  # the failed op's insert was rolled back
    await store.aclose()


async def test_a_lost_transaction_fails_every_op_of_its_batch(db: Path) -> None:
    store = await SqliteStore.open(db)
    failures: list[BaseException] = []

    def loses_the_transaction(conn: sqlite3.Connection) -> None:
        conn.execute("ROLLBACK")  # what SQLite does itself on an I/O error or a full disk
        raise OSError("disk full")

    async def call(fn: object) -> None:
        try:
            await fn()  # type: ignore[operator]
        except StoreError as exc:
            failures.append(exc)

    async with trio.open_nursery() as nursery:
        gate = await hold_the_writer(store, nursery)
        nursery.start_soon(call, partial(store.enqueue, envelope(eid(1))))
        nursery.start_soon(call, partial(store.writer.run, loses_the_transaction))
        await trio.testing.wait_all_tasks_blocked()
        gate.set()
    assert len(failures) == 2  # the enqueue did not commit, so it must not report success
    assert await store.count_pending(MAILBOX, NOW) == 0
    assert await store.enqueue(envelope(eid(1))) == (True, 1)  # and the store goes on
    await store.aclose()


async def test_a_cancelled_caller_leaves_the_store_working(db: Path) -> None:
    store = await SqliteStore.open(db)
    async with trio.open_nursery() as nursery:
        gate = await hold_the_writer(store, nursery)
        with trio.move_on_after(0.05) as scope:
            await store.enqueue(envelope(eid(1)))
        assert scope.cancelled_caught
        gate.set()
    assert await store.enqueue(envelope(eid(1))) == (False, 1)  # it still ran
    await store.aclose()


async def test_everything_survives_reopening(db: Path) -> None:
    store = await SqliteStore.open(db)
    await store.add_invite(b"h", "alice", NOW + HOUR)
    assert await store.register(b"h", "alice", device(), NOW)
    await store.enqueue(envelope(eid(1)))
    _, seq = await store.enqueue(envelope(eid(2)))
    await store.ack(MAILBOX, [eid(2)])
    await store.aclose()

    store = await SqliteStore.open(db)
    assert await store.device("alice@a.example", 1) == device()
    assert [e.eid for e in await store.pending(MAILBOX, 0, 10, NOW)] == [eid(1)]
    assert await store.enqueue(envelope(eid(2))) == (False, 0)
    assert (await store.enqueue(envelope(eid(3))))[1] > seq
    await store.aclose()
    assert os.stat(db).st_mode & 0o777 == 0o600


async def test_a_file_from_a_newer_version_is_refused(db: Path) -> None:
    store = await SqliteStore.open(db)
    await store.aclose()
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO schema_version VALUES (?, 0)", (SCHEMA_VERSION + 1,))
    conn.close()
    with pytest.raises(StoreError, match="schema version"):
        await SqliteStore.open(db)


async def test_a_version_1_file_upgrades_and_keeps_its_data(db: Path) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied INTEGER)")
        for statement in MIGRATIONS[1]:
            conn.execute(statement)
        conn.execute("INSERT INTO schema_version VALUES (1, 0)")
        d = device()
        conn.execute(
            "INSERT INTO devices VALUES (?, ?, ?, ?, ?)",
            (d.address, d.device, d.identity, d.mailbox, d.created),
        )
        conn.execute("INSERT INTO token_verifiers VALUES (?, ?)", (d.address, b"v" * 32))
    conn.close()

    store = await SqliteStore.open(db)
    assert await store.device("alice@a.example", 1) == device()
    assert await store.token_verifier("alice@a.example") == b"v" * 32
    assert await store.accepts_introductions("alice@a.example") is False
    await store.set_accepts_introductions("alice@a.example", True)
    await store.aclose()

    store = await SqliteStore.open(db)
    assert await store.accepts_introductions("alice@a.example") is True
    await store.aclose()
    with sqlite3.connect(db) as conn:
        versions = [v for (v,) in conn.execute("SELECT version FROM schema_version ORDER BY 1")]
    conn.close()
    assert versions == list(range(1, SCHEMA_VERSION + 1))


async def test_a_file_that_is_not_a_nodes_is_refused(db: Path) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE records (id)")
    conn.close()
    with pytest.raises(StoreError):
        await SqliteStore.open(db)


async def test_a_second_instance_writes_while_the_first_runs(db: Path) -> None:
    node = await SqliteStore.open(db)
    admin = await SqliteStore.open(db)
    sent = 0

    async def traffic() -> None:
        nonlocal sent
        while True:
            await node.enqueue(envelope(os.urandom(16)))
            sent += 1

    async with trio.open_nursery() as nursery:
        for _ in range(8):
            nursery.start_soon(traffic)
        await admin.add_invite(b"h", "alice", NOW + HOUR)
        await admin.aclose()
        assert await node.register(b"h", "alice", device(), NOW)
        nursery.cancel_scope.cancel()
    assert sent > 0
    await node.aclose()


async def test_an_invite_from_another_process_while_the_node_writes(db: Path) -> None:
    node = await SqliteStore.open(db)

    async def traffic() -> None:
        while True:
            await node.enqueue(envelope(os.urandom(16)))

    async with trio.open_nursery() as nursery:
        for _ in range(8):
            nursery.start_soon(traffic)
        command = [*CHILD, "invite", str(db), b"h".hex(), "alice", str(NOW + HOUR)]
        with trio.fail_after(30):
            await trio.run_process(command, cwd=REPO)
        assert await node.register(b"h", "alice", device(), NOW)
        nursery.cancel_scope.cancel()
    await node.aclose()


async def test_every_returned_enqueue_survives_kill_9(db: Path) -> None:
    printed = bytearray()
    async with trio.open_nursery() as nursery:
        command = [*CHILD, "enqueue", str(db), "16"]
        run = partial(trio.run_process, command, cwd=REPO, stdout=subprocess.PIPE, check=False)
        child: trio.Process = await nursery.start(run)
        assert child.stdout is not None
        with trio.fail_after(30):
            while printed.count(b"\n") < 2000:
                chunk = await child.stdout.receive_some()
                assert chunk, "the child stopped on its own"
                printed += chunk
        child.kill()  # SIGKILL, mid-stream: sixteen enqueues are in flight
        with trio.fail_after(10):
            while chunk := await child.stdout.receive_some():
                printed += chunk
    assert child.returncode == -signal.SIGKILL
    eids = [bytes.fromhex(line.decode()) for line in printed.split(b"\n")[:-1]]
    assert len(eids) >= 2000

    store = await SqliteStore.open(db)
    found = Counter(e.eid for e in await store.pending(store_child.MAILBOX, 0, 10**7, NOW))
    await store.aclose()
    assert [e for e in eids if found[e] != 1] == []
    assert max(found.values()) == 1


async def test_blob_files_come_and_go_with_their_rows(db: Path) -> None:
    store = await SqliteStore.open(db)
    blob_dir = db.with_name(db.name + "-blobs")
    await store.grant_blob(b"B" * 16, b"T" * 32, 3, NOW + HOUR)
    assert await store.put_blob(b"B" * 16, b"T" * 32, b"abc", NOW)
    assert (blob_dir / (b"B" * 16).hex()).read_bytes() == b"abc"

    orphan = blob_dir / (b"O" * 16).hex()  # a crash between a sweep's commit and unlink
    orphan.write_bytes(b"o")
    fresh_part = blob_dir / f"{(b'P' * 16).hex()}.1234.part"  # an upload in progress
    fresh_part.write_bytes(b"p")
    stale_part = blob_dir / f"{(b'Q' * 16).hex()}.5678.part"  # a crash during an upload
    stale_part.write_bytes(b"q")
    two_hours_ago = time.time() - 7200
    os.utime(stale_part, (two_hours_ago, two_hours_ago))

    assert (await store.sweep(NOW)).blobs == 0
    assert sorted(p.name for p in blob_dir.iterdir()) == sorted(
        [(b"B" * 16).hex(), fresh_part.name]
    )
    assert (await store.sweep(NOW + HOUR)).blobs == 1
    assert [p.name for p in blob_dir.iterdir()] == [fresh_part.name]
    await store.aclose()


async def test_a_refused_upload_writes_no_file(db: Path) -> None:
    store = await SqliteStore.open(db)
    await store.grant_blob(b"B" * 16, b"T" * 32, 3, NOW + HOUR)
    assert not await store.put_blob(b"B" * 16, b"X" * 32, b"abc", NOW)
    assert not await store.put_blob(b"B" * 16, b"T" * 32, b"abcd", NOW)
    assert list(db.with_name(db.name + "-blobs").iterdir()) == []
    await store.aclose()


async def test_concurrent_enqueues_share_commits(db: Path) -> None:
    store = await SqliteStore.open(db)
    async with trio.open_nursery() as nursery:
        for n in range(200):
            nursery.start_soon(store.enqueue, envelope(eid(n)))
    assert store.writer.ops == 200
    assert store.writer.batches < 100
    assert await store.count_pending(MAILBOX, NOW) == 200
    await store.aclose()
