"""Load generator for ``benchmarks.node``: runs as a separate process, speaks the client
protocol (``wire.relay``) over real WebSockets to a real node.

    python -m benchmarks.nodeload setup URL ACCOUNTS_JSON CODES...   register accounts
    python -m benchmarks.nodeload receive URL ACCOUNTS_JSON FIRST COUNT SECONDS
    python -m benchmarks.nodeload send URL ACCOUNTS_JSON FIRST COUNT SECONDS TARGETS RATE WINDOW
                                       [BATCH]
    python -m benchmarks.nodeload idle URL COUNT SECONDS

Envelope bodies are 1 KiB of random bytes whose first 8 bytes are the send time
(``time.time_ns``), so a receiver in another process measures send-to-receive latency.
The node cannot tell them from sealed envelopes: it never opens a body. Each role prints
one JSON object on stdout when it is done (``receive`` and ``idle`` print a ``ready``
line first).

A sender keeps at most ``WINDOW`` envelopes unanswered. With ``BATCH`` above 1 (default 1)
it sends what may go at that moment (free window slots; when paced, only sends already
due) in one ``SendBatch`` of at most ``BATCH``, as a client sends its queued outbox; it
never waits to fill a batch. Paced senders start at evenly spread phases of their
interval, as independent clients would, rather than all sending in the same instant. All
senders connect before any of them sends, and SECONDS count from then. Senders send as
clients do since unattributed sealed sending (issue 20): over ``/v1/sealed``, a connection
that never logs in, authorised by the recipient's delivery token alone
(``SEALRELAY_BENCH_SEALED_PATH=0`` sends over logged-in ``/v1/client`` connections, the
path clients used before). A
receiver acks with one ``Ack`` the ``Deliver`` it read and those already read behind it
(never waiting for more).
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import trio

from benchmarks.harness import nearest_rank
from benchmarks.wsclient import Closed, WebSocket, connect
from client.entropy import SYSTEM_ENTROPY
from client.identity import Identity
from client.net import auth_signature
from suites import get_suite, get_suite_by_id, labels
from suites.tokens import delivery_token_verifier
from wire import decode, encode
from wire.relay import (
    PURPOSE_AUTH,
    PURPOSE_REGISTER,
    Ack,
    Auth,
    Authenticated,
    AuthPayload,
    Deliver,
    Drained,
    Envelope,
    Error,
    Hello,
    Register,
    Send,
    SendBatch,
    Sent,
    SentBatch,
    SetDeliveryToken,
)

BODY_BYTES: Final = 1024
TTL: Final = 3600
MAX_MESSAGE: Final = 2 * 1024 * 1024
IDLE_TRIES: Final = 3
"""Opening handshakes an idle connection tries: with thousands opened at once on a busy
machine, hypercorn (``client_websocket = "hypercorn"``) was seen closing a few before it
answered."""
ACK_MAX: Final = 1024  # the most eids in one Ack (wire.relay.Ack)


SEALED_SENDERS: Final = os.environ.get("SEALRELAY_BENCH_SEALED_PATH", "1") != "0"
"""Senders use the anonymous ``/v1/sealed`` path (the default) or log in on ``/v1/client``."""


def _ws_url(url: str, path: str = "/v1/client") -> str:
    return url.replace("http://", "ws://", 1).rstrip("/") + path


@asynccontextmanager
async def _open(url: str, tries: int = 1, path: str = "/v1/client") -> AsyncIterator[WebSocket]:
    """A WebSocket to the node at ``path``; ``tries`` opening handshakes before giving up."""
    for attempt in range(1, tries + 1):
        try:
            ws = await connect(_ws_url(url, path), MAX_MESSAGE)
            break
        except Closed:
            if attempt == tries:
                raise
    try:
        yield ws
    finally:
        await ws.aclose()


async def _hello(ws: WebSocket) -> Hello:
    return decode(await ws.get_message(), Hello)  # type: ignore[arg-type]


async def _request(ws: WebSocket, frame: object) -> Any:
    await ws.send_message(encode(frame))
    while True:
        reply = decode(await ws.get_message())  # type: ignore[arg-type]
        if isinstance(reply, Error):
            raise RuntimeError(f"node refused {type(frame).__name__}: {reply.code} {reply.message}")
        if isinstance(reply, Deliver | Drained):
            continue
        return reply


async def next_answer(ws: WebSocket) -> object:
    """The next frame answering one of this connection's requests: pushes (Authenticated,
    Deliver, Drained) are skipped, an Error raises."""
    while True:
        frame = decode(await ws.get_message())  # type: ignore[arg-type]
        if isinstance(frame, Error):
            raise RuntimeError(f"sender got {frame.code}: {frame.message}")
        if not isinstance(frame, Authenticated | Deliver | Drained):
            return frame


# --- setup -----------------------------------------------------------------------------


async def _register_one(url: str, name: str, code: str) -> dict[str, Any]:
    async with _open(url) as ws:
        hello = await _hello(ws)
        suite = get_suite_by_id(hello.suite)
        identity = Identity.generate(suite, SYSTEM_ENTROPY)
        address = f"{name}@{hello.server}"
        sig = auth_signature(identity, PURPOSE_REGISTER, hello, address, 0)
        reg = await _request(ws, Register(1, code, name, identity.public, sig))
        token = secrets.token_bytes(16)
        verifier = delivery_token_verifier(token)
        await _request(ws, SetDeliveryToken(2, verifier))
        return {
            "address": reg.address,
            "device": reg.device,
            "mailbox": reg.mailbox.hex(),
            "token": token.hex(),
            "suite": suite.name,
            "sig_key": suite.sig.private_key_bytes(identity.sig_key).hex(),
        }


async def setup(url: str, out: Path, codes: list[str]) -> None:
    accounts: list[dict[str, Any]] = [{} for _ in codes]

    async def one(i: int, item: str) -> None:
        name, code = item.split("=", 1)
        accounts[i] = await _register_one(url, name, code)

    limiter = trio.CapacityLimiter(8)

    async def limited(i: int, item: str) -> None:
        async with limiter:
            await one(i, item)

    async with trio.open_nursery() as nursery:
        for i, item in enumerate(codes):
            nursery.start_soon(limited, i, item)
    await trio.Path(out).write_text(json.dumps(accounts), encoding="utf-8")
    print(json.dumps({"registered": len(accounts)}), flush=True)


# --- authenticated connections ------------------------------------------------------------


@dataclass
class Account:
    address: str
    device: int
    mailbox: bytes
    token: bytes
    suite: str
    sig_key: bytes

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Account:
        return cls(
            d["address"],
            d["device"],
            bytes.fromhex(d["mailbox"]),
            bytes.fromhex(d["token"]),
            d["suite"],
            bytes.fromhex(d["sig_key"]),
        )


async def _login(ws: WebSocket, acct: Account) -> None:
    hello = await _hello(ws)
    suite = get_suite(acct.suite)
    key = suite.sig.private_key_from_bytes(acct.sig_key)
    payload = AuthPayload(PURPOSE_AUTH, hello.server, hello.nonce, acct.address, acct.device)
    sig = suite.sig.sign(key, encode(payload), labels.CTX_DEVICE_AUTH)
    await ws.send_message(encode(Auth(1, acct.address, acct.device, sig)))


async def ack_run(
    ws: WebSocket, first: Deliver, take: Callable[[Envelope, int], None]
) -> object | None:
    """Ack ``first`` and the Delivers already read behind it with one ``Ack`` (never
    waiting for more), calling ``take(envelope, receive time in ns)`` for each envelope;
    the next frame already read that is not a Deliver, else ``None``."""
    now = time.time_ns()
    eids: list[bytes] = []
    frame: object | None = first
    while isinstance(frame, Deliver):
        for env in frame.envelopes:
            eids.append(env.eid)
            take(env, now)
        more = ws.message_ready() if len(eids) < ACK_MAX - 256 else None
        frame = None if more is None else decode(more)
    await ws.send_message(encode(Ack(0, tuple(eids))))
    return frame


@dataclass
class ReceiveStats:
    received: int = 0
    duplicates: int = 0
    latencies_ns: list[int] = field(default_factory=list)
    to_node_ns: list[int] = field(default_factory=list)
    """From the send to the node's timestamp of the envelope (``Envelope.ts``, whole
    milliseconds, taken once the node has read and checked it, just before its commit):
    how much of the send-to-receive time passes before the node takes the message up."""


async def _receiver(
    url: str, acct: Account, stats: ReceiveStats, ready: trio.Event, counter: list[int]
) -> None:
    seen: set[bytes] = set()
    lat, to_node = stats.latencies_ns, stats.to_node_ns

    def take(env: Envelope, now: int) -> None:
        if env.eid in seen:
            stats.duplicates += 1
            return
        seen.add(env.eid)
        stats.received += 1
        sent = int.from_bytes(env.body[:8], "big")
        lat.append(now - sent)
        to_node.append(env.ts * 1_000_000 - sent)

    async with _open(url) as ws:
        await _login(ws, acct)
        drained = False
        while True:
            frame = decode(await ws.get_message())  # type: ignore[arg-type]
            if isinstance(frame, Deliver):
                frame = await ack_run(ws, frame, take)
            if isinstance(frame, Drained) and not drained:
                drained = True
                counter[0] -= 1
                if counter[0] == 0:
                    ready.set()
            elif isinstance(frame, Error):
                raise RuntimeError(f"receiver got {frame.code}: {frame.message}")


async def receive(url: str, accounts: list[Account], seconds: float) -> None:
    stats = ReceiveStats()
    ready = trio.Event()
    counter = [len(accounts)]
    with trio.move_on_after(seconds):
        async with trio.open_nursery() as nursery:
            for acct in accounts:
                nursery.start_soon(_receiver, url, acct, stats, ready, counter)
            await ready.wait()
            print(json.dumps({"ready": True}), flush=True)
            # The parent closes our stdin when the senders are done and drained.
            await trio.to_thread.run_sync(sys.stdin.read)
            nursery.cancel_scope.cancel()
    lat = sorted(stats.latencies_ns)
    to_node = sorted(stats.to_node_ns)
    print(
        json.dumps(
            {
                "received": stats.received,
                "duplicates": stats.duplicates,
                "p50_ms": nearest_rank(lat, 50) / 1e6,
                "p99_ms": nearest_rank(lat, 99) / 1e6,
                "max_ms": (lat[-1] / 1e6) if lat else 0.0,
                "to_node_p50_ms": nearest_rank(to_node, 50) / 1e6,
                "to_node_p99_ms": nearest_rank(to_node, 99) / 1e6,
            }
        ),
        flush=True,
    )


async def _sender(
    url: str,
    acct: Account,
    target: Account,
    seconds: float,
    interval: float,
    window: int,
    batch: int,
    sent: list[int],
    start: Barrier,
    phase: float = 0.0,
) -> None:
    async with _open(url, path="/v1/sealed" if SEALED_SENDERS else "/v1/client") as ws:
        if SEALED_SENDERS:
            await _hello(ws)  # the anonymous path greets too; its nonce is never used
        else:
            await _login(ws, acct)
        pad = os.urandom(BODY_BYTES - 8)
        outstanding = trio.Semaphore(window)
        await start.arrive()
        deadline = start.released_at + seconds
        next_at = start.released_at + phase

        async def read_replies() -> None:
            while True:
                frame = decode(await ws.get_message())  # type: ignore[arg-type]
                results = frame.results if isinstance(frame, SentBatch) else (frame,)
                for result in results:
                    if isinstance(result, Sent):
                        sent[0] += 1
                        outstanding.release()
                    elif isinstance(result, Error) and result.id != 1:
                        raise RuntimeError(f"sender got {result.code}: {result.message}")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(read_replies)
            request_id = 2
            while trio.current_time() < deadline:
                await outstanding.acquire()
                if interval:
                    next_at += interval
                    await trio.sleep_until(next_at)
                count = 1
                # Batch what may go now, never waiting for more: free window slots, and
                # when paced only the sends already due.
                while count < batch and outstanding.value and _due(interval, next_at):
                    outstanding.acquire_nowait()
                    next_at += interval
                    count += 1
                sends = []
                for _ in range(count):
                    body = time.time_ns().to_bytes(8, "big") + pad
                    eid = secrets.token_bytes(16)
                    sends.append(Send(request_id, target.mailbox, eid, target.token, TTL, body))
                    request_id += 1
                if count == 1:
                    await ws.send_message(encode(sends[0]))
                else:
                    await ws.send_message(encode(SendBatch(request_id, tuple(sends))))
                    request_id += 1
            with trio.move_on_after(5):
                for _ in range(window):
                    await outstanding.acquire()
            nursery.cancel_scope.cancel()


class Barrier:
    """Releases everyone once ``count`` tasks arrived; ``released_at`` is trio's clock then."""

    def __init__(self, count: int) -> None:
        self.waiting = count
        self.released = trio.Event()
        self.released_at = 0.0

    async def arrive(self) -> None:
        self.waiting -= 1
        if self.waiting == 0:
            self.released_at = trio.current_time()
            self.released.set()
        await self.released.wait()


