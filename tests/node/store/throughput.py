"""Throughput of the SQLite store under many concurrent callers (a script, not a test).

    .venv/bin/python -m tests.node.store.throughput [--seconds 5] [--tasks 256]
        [--mailboxes 1000] [--body 1024] [--synchronous FULL] [--dir DIR]

Each task loops over the node's per-envelope work: ``enqueue`` one envelope to a random
mailbox, read that mailbox's ``pending`` and ``ack`` what it got (mailboxes apart from the
first phase's, so no backlog is drained). It prints envelopes per
second (each = enqueue + pending + ack), store calls per second and the writer's batch
sizes. A first phase does ``enqueue`` alone.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import tempfile
import time
from pathlib import Path

import trio

from node.store import SqliteStore, StoredEnvelope

HOUR_MS = 3_600_000


async def _enqueue_only(store: SqliteStore, args: argparse.Namespace, deadline: float) -> int:
    done = 0
    body = os.urandom(args.body)

    async def task() -> None:
        nonlocal done
        while time.monotonic() < deadline:
            now = int(time.time() * 1000)
            mailbox = random.randrange(args.mailboxes).to_bytes(16, "big")
            await store.enqueue(
                StoredEnvelope(
                    mailbox, os.urandom(16), 0, now, now + HOUR_MS, "b.example", None, body
                )
            )
            done += 1

    async with trio.open_nursery() as nursery:
        for _ in range(args.tasks):
            nursery.start_soon(task)
    return done


async def _full_cycle(store: SqliteStore, args: argparse.Namespace, deadline: float) -> int:
    done = 0
    body = os.urandom(args.body)

    async def task() -> None:
        nonlocal done
        while time.monotonic() < deadline:
            now = int(time.time() * 1000)
            mailbox = (args.mailboxes + random.randrange(args.mailboxes)).to_bytes(16, "big")
            await store.enqueue(
                StoredEnvelope(
                    mailbox, os.urandom(16), 0, now, now + HOUR_MS, "b.example", None, body
                )
            )
            pending = await store.pending(mailbox, 0, 100, now)
            if pending:
                await store.ack(mailbox, [e.eid for e in pending])
            done += 1

    async with trio.open_nursery() as nursery:
        for _ in range(args.tasks):
            nursery.start_soon(task)
    return done


def _cpu() -> tuple[float, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


def _report(what: str, n: int, took: float, cpu0: tuple[float, float], store: SqliteStore) -> str:
    user, system = (b - a for a, b in zip(cpu0, _cpu(), strict=True))
    return (
        f"{what}: {n / took:,.0f}/s; CPU {1e6 * (user + system) / n:.0f} us each"
        f" ({1e6 * user / n:.0f} user, {1e6 * system / n:.0f} system);"
        f" {_batches(store)}"
    )


def _batches(store: SqliteStore) -> str:
    w = store.writer
    mean = w.ops / max(w.batches, 1)
    return f"writer batches {w.batches}, mean {mean:.1f} ops, largest {w.largest_batch}"


async def main(args: argparse.Namespace) -> None:
    directory = Path(args.dir or tempfile.mkdtemp(prefix="store-throughput-"))
    store = await SqliteStore.open(
        directory / "node.sqlite3", synchronous=args.synchronous, readers=args.readers
    )
    try:
        cpu, start = _cpu(), time.monotonic()
        n = await _enqueue_only(store, args, start + args.seconds)
        print(_report("enqueue alone", n, time.monotonic() - start, cpu, store))
        store.writer.batches = store.writer.ops = store.writer.largest_batch = 0
        cpu, start = _cpu(), time.monotonic()
        n = await _full_cycle(store, args, start + args.seconds)
        print(
            _report("envelopes (enqueue + pending + ack)", n, time.monotonic() - start, cpu, store)
        )
    finally:
        await store.aclose()


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--tasks", type=int, default=256)
    parser.add_argument("--mailboxes", type=int, default=1000)
    parser.add_argument("--body", type=int, default=1024)
    parser.add_argument("--synchronous", default="FULL")
    parser.add_argument("--readers", type=int, default=2)
    parser.add_argument(
        "--dir", default=None, help="where to put the database (default: a temp dir)"
    )
    return parser.parse_args()


if __name__ == "__main__":
    trio.run(main, _parse())
