"""A full database (``PRAGMA max_page_count``: SQLite answers ``SQLITE_FULL`` as on a full
disk): the writes that do not fit fail with :class:`StoreFull`, alone or in a group
commit, nothing of them is stored, the writer thread lives on, and once there is room
again writes succeed. The disk itself is filled in ``tests/resilience/test_disk_full.py``."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import trio

from node.store import SqliteStore, StoreFull
from tests.node.harness import eid
from tests.node.store.contract import MAILBOX, NOW, envelope

BODY = bytes(4096)


async def _limit(store: SqliteStore, pages: int | None) -> None:
    """Cap the database at its current size plus ``pages`` (None: no cap)."""

    def cap(conn: sqlite3.Connection) -> None:
        now = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {now + pages if pages is not None else 2**30}")

    await store.writer.run(cap, bare=True)


async def _stored(store: SqliteStore) -> set[bytes]:
    return {e.eid for e in await store.pending(MAILBOX, 0, 10_000, NOW)}


@pytest.mark.parametrize("together", [1, 8])
async def test_a_full_database_refuses_writes_and_recovers(tmp_path: Path, together: int) -> None:
    store = await SqliteStore.open(tmp_path / "node.sqlite3")
    try:
        await _limit(store, 4)
        acked: set[bytes] = set()
        refused: list[StoreFull] = []

        async def send(n: int) -> None:
            try:
                await store.enqueue(envelope(eid(n), body=BODY))
                acked.add(eid(n))
            except StoreFull as exc:
                refused.append(exc)

        for first in range(0, 64, together):
            async with trio.open_nursery() as nursery:  # one group commit of ``together``
                for n in range(first, first + together):
                    nursery.start_soon(send, n)
        assert refused, "the capped database never filled"
        assert "full" in str(refused[0])
        assert await _stored(store) == acked  # what failed was not stored
        await _limit(store, None)
        await send(1000)
        assert eid(1000) in acked
        assert await _stored(store) == acked
    finally:
        await store.aclose()
