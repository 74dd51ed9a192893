"""Calls across the replicas of one domain (issue 18, item 4; node.calls.replicas,
node.calls.relayed, docs/kubernetes.md "The leg's replica"): rows of ``make bench calls``.

Two real ``sealrelay node serve`` replicas of one domain (``store = "redis"`` on one real
``redis-server``, the domain's keys shared, each with its own loopback UDP media port), one
account enrolled at each (its WebSocket on that replica). One 1:1 call between two raw legs:
each end sends an audio-sized datagram (``PAYLOAD`` bytes after the media header, its send
time inside) every ``INTERVAL`` for ``SECONDS``, both ways at once, from this process.

Cases:

- ``replicas: one replica``: both legs on the first replica (the baseline);
- ``replicas: bridged``: the callee's leg allocated and bound on the second replica, the
  caller's on the first, whose ``LegBridge`` reaches the callee's leg over a replica media
  link;
- ``replicas: bind relayed``: both legs granted by the first replica; the caller's QUIC
  bind lands on the second replica, which relays it to the first.

Before them the same datagrams flow over one direct loopback QUIC connection (no node):
``p50``/``p99``/``mean`` (µs) are the relay-added latency, the path's percentile minus the
direct one (``path_p50_ms``, ``base_p50_ms``...). ``cpu_us_per_dgram``: both replicas' user
+ system CPU over the media window (``/proc/PID/stat``) per datagram sent;
``net_cpu_us_per_dgram``: the same less their idle CPU (measured during the direct round,
no client connected: Redis polls, announcements); ``*_ratio``: that case's value over the
baseline's. ``loss_pct``: sent and never received. ``ops/s``:
datagrams received per second. ``loadavg_1m``: the machine's load at the end of the case.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import trio

from benchmarks.callkit import loopback_quic
from benchmarks.callrows import GROUP, ms, not_measured
from benchmarks.cluster import _invites, _start_redis
from benchmarks.federation import _final_line, _free_ports
from benchmarks.harness import Result
from benchmarks.node import NODE_ENV, _cpu_s
from benchmarks.replicabind import LOOPBACK, bind_at
from client.app import Client
from client.enroll import enroll
from client.store.memory import MemoryStore
from transport.base import MediaTransport
from wire.calls import LegRef
from wire.media import HEADER_SIZE, MediaHeader, MediaKind, StreamId, encode_datagram
from wire.media_control import MediaBound

SECONDS: Final = 10.0
QUICK_SECONDS: Final = 1.0
INTERVAL: Final = 0.020
"""One audio frame every 20 ms (Opus)."""
PAYLOAD: Final = 160
"""Bytes after the header: an Opus 20 ms frame at about 64 kbit/s, SFrame-sealed."""
DRAIN: Final = 0.3
"""Seconds the receivers keep listening after the last datagram."""
DOMAIN: Final = "replicas.bench.test"
EXTRA: Final = 'udp_listen = "127.0.0.1:0"'
SUITE: Final = "cnsa2"
REPLICAS: Final = 2
STAMP: Final = struct.Struct(">Q")
BASELINE: Final = "replicas: one replica"
BRIDGED: Final = "replicas: bridged"
RELAYED: Final = "replicas: bind relayed"
QUIT_TIMEOUT: Final = 30.0


@dataclass
class Flow:
    """One direction of the call: datagrams sent, and each received one's latency (s)."""

    sent: int = 0
    latencies: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class Leg:
    media: MediaTransport
    sender: int


@dataclass(frozen=True)
class Measured:
    """One case: both directions' latencies, datagrams sent, both replicas' CPU, wall."""

    latencies: list[float]
    sent: int
    node_cpu_s: float
    wall_s: float
    loadavg: float


# --- media -------------------------------------------------------------------------------------


def _datagram(sender: int, frame: int) -> bytes:
    """An audio datagram of ``sender`` whose payload starts with its send time (ns)."""
    header = MediaHeader(StreamId(sender, MediaKind.AUDIO), group=frame, object=0, frame=frame,
                         packet=0, packets=1, keyframe=True)  # fmt: skip
    stamp = STAMP.pack(time.perf_counter_ns())
    return encode_datagram(header, stamp + bytes(PAYLOAD - len(stamp)))


async def _send(leg: Leg, seconds: float, flow: Flow) -> None:
    start = trio.current_time()
    for frame in range(round(seconds / INTERVAL)):
        await trio.sleep_until(start + frame * INTERVAL)
        await leg.media.send_datagram(_datagram(leg.sender, frame))
        flow.sent += 1


async def _receive(media: MediaTransport, flow: Flow) -> None:
    while True:
        for data in await media.receive_datagram_batch():
            (sent,) = STAMP.unpack_from(data, HEADER_SIZE)
            flow.latencies.append((time.perf_counter_ns() - sent) / 1e9)