def _due(interval: float, last_at: float) -> bool:
    """Whether the send after the one scheduled at ``last_at`` is due (always, unpaced)."""
    return not interval or last_at + interval <= trio.current_time()


async def send(
    url: str,
    senders: list[Account],
    targets: list[Account],
    seconds: float,
    rate: float,
    window: int,
    batch: int,
) -> None:
    sent = [0]
    interval = len(senders) / rate if rate > 0 else 0.0
    # Every sender connects and logs in before any sends, and the run's seconds count
    # from then: logins (a signature each) are not part of the steady state measured.
    start = Barrier(len(senders))
    async with trio.open_nursery() as nursery:
        for k, (acct, target) in enumerate(zip(senders, targets, strict=True)):
            # Paced senders are spread evenly over the interval, as independent clients
            # are: in lockstep, all of them would send in the same millisecond.
            phase = interval * k / len(senders)
            nursery.start_soon(
                _sender, url, acct, target, seconds, interval, window, batch, sent, start, phase
            )
    elapsed = trio.current_time() - start.released_at
    print(json.dumps({"sent": sent[0], "seconds": elapsed}), flush=True)


# --- idle connections ----------------------------------------------------------------------


async def idle(url: str, count: int, seconds: float) -> None:
    opened = [0]
    all_open = trio.Event()

    limiter = trio.CapacityLimiter(200)

    async def one() -> None:
        await limiter.acquire_on_behalf_of(trio.lowlevel.current_task())
        held = True
        try:
            async with _open(url, tries=IDLE_TRIES) as ws:
                await _hello(ws)
                limiter.release_on_behalf_of(trio.lowlevel.current_task())
                held = False
                opened[0] += 1
                if opened[0] == count:
                    all_open.set()
                await trio.sleep_forever()
        finally:
            if held:
                limiter.release_on_behalf_of(trio.lowlevel.current_task())

    with trio.move_on_after(seconds):
        async with trio.open_nursery() as nursery:
            for _ in range(count):
                nursery.start_soon(one)
                await trio.lowlevel.checkpoint()
            await all_open.wait()
            print(json.dumps({"ready": True, "open": opened[0]}), flush=True)
            await trio.to_thread.run_sync(sys.stdin.read)
            nursery.cancel_scope.cancel()
    print(json.dumps({"open": opened[0]}), flush=True)


def _accounts(path: str) -> list[Account]:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    return [Account.from_json(d) for d in data]


def main(argv: list[str]) -> None:
    role, url = argv[0], argv[1]
    if role == "setup":
        trio.run(setup, url, Path(argv[2]), argv[3:])
    elif role == "receive":
        accts = _accounts(argv[2])
        first, count = int(argv[3]), int(argv[4])
        trio.run(receive, url, accts[first : first + count], float(argv[5]))
    elif role == "send":
        accts = _accounts(argv[2])
        first, count, targets = int(argv[3]), int(argv[4]), int(argv[6])
        trio.run(
            send,
            url,
            accts[first : first + count],
            accts[targets : targets + count],
            float(argv[5]),
            float(argv[7]),
            int(argv[8]),
            int(argv[9]) if len(argv) > 9 else 1,
        )
    elif role == "idle":
        trio.run(idle, url, int(argv[2]), float(argv[3]))
    else:
        raise SystemExit(f"unknown role {role!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
