"""Load generator for ``benchmarks.groupnet``: separate processes speaking the client protocol
(``wire.relay``) over real WebSockets to real nodes, for group messages.

    python -m benchmarks.groupload receive EXPECT SECONDS OUT BASE SPEC...
    python -m benchmarks.groupload fanout URL SENDERS_JSON RECEIVERS_JSON COUNT WINDOW OUT
    python -m benchmarks.groupload group URL SENDERS_JSON HOME COUNT PAUSE OUT DEST...

``receive`` logs in every account of the SPECs (``URL,ACCOUNTS_JSON,FIRST,COUNT``: that
slice of the file, on the node at URL); the accounts are numbered from BASE in SPEC order.
It prints a ``ready`` line (with ``cpu_s``, its CPU seconds so far) once every connection
has drained its mailbox, acks every push
(one ``Ack`` for a ``Deliver`` and those already read behind it), and stops after EXPECT
distinct deliveries (account, eid) or SECONDS. It writes ``account (2, big-endian) | eid |
receive time`` records (``time.time_ns``) of first deliveries to OUT.

``fanout`` logs in the first account of SENDERS_JSON and uploads COUNT group messages, each
one ``SendShared`` naming every account of RECEIVERS_JSON (mailbox and delivery token),
keeping WINDOW uploads unanswered. Every ``SentShared`` must say stored for every recipient.
The body is one real group upload body (a sender-key message of a small group, wrapped
under a transport key and padded: ``client.groupnet.wrap``), the same for every message
(the node never opens it; each message has its own eid). It writes ``eid | send time``
records to OUT.

``group`` logs in the first account of SENDERS_JSON on HOME's node (URL) and sends COUNT
group messages one at a time, PAUSE seconds apart, to every account of the DESTs
(``DOMAIN,URL,ACCOUNTS_JSON``; HOME's own among them): for each it encrypts a 1 KiB
sender-key message (``client.groups``), wraps it and builds the uploads exactly as the
client does (``client.groupnet.uploads``: one ``SendShared`` for HOME, one ``Forward`` of a
many-recipient routing layer sealed to each other domain's key document), sends them all,
then waits for every answer. It writes, per upload, ``message (4) | domain index (1) | eid
| start | first frame sent | last answer`` (times ``time.time_ns``; start is before the
encryption) to OUT.

The senders print a ``ready`` line (with their CPU seconds so far) once logged in and
prepared, then wait for a line on stdin before the first upload. Each role prints one JSON
object on stdout when it is done (with ``cpu_s``, its CPU seconds in all).
"""

from __future__ import annotations

import json
import os
import struct
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import httpx
import trio

from benchmarks.nodeload import TTL, Account, _accounts, _login, _open, ack_run, next_answer
from benchmarks.wsclient import WebSocket
from client.entropy import SYSTEM_ENTROPY
from client.groupnet import uploads, wrap
from client.groups import Group, member_of
from client.identity import Identity
from suites import get_suite
from wire import decode, encode
from wire.relay import (
    Deliver,
    Drained,
    Envelope,
    Error,
    Forward,
    SendShared,
    Sent,
    SentShared,
    SharedRecipient,
)
from wire.server import ServerKeyDocument

PAYLOAD_BYTES: Final = 1024
DOCUMENT_PATH: Final = "/.well-known/sealrelay/server"
DELIVERY: Final = struct.Struct(">H16sQ")  # account, eid, time_ns
SENT: Final = struct.Struct(">16sQ")  # eid, time_ns
UPLOAD: Final = struct.Struct(">IB16sQQQ")  # message, domain index, eid, start, sent, answered
ANSWER_TIMEOUT: Final = 60.0

__all__ = ["DELIVERY", "SENT", "UPLOAD", "read_deliveries", "read_sent", "read_uploads"]


# --- files -----------------------------------------------------------------------------------


def read_deliveries(path: Path) -> list[tuple[int, bytes, int]]:
    """``(account, eid, time_ns)`` of a ``receive`` file."""
    return list(DELIVERY.iter_unpack(path.read_bytes()))


def read_sent(path: Path) -> dict[bytes, int]:
    """``eid -> send time_ns`` of a ``fanout`` file."""
    return dict(SENT.iter_unpack(path.read_bytes()))


def read_uploads(path: Path) -> list[tuple[int, int, bytes, int, int, int]]:
    """``(message, domain index, eid, start, sent, answered)`` of a ``group`` file."""
    return list(UPLOAD.iter_unpack(path.read_bytes()))


# --- a real group body -----------------------------------------------------------------------


