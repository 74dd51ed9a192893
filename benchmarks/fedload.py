"""Load generator for ``benchmarks.federation``: separate processes speaking the client
protocol (``wire.relay``) over real WebSockets, senders on node A, receivers on node B.

    python -m benchmarks.fedload seal B_URL ACCOUNTS_JSON COUNT OUT
    python -m benchmarks.fedload send A_URL ACCOUNTS_JSON DOMAIN RATE WINDOW OUT LAYERS...
    python -m benchmarks.fedload receive B_URL ACCOUNTS_JSON EXPECT SECONDS OUT

``seal`` fetches B's key document (``GET /.well-known/sealrelay/server``) and seals COUNT
routing layers (``client.routing.seal_for_domain``) with 1 KiB random bodies, spread over
the receivers' mailboxes (with their delivery tokens), into the file OUT: records of
``eid (16) | length (4, big-endian) | layer``. Sealing costs the client about a millisecond
of CPU per layer (cnsa2 HPKE), so it is done before the timed window.

``send`` opens one authenticated connection per account of ACCOUNTS_JSON; together they
forward every layer of the LAYERS files to DOMAIN (``Forward``), each keeping WINDOW
requests outstanding, paced at RATE envelopes/s in total (0: as fast as answered). It
writes ``eid | send time`` records (16 + 8 bytes, ``time.time_ns``) to OUT.

``receive`` logs every account in, prints a ``ready`` line once each connection has
drained its mailbox, acks every push, and stops after EXPECT distinct envelopes (or
SECONDS). It writes ``eid | receive time`` records to OUT and prints the time of its last
ack. Each role prints one JSON object on stdout when it is done.
"""

from __future__ import annotations

import json
import os
import secrets
import struct
import sys
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Final

import httpx
import trio

from benchmarks.nodeload import TTL, Account, _accounts, _login, _open, ack_run, next_answer
from benchmarks.wsclient import Closed
from client.routing import seal_for_domain
from wire import decode, encode
from wire.relay import Deliver, Drained, Envelope, Error, Forward, Sent
from wire.server import ServerKeyDocument

BODY_BYTES: Final = 1024
DOCUMENT_PATH: Final = "/.well-known/sealrelay/server"
RECORD: Final = struct.Struct(">16sQ")  # eid, time_ns
LENGTH: Final = struct.Struct(">I")
RETRY_S: Final = 0.02

__all__ = ["RECORD", "read_layers", "read_records"]


# --- files -----------------------------------------------------------------------------------


def read_layers(path: Path) -> Iterator[tuple[bytes, bytes]]:
    """``(eid, layer)`` of each record of a ``seal`` file."""
    data = path.read_bytes()
    at = 0
    while at < len(data):
        eid = data[at : at + 16]
        (size,) = LENGTH.unpack_from(data, at + 16)
        at += 20
        yield eid, data[at : at + size]
        at += size


def read_records(path: Path) -> dict[bytes, int]:
    """``eid -> time_ns`` of a ``send`` or ``receive`` file."""
    data = path.read_bytes()
    return dict(RECORD.iter_unpack(data))


# --- seal ------------------------------------------------------------------------------------


def seal(url: str, accounts: list[Account], count: int, out: Path) -> None:
    raw = httpx.get(url.rstrip("/") + DOCUMENT_PATH, timeout=30).content
    doc = decode(raw, ServerKeyDocument)
    now_ms = int(time.time() * 1000)
    started = time.process_time()
    with out.open("wb") as f:
        for i in range(count):
            acct = accounts[i % len(accounts)]
            eid = secrets.token_bytes(16)
            layer = seal_for_domain(
                doc,
                now_ms,
                mailbox=acct.mailbox,
                token=acct.token,
                eid=eid,
                ttl=TTL,
                body=os.urandom(BODY_BYTES),
            )
            f.write(eid + LENGTH.pack(len(layer)) + layer)
    cpu = time.process_time() - started
    print(json.dumps({"sealed": count, "cpu_us_per_layer": cpu * 1e6 / max(1, count)}), flush=True)


# --- send ------------------------------------------------------------------------------------


class _Supply:
    """The layers still to send, shared by all sender connections."""

    def __init__(self, layers: list[tuple[bytes, bytes]]) -> None:
        self.layers = layers
        self.next = 0
        self.answered = 0
        self.records = bytearray()

    def take(self) -> tuple[bytes, bytes] | None:
        if self.next >= len(self.layers):
            return None
        item = self.layers[self.next]
        self.next += 1
        return item