async def _exchange(a: Leg, b: Leg, seconds: float) -> tuple[list[float], int]:
    """Both ends send for ``seconds``; all latencies (s) and datagrams sent."""
    forward, back = Flow(), Flow()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_receive, b.media, forward)
        nursery.start_soon(_receive, a.media, back)
        async with trio.open_nursery() as senders:
            senders.start_soon(_send, a, seconds, forward)
            senders.start_soon(_send, b, seconds, back)
        await trio.sleep(DRAIN)
        nursery.cancel_scope.cancel()
    return forward.latencies + back.latencies, forward.sent + back.sent


async def _measured(a: Leg, b: Leg, seconds: float, pids: list[int]) -> Measured:
    cpu, wall = sum(_cpu_s(pid) for pid in pids), time.monotonic()
    latencies, sent = await _exchange(a, b, seconds)
    node_cpu = sum(_cpu_s(pid) for pid in pids) - cpu
    return Measured(latencies, sent, node_cpu, time.monotonic() - wall, os.getloadavg()[0])


# --- the cases ---------------------------------------------------------------------------------


async def _direct(seconds: float, pids: list[int]) -> Measured:
    """The same exchange over one loopback QUIC connection, no node; ``node_cpu_s``: the
    replicas' CPU meanwhile, idle (no client connected)."""
    async with trio.open_nursery() as nursery:
        caller, callee = await loopback_quic(nursery)
        done = await _measured(Leg(caller, 1), Leg(callee, 2), seconds, pids)
        await caller.aclose()
        nursery.cancel_scope.cancel()
    return done


Case = Callable[[Client, Client, list[str], trio.Nursery], Awaitable[tuple[Leg, Leg]]]


async def _one_replica(x: Client, _: Client, urls: list[str], n: trio.Nursery) -> tuple[Leg, Leg]:
    callee = await x.leg_allocate()
    caller = await x.leg_bridge(LegRef(DOMAIN, callee.leg_id))
    return Leg(*await x.media_quic(caller)), Leg(*await x.media_quic(callee))


async def _bridged(x: Client, y: Client, urls: list[str], n: trio.Nursery) -> tuple[Leg, Leg]:
    callee = await y.leg_allocate()  # on the second replica
    caller = await x.leg_bridge(LegRef(DOMAIN, callee.leg_id))  # bridged from the first
    return Leg(*await x.media_quic(caller)), Leg(*await y.media_quic(callee))


async def _relayed(x: Client, _: Client, urls: list[str], n: trio.Nursery) -> tuple[Leg, Leg]:
    callee = await x.leg_allocate()
    caller = await x.leg_bridge(LegRef(DOMAIN, callee.leg_id))
    channel, answer = await bind_at(n, urls[1], caller.leg_id, caller.leg_secret)
    if not isinstance(answer, MediaBound):
        raise RuntimeError(f"the relayed bind was refused: {answer}")
    return Leg(channel, answer.sender), Leg(*await x.media_quic(callee))


CASES: Final[tuple[tuple[str, Case], ...]] = (
    (BASELINE, _one_replica),
    (BRIDGED, _bridged),
    (RELAYED, _relayed),
)


async def _cases(
    accounts: list[tuple[str, str, str]],
    urls: list[str],
    seconds: float,
    pids: list[int],
    home: Path,
) -> tuple[Measured, dict[str, Measured]]:
    """The direct baseline, then each case of :data:`CASES` with fresh legs."""
    base = await _direct(seconds, pids)
    done: dict[str, Measured] = {}
    async with AsyncExitStack() as stack:
        x, y = [await _enrolled(*account, home) for account in accounts]
        for client in (x, y):
            await stack.enter_async_context(client.online())
        for name, case in CASES:
            async with trio.open_nursery() as nursery:
                caller, callee = await case(x, y, urls, nursery)
                done[name] = await _measured(caller, callee, seconds, pids)
                for leg in (caller, callee):
                    await leg.media.aclose()
                nursery.cancel_scope.cancel()
    return base, done


async def _enrolled(address: str, url: str, code: str, home: Path) -> Client:
    store = MemoryStore()
    await enroll(store, address, url, code, SUITE)
    save_dir = home / address
    save_dir.mkdir(parents=True)
    return Client.load(store, save_dir=save_dir)


# --- rows --------------------------------------------------------------------------------------


def _cpu_us(m: Measured) -> float:
    return 1e6 * m.node_cpu_s / max(m.sent, 1)


def _net_cpu_us(m: Measured, idle: Measured) -> float:
    """:func:`_cpu_us` less the replicas' idle CPU over as long (``idle.node_cpu_s``)."""
    busy = m.node_cpu_s - idle.node_cpu_s * m.wall_s / max(idle.wall_s, 1e-9)
    return 1e6 * max(busy, 0.0) / max(m.sent, 1)