class Composer:
    """A sender in a small group (the sender-key message does not depend on the member
    count): real sender-key messages, wrapped under a random transport key."""

    def __init__(self, suite_name: str) -> None:
        suite = get_suite(suite_name)
        me = Identity.generate(suite, SYSTEM_ENTROPY)
        other = member_of(suite, "other@bench.example", {1: suite.sig.generate()[1]})
        self.group, _ = Group.create(me, "me@bench.example", 1, "bench", (other,), SYSTEM_ENTROPY)
        self.suite_id = suite.suite_id
        self.key = SYSTEM_ENTROPY.random_bytes(32)

    def body(self) -> bytes:
        message = self.group.encrypt(os.urandom(PAYLOAD_BYTES))
        return wrap(self.suite_id, self.key, message, SYSTEM_ENTROPY.random_bytes(12))


# --- receive ---------------------------------------------------------------------------------


@dataclass
class _Received:
    expect: int
    seen: set[tuple[int, bytes]] = field(default_factory=set)
    duplicates: int = 0
    records: bytearray = field(default_factory=bytearray)
    last_ack_ns: int = 0
    all_in: trio.Event = field(default_factory=trio.Event)


async def _receiver(
    url: str, acct: Account, number: int, got: _Received, pending: set[int], ready: trio.Event
) -> None:
    def take(env: Envelope, now: int) -> None:
        key = (number, env.eid)
        if key in got.seen:
            got.duplicates += 1
            return
        got.seen.add(key)
        got.records += DELIVERY.pack(number, env.eid, now)

    async with _open(url) as ws:
        await _login(ws, acct)
        while True:
            frame = decode(await ws.get_message())  # type: ignore[arg-type]
            if isinstance(frame, Deliver):
                frame = await ack_run(ws, frame, take)
                got.last_ack_ns = time.time_ns()
                if len(got.seen) >= got.expect:
                    got.all_in.set()
            if isinstance(frame, Drained):
                pending.discard(number)
                if not pending:
                    ready.set()
            elif isinstance(frame, Error):
                raise RuntimeError(f"receiver got {frame.code}: {frame.message}")


def _slices(specs: list[str]) -> list[tuple[str, Account]]:
    """``(url, account)`` of every SPEC, in order."""
    out: list[tuple[str, Account]] = []
    for spec in specs:
        url, path, first, count = spec.split(",")
        accounts = _accounts(path)[int(first) : int(first) + int(count)]
        out += [(url, acct) for acct in accounts]
    return out


async def receive(
    expect: int, seconds: float, base: int, specs: list[str]
) -> tuple[bytes, dict[str, int | float]]:
    got = _Received(expect)
    who = _slices(specs)
    pending = set(range(base, base + len(who)))
    ready = trio.Event()
    with trio.move_on_after(seconds):
        async with trio.open_nursery() as nursery:
            for n, (url, acct) in enumerate(who):
                nursery.start_soon(_receiver, url, acct, base + n, got, pending, ready)
            await ready.wait()
            ready_cpu = time.process_time()
            print(json.dumps({"ready": True, "cpu_s": ready_cpu}), flush=True)
            await got.all_in.wait()
            nursery.cancel_scope.cancel()
    return bytes(got.records), {
        "received": len(got.seen),
        "duplicates": got.duplicates,
        "last_ack_ns": got.last_ack_ns,
        "cpu_s": time.process_time(),
    }


# --- answers ---------------------------------------------------------------------------------


async def _answers(ws: WebSocket, waiting: set[int], results: dict[int, int]) -> None:
    """Read until every request id of ``waiting`` is answered; fail on a refusal. Notes
    ``time.time_ns`` of each answer in ``results``."""
    while waiting:
        frame = await next_answer(ws)
        if isinstance(frame, SentShared):
            refused = [r for r in frame.results if r]
            if refused:
                raise RuntimeError(f"SendShared {frame.id}: refused {sorted(set(refused))}")
        elif not isinstance(frame, Sent):
            raise RuntimeError(f"sender got {type(frame).__name__}")
        waiting.discard(frame.id)
        results[frame.id] = time.time_ns()


async def _ready() -> None:
    """Say ``ready`` (with the CPU used so far) and wait for a line on stdin: the parent
    starts its CPU accounting in between."""
    print(json.dumps({"ready": True, "cpu_s": time.process_time()}), flush=True)
    await trio.to_thread.run_sync(sys.stdin.readline)


# --- fanout ----------------------------------------------------------------------------------