async def _forwarder(
    url: str,
    acct: Account,
    domain: str,
    supply: _Supply,
    interval: float,
    window: int,
    phase: float = 0.0,
) -> None:
    async with _open(url) as ws:
        await _login(ws, acct)
        outstanding = trio.Semaphore(window)

        async def read_replies() -> None:
            while True:
                frame = await next_answer(ws)
                if not isinstance(frame, Sent):
                    raise RuntimeError(f"sender got {type(frame).__name__}")
                supply.answered += 1
                outstanding.release()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(read_replies)
            request_id = 2
            next_at = trio.current_time() + phase
            while (item := supply.take()) is not None:
                await outstanding.acquire()
                if interval:
                    next_at += interval
                    await trio.sleep_until(next_at)
                eid, layer = item
                supply.records += RECORD.pack(eid, time.time_ns())
                await ws.send_message(encode(Forward(request_id, domain, eid, TTL, layer)))
                request_id += 1
            for _ in range(window):
                await outstanding.acquire()
            nursery.cancel_scope.cancel()


async def send(
    url: str,
    accounts: list[Account],
    domain: str,
    rate: float,
    window: int,
    layers: list[tuple[bytes, bytes]],
) -> tuple[bytes, dict[str, int]]:
    """Forward ``layers``; the ``eid | send time`` records and a summary."""
    supply = _Supply(layers)
    interval = len(accounts) / rate if rate > 0 else 0.0
    start = time.time_ns()
    async with trio.open_nursery() as nursery:
        for k, acct in enumerate(accounts):
            phase = interval * k / len(accounts)  # spread, not in lockstep (as nodeload)
            nursery.start_soon(_forwarder, url, acct, domain, supply, interval, window, phase)
    end = time.time_ns()
    return bytes(supply.records), {"sent": supply.answered, "start_ns": start, "end_ns": end}


# --- receive ---------------------------------------------------------------------------------


class _Received:
    def __init__(self, expect: int) -> None:
        self.expect = expect
        self.seen: set[bytes] = set()
        self.duplicates = 0
        self.records = bytearray()
        self.last_ack_ns = 0
        self.all_in = trio.Event()


async def _receiver(
    url: str, acct: Account, got: _Received, pending: set[bytes], all_ready: trio.Event
) -> None:
    """Receive until cancelled; (re)connect every ``RETRY_S`` while the node is down."""
    while True:
        try:
            await _receive_on(url, acct, got, pending, all_ready)
        except (OSError, Closed):
            await trio.sleep(RETRY_S)


async def _receive_on(
    url: str, acct: Account, got: _Received, pending: set[bytes], all_ready: trio.Event
) -> None:
    async with _open(url) as ws:
        await _login(ws, acct)
        while True:
            frame = decode(await ws.get_message())  # type: ignore[arg-type]
            if isinstance(frame, Deliver):
                frame = await ack_run(ws, frame, partial(_note, got))
                got.last_ack_ns = time.time_ns()
                if len(got.seen) >= got.expect:
                    got.all_in.set()
            if isinstance(frame, Drained):
                pending.discard(acct.mailbox)
                if not pending:
                    all_ready.set()
            elif isinstance(frame, Error):
                raise RuntimeError(f"receiver got {frame.code}: {frame.message}")


def _note(got: _Received, env: Envelope, now: int) -> None:
    """Record ``env`` if it is seen first, else count a duplicate."""
    if env.eid in got.seen:
        got.duplicates += 1
        return
    got.seen.add(env.eid)
    got.records += RECORD.pack(env.eid, now)


async def receive(
    url: str, accounts: list[Account], expect: int, seconds: float
) -> tuple[bytes, dict[str, int]]:
    """Receive ``expect`` envelopes; the ``eid | receive time`` records and a summary."""
    got = _Received(expect)
    pending = {acct.mailbox for acct in accounts}
    all_ready = trio.Event()
    start = time.time_ns()
    with trio.move_on_after(seconds):
        async with trio.open_nursery() as nursery:
            for acct in accounts:
                nursery.start_soon(_receiver, url, acct, got, pending, all_ready)
            await all_ready.wait()
            print(json.dumps({"ready": True}), flush=True)
            await got.all_in.wait()
            nursery.cancel_scope.cancel()
    return bytes(got.records), {
        "received": len(got.seen),
        "duplicates": got.duplicates,
        "start_ns": start,
        "last_ack_ns": got.last_ack_ns,
    }


def main(argv: list[str]) -> None:
    role, url = argv[0], argv[1]
    accounts = _accounts(argv[2])
    if role == "seal":
        seal(url, accounts, int(argv[3]), Path(argv[4]))
        return
    if role == "send":
        rate, window, out = float(argv[4]), int(argv[5]), Path(argv[6])
        layers = [item for path in argv[7:] for item in read_layers(Path(path))]
        records, doc = trio.run(send, url, accounts, argv[3], rate, window, layers)
    elif role == "receive":
        out = Path(argv[5])
        records, doc = trio.run(receive, url, accounts, int(argv[3]), float(argv[4]))
    else:
        raise SystemExit(f"unknown role {role!r}")
    out.write_bytes(records)
    print(json.dumps(doc), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
