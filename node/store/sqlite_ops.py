"""What every port of the SQLite backend (``node.store.sqlite``) shares: the writer (group
commit), the reader pool and the blob files, and the small operations the worker threads
run on a connection."""

from __future__ import annotations

import sqlite3
from typing import Any

from node.store.blobfiles import BlobFiles
from node.store.commit import Readers, Writer

Params = tuple[Any, ...]


class SqliteParts:
    """The connections a port implementation runs on; :class:`~node.store.sqlite.SqliteStore`
    sets them once and every port of one store shares them (one writer: one group commit)."""

    writer: Writer
    readers: Readers
    _blob_files: BlobFiles


# --- operations, run on the worker threads ---------------------------------------------
def execute(statement: str, params: Params, conn: sqlite3.Connection) -> int:
    """Run one statement; the number of rows it changed."""
    return conn.execute(statement, params).rowcount


def execute_bare(statement: str, conn: sqlite3.Connection) -> None:
    conn.execute(statement).fetchall()


def select(statement: str, params: Params, conn: sqlite3.Connection) -> list[Any]:
    return conn.execute(statement, params).fetchall()


returning = select