async def fanout(
    url: str, sender: Account, receivers: list[Account], count: int, window: int
) -> tuple[bytes, dict[str, int | float]]:
    """``count`` ``SendShared`` to all ``receivers``, ``window`` of them unanswered."""
    body = Composer(sender.suite).body()
    recipients = tuple(SharedRecipient(acct.mailbox, acct.token) for acct in receivers)
    records = bytearray()
    answered = [0]
    async with _open(url) as ws:
        await _login(ws, sender)
        outstanding = trio.Semaphore(window)

        async def read_replies() -> None:
            while True:
                frame = await next_answer(ws)
                if not isinstance(frame, SentShared):
                    raise RuntimeError(f"sender got {type(frame).__name__}")
                refused = [r for r in frame.results if r]
                if refused or len(frame.results) != len(recipients):
                    raise RuntimeError(f"SendShared refused: {sorted(set(refused))}")
                answered[0] += 1
                outstanding.release()

        await _ready()
        start = time.time_ns()
        with trio.fail_after(ANSWER_TIMEOUT + count):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(read_replies)
                for n in range(count):
                    await outstanding.acquire()
                    eid = SYSTEM_ENTROPY.random_bytes(16)
                    records += SENT.pack(eid, time.time_ns())
                    frame = SendShared(n + 2, eid, TTL, recipients, body)
                    await ws.send_message(encode(frame))
                for _ in range(window):
                    await outstanding.acquire()
                nursery.cancel_scope.cancel()
        end = time.time_ns()
    return bytes(records), {
        "sent": answered[0],
        "recipients": len(recipients),
        "body_bytes": len(body),
        "start_ns": start,
        "end_ns": end,
        "cpu_s": time.process_time(),
    }


# --- group -----------------------------------------------------------------------------------


def _document(url: str) -> ServerKeyDocument:
    raw = httpx.get(url.rstrip("/") + DOCUMENT_PATH, timeout=30).content
    return decode(raw, ServerKeyDocument)


async def group(
    url: str, sender: Account, home: str, count: int, pause: float, dests: list[str]
) -> tuple[bytes, dict[str, object]]:
    """``count`` group messages, each uploaded once per destination domain."""
    composer = Composer(sender.suite)
    order: list[str] = []
    recipients: dict[str, list[tuple[bytes, bytes | None]]] = {}
    docs: dict[str, ServerKeyDocument] = {}
    for dest in dests:
        domain, dest_url, path = dest.split(",")
        order.append(domain)
        recipients[domain] = [(a.mailbox, a.token) for a in _accounts(path)]
        if domain != home:
            docs[domain] = _document(dest_url)
    records = bytearray()
    build_ns: list[int] = []
    request_id = 2
    async with _open(url) as ws:
        await _login(ws, sender)
        await _ready()
        for n in range(count):
            if n:
                await trio.sleep(pause)
            start = time.time_ns()
            cpu = time.process_time_ns()
            items = list(
                uploads(
                    home, recipients, docs, composer.body(), TTL, start // 1_000_000, SYSTEM_ENTROPY
                )
            )
            frames: list[tuple[int, bytes, int]] = []
            for item in items:
                req = item.request()
                if isinstance(req, Forward):
                    req = Forward(request_id, req.domain, req.eid, req.ttl, req.layer)
                else:
                    req = SendShared(request_id, req.eid, req.ttl, req.recipients, req.body)
                frames.append((request_id, encode(req), order.index(item.domain or home)))
                request_id += 1
            build_ns.append(time.process_time_ns() - cpu)
            sent = time.time_ns()
            for _, frame, _ in frames:
                await ws.send_message(frame)
            answers: dict[int, int] = {}
            with trio.fail_after(ANSWER_TIMEOUT):
                await _answers(ws, {rid for rid, _, _ in frames}, answers)
            answered = max(answers.values())
            for item, (_, _, domain_index) in zip(items, frames, strict=True):
                records += UPLOAD.pack(n, domain_index, item.eid, start, sent, answered)
    build_ns.sort()
    return bytes(records), {
        "messages": count,
        "uploads": len(records) // UPLOAD.size,
        "build_cpu_us_p50": build_ns[len(build_ns) // 2] // 1000 if build_ns else 0,
        "cpu_s": time.process_time(),
    }


def main(argv: list[str]) -> None:
    role = argv[0]
    doc: dict[str, object]
    if role == "receive":
        expect, seconds, out, base = int(argv[1]), float(argv[2]), Path(argv[3]), int(argv[4])
        records, counts = trio.run(receive, expect, seconds, base, argv[5:])
        doc = dict(counts)
    elif role == "fanout":
        url, senders, receivers = argv[1], _accounts(argv[2]), _accounts(argv[3])
        count, window, out = int(argv[4]), int(argv[5]), Path(argv[6])
        records, counts = trio.run(fanout, url, senders[0], receivers, count, window)
        doc = dict(counts)
    elif role == "group":
        url, senders, home = argv[1], _accounts(argv[2]), argv[3]
        count, pause, out = int(argv[4]), float(argv[5]), Path(argv[6])
        records, doc = trio.run(group, url, senders[0], home, count, pause, argv[7:])
    else:
        raise SystemExit(f"unknown role {role!r}")
    out.write_bytes(records)
    print(json.dumps(doc), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