def row(name: str, m: Measured, base: Measured, first: Measured) -> Result:
    """``m``'s row: relay-added latency over the direct ``base``, ratios to ``first``."""
    path = [x * 1e6 for x in m.latencies]
    direct = [x * 1e6 for x in base.latencies]
    added = {pct: (ms(path, pct) - ms(direct, pct)) * 1000 for pct in (50, 99)}
    first_path = [x * 1e6 for x in first.latencies]
    first_added = {pct: (ms(first_path, pct) - ms(direct, pct)) * 1000 for pct in (50, 99)}
    mean = (sum(path) / max(len(path), 1)) - (sum(direct) / max(len(direct), 1))
    return Result(
        group=GROUP,
        name=name,
        ops_per_s=len(path) / max(m.wall_s, 1e-9),
        mean_us=mean,
        p50_us=added[50],
        p99_us=added[99],
        calls=len(path),
        samples=len(path),
        batch=1,
        extra={
            "cpu_us_per_dgram": round(_cpu_us(m), 1),
            "p50_ratio": _ratio(added[50], first_added[50]),
            "p99_ratio": _ratio(added[99], first_added[99]),
            "cpu_ratio": _ratio(_cpu_us(m), _cpu_us(first)),
            "net_cpu_us_per_dgram": round(_net_cpu_us(m, base), 1),
            "net_cpu_ratio": _ratio(_net_cpu_us(m, base), _net_cpu_us(first, base)),
            "path_p50_ms": round(ms(path, 50), 3),
            "path_p99_ms": round(ms(path, 99), 3),
            "base_p50_ms": round(ms(direct, 50), 3),
            "base_p99_ms": round(ms(direct, 99), 3),
            "loss_pct": round(100 * (m.sent - len(path)) / max(m.sent, 1), 3),
            "node_cpu_s": round(m.node_cpu_s, 3),
            "loadavg_1m": round(m.loadavg, 2),
        },
    )


def _ratio(value: float, baseline: float) -> float:
    return round(value / baseline, 2) if baseline > 0 else 0.0


# --- processes ---------------------------------------------------------------------------------


@contextmanager
def _replicas(tmp: Path) -> Iterator[tuple[str, list[str], list[int]]]:
    """A redis-server and :data:`REPLICAS` replicas of :data:`DOMAIN` on it: (redis URL,
    the replicas' URLs and process ids, once listening); all stopped on exit."""
    from node.devfed import prepare

    (setup,) = prepare(tmp / "fed", [DOMAIN], _free_ports(1), suite=SUITE, extra=EXTRA)
    redis, port = _start_redis(tmp)
    redis_url = f"redis://{LOOPBACK}:{port}/0"
    env = {**os.environ, **NODE_ENV, "SEALRELAY_STORE": "redis", "SEALRELAY_REDIS_URL": redis_url}
    nodes: list[subprocess.Popen[str]] = []
    urls: list[str] = []
    log = (tmp / "replicas.log").open("w", encoding="utf-8")
    try:
        for node_port in _free_ports(REPLICAS):
            nodes.append(subprocess.Popen(
                [sys.executable, "-m", "sealrelay", "node", "serve", "--domain", DOMAIN,
                 "--listen", f"{LOOPBACK}:{node_port}", "--data", str(setup.data_dir),
                 "--config", str(setup.config)],
                stdout=subprocess.PIPE, stderr=log, text=True, env=env,
            ))  # fmt: skip
            urls.append(str(_final_line(nodes[-1].stdout, f"replica {len(nodes)}", "url")["url"]))
        yield redis_url, urls, [node.pid for node in nodes]
    finally:
        for node in nodes:
            node.terminate()
        for node in nodes:
            _reap(node)
        redis.kill()
        redis.wait(timeout=QUIT_TIMEOUT)
        log.close()


def _reap(proc: subprocess.Popen[str]) -> None:
    try:
        proc.wait(timeout=QUIT_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


def run(quick: bool) -> list[Result]:
    seconds = QUICK_SECONDS if quick else SECONDS
    with (
        tempfile.TemporaryDirectory(prefix="sealrelay-bench-replicas-") as tmp,
        _replicas(Path(tmp)) as (redis_url, urls, pids),
    ):
        codes = trio.run(_invites, redis_url, ["xavier", "yolanda"])
        accounts = [
            (f"{name}@{DOMAIN}", url, code.split("=", 1)[1])
            for name, url, code in zip(("xavier", "yolanda"), urls, codes, strict=True)
        ]
        base, done = trio.run(_cases, accounts, urls, seconds, pids, Path(tmp) / "home")
    first = done[BASELINE]
    return [row(name, m, base, first) for name, m in done.items()]


def rows(quick: bool) -> list[Result]:
    """:func:`run`'s rows; if it fails, a ``not measured`` row per case (the traceback on
    stderr), so that the other rows of ``benchmarks.calls`` still stand."""
    try:
        return run(quick)
    except Exception as exc:
        traceback.print_exc()
        return [
            not_measured(name, f"not measured: {type(exc).__name__}: {exc}") for name, _ in CASES
        ]
