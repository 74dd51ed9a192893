"""Worker threads between trio and SQLite: one group-committing writer, a few readers.

A trio task hands an operation (a function of a ``sqlite3.Connection``) to a thread
through a ``queue.SimpleQueue`` and parks itself. The thread takes everything queued (up
to ``max_batch``), runs it, and wakes all of the batch's callers with one
``TrioToken.run_sync_soon``, each with its own value or its own exception::

    writer   BEGIN IMMEDIATE
               SAVEPOINT op; op 1; RELEASE op      (on error: ROLLBACK TO op, only that
               SAVEPOINT op; op 2; RELEASE op       op fails; the rest still commit)
               ...
             COMMIT                                 one fsync for the whole batch
             wake the callers                       so an await returns after the commit

    reader   BEGIN; op 1; op 2; ...; COMMIT         one snapshot, no writes

A caller cancelled while waiting gets ``trio.Cancelled`` at once; its operation still runs
(a write may still commit), and its result is dropped.
"""

from __future__ import annotations

import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable
from typing import Any, Final, TypeVar

import outcome
import trio

from node.store.errors import StoreClosed, StoreError, StoreFull

T = TypeVar("T")
Connect = Callable[[], sqlite3.Connection]
Operation = Callable[[sqlite3.Connection], T]

DEFAULT_MAX_BATCH: Final = 1024
_STOP: Final = object()


class _Op:
    __slots__ = ("abandoned", "bare", "fn", "result", "task")

    def __init__(self, fn: Operation[Any], task: trio.lowlevel.Task, bare: bool = False) -> None:
        self.fn = fn
        self.task = task
        self.bare = bare  # run outside any transaction (a checkpoint)
        self.result: outcome.Outcome[Any] | None = None  # None: it never ran
        self.abandoned = False


