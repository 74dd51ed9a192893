"""A child process for the SQLite store's tests (run with ``python -m``).

enqueue DB TASKS    enqueue envelopes to mailbox MAILBOX forever from TASKS concurrent
                    tasks; print each eid (hex) once its enqueue has returned
invite DB HASH NAME EXPIRES
                    add one invite and exit, as ``sealrelay admin invite`` does
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import trio

from node.store import SqliteStore, StoredEnvelope

MAILBOX = b"K" * 16
EXPIRES = 2**62


async def enqueue_forever(path: Path, tasks: int) -> None:
    store = await SqliteStore.open(path)

    async def sender() -> None:
        while True:
            eid = os.urandom(16)
            envelope = StoredEnvelope(MAILBOX, eid, 0, 0, EXPIRES, "b.example", None, b"x" * 200)
            await store.enqueue(envelope)
            sys.stdout.write(eid.hex() + "\n")
            sys.stdout.flush()

    async with trio.open_nursery() as nursery:
        for _ in range(tasks):
            nursery.start_soon(sender)


async def invite(path: Path, code_hash: bytes, name: str, expires: int) -> None:
    store = await SqliteStore.open(path)
    try:
        await store.add_invite(code_hash, name, expires)
    finally:
        await store.aclose()


def main(argv: list[str]) -> None:
    command, path = argv[0], Path(argv[1])
    if command == "enqueue":
        trio.run(enqueue_forever, path, int(argv[2]))
    elif command == "invite":
        trio.run(invite, path, bytes.fromhex(argv[2]), argv[3], int(argv[4]))
    else:
        raise SystemExit(f"unknown command {command}")


if __name__ == "__main__":
    main(sys.argv[1:])