class _Worker:
    """Threads that run queued operations and wake their callers in batches."""

    def __init__(self, name: str, connect: Connect, threads: int, max_batch: int) -> None:
        self._connect = connect
        self._token = trio.lowlevel.current_trio_token()
        self._queue: queue.SimpleQueue[_Op | object] = queue.SimpleQueue()
        self._max_batch = max_batch
        self._closed = False
        self._broken: BaseException | None = None
        self.batches = 0  # statistics, read by tests and the throughput script
        self.ops = 0
        self.largest_batch = 0
        self._threads = [
            threading.Thread(target=self._main, name=f"{name}-{i}", daemon=True)
            for i in range(threads)
        ]
        for thread in self._threads:
            thread.start()

    async def run(self, fn: Operation[T], *, bare: bool = False) -> T:
        """Run ``fn`` on a worker's connection; its value, or its exception raised here.

        ``bare`` (writer only): run it after the batch's commit, outside any transaction,
        as ``PRAGMA wal_checkpoint`` needs.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        # Nothing yields between this check and the put, so no op is queued behind _STOP.
        if self._closed or self._broken is not None:
            raise StoreClosed("the store is closed")
        op = _Op(fn, trio.lowlevel.current_task(), bare)
        self._queue.put(op)

        def abort(_: trio.lowlevel.RaiseCancelT) -> trio.lowlevel.Abort:
            op.abandoned = True
            return trio.lowlevel.Abort.SUCCEEDED

        value: T = await trio.lowlevel.wait_task_rescheduled(abort)
        return value

    async def aclose(self) -> None:
        """Let the queued operations finish, then stop the threads."""
        if not self._closed:
            self._closed = True
            for _ in self._threads:
                self._queue.put(_STOP)
        for thread in self._threads:
            await trio.to_thread.run_sync(thread.join)

    # --- in the worker threads ---------------------------------------------------------
    def _main(self) -> None:
        try:
            conn = self._connect()
        except BaseException as exc:
            self._broken = exc
            self._fail_queued()
            raise
        try:
            while True:
                batch, stop = self._next_batch()
                if batch:
                    self._execute(conn, batch)
                    self._note(len(batch))
                    self._deliver(batch)
                if stop:
                    return
        except BaseException as exc:  # a bug here must not leave callers parked forever
            self._broken = exc
            self._fail_queued()
            raise
        finally:
            conn.close()

    def _next_batch(self) -> tuple[list[_Op], bool]:
        item = self._queue.get()
        batch: list[_Op] = []
        while True:
            if item is _STOP:
                return batch, True
            assert isinstance(item, _Op)  # noqa: S101 (only _Op and _STOP are queued)
            batch.append(item)
            if len(batch) >= self._max_batch:
                return batch, False
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return batch, False

    def _execute(self, conn: sqlite3.Connection, batch: list[_Op]) -> None:
        raise NotImplementedError

    def _note(self, size: int) -> None:
        self.batches += 1
        self.ops += size
        self.largest_batch = max(self.largest_batch, size)

    def _deliver(self, batch: list[_Op]) -> None:
        with contextlib.suppress(trio.RunFinishedError):  # trio is gone, and its waiters
            self._token.run_sync_soon(_wake, batch)

    def _fail_queued(self) -> None:
        batch: list[_Op] = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, _Op):
                item.result = outcome.Error(StoreClosed("the store's worker thread stopped"))
                batch.append(item)
        if batch:
            self._deliver(batch)


def _wake(batch: list[_Op]) -> None:
    """In the trio thread: hand each waiting caller its result."""
    for op in batch:
        if not op.abandoned:
            result = op.result or outcome.Error(StoreClosed("store closed"))
            trio.lowlevel.reschedule(op.task, result)


def _failure(exc: sqlite3.Error, what: str) -> StoreError:
    """``exc`` as a :class:`StoreError` (:class:`StoreFull` for ``SQLITE_FULL``: the disk
    has no room for the write), chained to it."""
    full = getattr(exc, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_FULL
    error = (StoreFull if full else StoreError)(f"{what}: {exc}")
    error.__cause__ = exc
    return error


def _capture(op: _Op, conn: sqlite3.Connection) -> None:
    """Run ``op`` into its result; an SQLite error becomes a :class:`StoreError`."""
    result = outcome.capture(op.fn, conn)
    if isinstance(result, outcome.Error) and isinstance(result.error, sqlite3.Error):
        result = outcome.Error(_failure(result.error, "the operation failed"))
    op.result = result


class Writer(_Worker):
    """The one writer: every queued operation of a batch in one transaction."""

    def __init__(self, connect: Connect, *, max_batch: int = DEFAULT_MAX_BATCH) -> None:
        super().__init__("store-writer", connect, 1, max_batch)

    def _execute(self, conn: sqlite3.Connection, batch: list[_Op]) -> None:
        bare = [op for op in batch if op.bare]
        if bare:
            batch = [op for op in batch if not op.bare]
        if batch:
            self._transaction(conn, batch)
        for op in bare:
            _capture(op, conn)

    def _transaction(self, conn: sqlite3.Connection, batch: list[_Op]) -> None:
        try:
            conn.execute("BEGIN IMMEDIATE")
            if _run_in_savepoints(conn, batch):
                conn.execute("COMMIT")
            else:
                conn.rollback()
        except sqlite3.Error as exc:  # the transaction as a whole failed: so did every op
            if conn.in_transaction:
                conn.rollback()
            for op in batch:
                op.result = outcome.Error(_failure(exc, "transaction failed"))


def _run_in_savepoints(conn: sqlite3.Connection, batch: list[_Op]) -> bool:
    """Run each op in its own savepoint; whether there is anything to commit."""
    if len(batch) == 1:  # no savepoint needed: a failure rolls the transaction back
        _capture(batch[0], conn)
        return isinstance(batch[0].result, outcome.Value)
    for op in batch:
        conn.execute("SAVEPOINT op")
        _capture(op, conn)
        if isinstance(op.result, outcome.Error):
            if not conn.in_transaction:  # SQLite rolled everything back (I/O error, full)
                raise _rolled_back(op.result.error)
            conn.execute("ROLLBACK TO op")
        conn.execute("RELEASE op")
    return True


def _rolled_back(error: BaseException) -> sqlite3.Error:
    """The error that ends a batch SQLite rolled back whole, keeping a full disk's code."""
    cause = error.__cause__ if isinstance(error, StoreError) else error
    if isinstance(cause, sqlite3.Error):
        return cause
    return sqlite3.OperationalError("the transaction was rolled back")


class Readers(_Worker):
    """Reader threads, each with its own connection; a batch shares one snapshot."""

    def __init__(
        self, connect: Connect, *, threads: int = 2, max_batch: int = DEFAULT_MAX_BATCH
    ) -> None:
        super().__init__("store-reader", connect, threads, max_batch)

    def _execute(self, conn: sqlite3.Connection, batch: list[_Op]) -> None:
        try:
            conn.execute("BEGIN")
        except sqlite3.Error as exc:
            for op in batch:
                op.result = outcome.Error(_failure(exc, "cannot start a read"))
            return
        for op in batch:
            _capture(op, conn)
        conn.rollback()
