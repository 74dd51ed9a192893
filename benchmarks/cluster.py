"""Cluster-mode benchmarks (DESIGN section 7): real ``sealrelay node serve`` replicas with
``store = "redis"`` on one real ``redis-server`` (no persistence, ``durability =
"primary"``), load from separate processes (``benchmarks.nodeload``) over loopback.

Cases (1 KiB envelopes, each acknowledged to its sender, pushed, acked by its receiver):

- ``1 replica``: ``PAIRS`` senders and receivers, all on one replica.
- ``3 replicas``: the same accounts, split in three slices; slice ``k``'s receivers are on
  replica ``k`` and its senders on replica ``k + 1``, so every envelope crosses replicas
  (stored by one, announced on pub/sub, read and pushed by another: the cluster's own
  cost, and its worst case).

Both cases use the same three sender and three receiver processes. Columns:

- ``ops/s``: envelopes received per second; ``speedup`` (3 replicas / 1 replica);
- ``redis_cmds_per_env``: ``total_commands_processed`` delta per envelope (commands run
  inside Lua scripts included); ``round_trips_per_env``: the commands the nodes sent
  (not run by a script), that count times the share of client commands seen by
  ``MONITOR`` during one second in the middle of the round (``durability = "primary"``:
  no pipelined ``WAIT``, so one command is one round trip); ``scripts_per_env``:
  ``EVALSHA`` calls per envelope; ``redis_reads_per_env``: ``total_reads_processed``
  delta (read events on Redis's client sockets: below the round trips when coredis
  sends several requests before Redis reads);
- ``node_cpu``, ``redis_cpu``, ``load_cpu``: CPU share of the node processes (summed),
  of ``redis-server`` and of the load processes, in cores (``/proc/<pid>/stat`` and
  ``RUSAGE_CHILDREN`` deltas over the round), out of ``cpu_count``; ``machine_cpu``: cores
  busy on the whole machine meanwhile (``/proc/stat``: other work on the machine shows
  as the difference).

On a 2-core machine the three replicas cannot be faster than the cores they share: when
``machine_cpu`` is near ``cpu_count`` in both cases, the bound is the CPU, and
``node_cpu_us_per_env`` (node CPU per envelope, all replicas) says what the cluster costs
per envelope: three replicas cannot beat one unless that cost is spread over more cores.

Measured on the 2-core development machine (shared with other work; full runs): the
machine was saturated in every round (``machine_cpu`` 1.94 to 2.00 of 2). One replica did
531 to 675 envelopes/s at 900 to 1,180 µs of node CPU per envelope; three replicas 304 to
472 envelopes/s (speedup 0.57 to 2.10, following the CPU the rest of the machine left
free) at 1,200 to 1,500 µs per envelope. A ``py-spy`` profile of the replicas during the
three-replica round put 20 % of their time in ``node.cluster`` (the ``pending`` read of
each announced envelope and the notice loop; every replica receives every notice), 27 %
in store calls, 24 % in socket system calls; one replica spends nothing on the first. So
the bound here is the CPU: 1.8 times one replica's rate at three replicas' cost per
envelope needs about 1.5 cores for the nodes alone, plus the load generators' share.
"""

from __future__ import annotations

import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import trio

from benchmarks.harness import Result
from benchmarks.node import NODE_ENV, _children_cpu_s, _cpu_s, _json_line

PAIRS: Final = 48
QUICK_PAIRS: Final = 6
WINDOW: Final = 8
SECONDS: Final = 10.0
QUICK_SECONDS: Final = 1.0
SLICES: Final = 3
DOMAIN: Final = "cluster.bench.test"
LOOPBACK: Final = "127.0.0.1"
START_TIMEOUT: Final = 30.0


# --- redis-server ----------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        port: int = s.getsockname()[1]
        return port


def _command(port: int, *args: str) -> bytes:
    """One command over a plain socket; the raw reply (the callers want INFO text)."""
    parts = [a.encode() for a in args]
    request = b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)
    with socket.create_connection((LOOPBACK, port), timeout=5) as sock:
        sock.sendall(request)
        reader = sock.makefile("rb")
        head = reader.readline()
        if head.startswith(b"$"):
            return bytes(reader.read(int(head[1:]) + 2)[:-2])
        return head.strip()


def _info(port: int) -> dict[str, str]:
    text = _command(port, "INFO", "all").decode()
    pairs = (line.split(":", 1) for line in text.splitlines() if ":" in line)
    return {k: v.strip() for k, v in pairs}


def _start_redis(directory: Path) -> tuple[subprocess.Popen[bytes], int]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not on PATH")
    port = _free_port()
    argv = [binary, "--port", str(port), "--bind", LOOPBACK, "--save", "", "--appendonly", "no"]
    argv += ["--dir", str(directory), "--logfile", "redis.log"]
    proc = subprocess.Popen(argv)
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            if _command(port, "PING") == b"+PONG":
                return proc, port
        except OSError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("redis-server did not answer")
        time.sleep(0.05)


class Monitor:
    """``MONITOR`` for ``seconds`` after ``delay`` (in a thread): how many commands came
    from clients and how many ran inside Lua scripts (lines tagged ``[0 lua]``)."""

    def __init__(self, port: int, delay: float, seconds: float) -> None:
        self.client = self.lua = 0
        self._thread = threading.Thread(target=self._run, args=(port, delay, seconds))
        self._thread.start()

    def _run(self, port: int, delay: float, seconds: float) -> None:
        time.sleep(delay)
        with socket.create_connection((LOOPBACK, port), timeout=5) as sock:
            sock.sendall(b"*1\r\n$7\r\nMONITOR\r\n")
            reader = sock.makefile("rb")
            reader.readline()  # +OK
            end = math.inf
            while time.monotonic() < end:
                line = reader.readline()
                if not line:
                    return
                if end == math.inf and b'"EVALSHA' in line.upper():
                    end = time.monotonic() + seconds  # the window starts with traffic
                if b" [0 lua] " in line:
                    self.lua += 1
                else:
                    self.client += 1

    def share(self) -> float:
        """Commands sent by clients / all commands (NaN if nothing was seen)."""
        self._thread.join(30)
        total = self.client + self.lua
        return self.client / total if total else math.nan


@dataclass(frozen=True)
class RedisCounters:
    commands: int
    reads: int
    scripts: int
    cpu_s: float

    @classmethod
    def read(cls, port: int) -> RedisCounters:
        info = _info(port)
        scripts = sum(
            int(info[k].split("calls=", 1)[1].split(",", 1)[0])
            for k in ("cmdstat_evalsha", "cmdstat_evalsha_ro")
            if k in info
        )
        return cls(
            commands=int(info["total_commands_processed"]) - 1,  # this INFO itself
            reads=int(info["total_reads_processed"]) - 1,
            scripts=scripts,
            cpu_s=float(info["used_cpu_sys"]) + float(info["used_cpu_user"]),
        )


def _machine_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs so far (``/proc/stat``)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


# --- nodes and load ---------------------------------------------------------------------


def _python(*args: str, env: dict[str, str], stdin: int | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, *args], stdin=stdin, stdout=subprocess.PIPE, text=True, env=env
    )


def _nodes(
    count: int, keys: Path, env: dict[str, str], into: list[subprocess.Popen[str]]
) -> list[str]:
    """Start ``count`` replicas at once (appended to ``into``); their URLs once listening."""
    argv = ["-m", "sealrelay", "node", "serve", "--domain", DOMAIN]
    argv += ["--listen", f"{LOOPBACK}:0", "--data", str(keys)]
    started = [_python(*argv, env=env) for _ in range(count)]
    into.extend(started)
    return [str(_json_line(node.stdout, "node")["url"]) for node in started]


async def _invites(redis_url: str, names: list[str]) -> list[str]:
    from node.accounts import code_hash, format_code
    from node.store import open_store

    store = await open_store("redis", redis_url=redis_url)
    codes = []
    expires = int((time.time() + 3600) * 1000)
    try:
        for name in names:
            raw = os.urandom(16)
            await store.add_invite(code_hash(raw), name, expires)
            codes.append(f"{name}={format_code(raw)}")
    finally:
        await store.aclose()
    return codes


@dataclass(frozen=True)
class Slice:
    """Receivers ``[first, first + count)`` on ``recv_url``; their senders (accounts
    ``pairs`` further) on ``send_url``."""

    first: int
    count: int
    recv_url: str
    send_url: str


def _round(
    accounts: Path,
    slices: list[Slice],
    pairs: int,
    seconds: float,
    env: dict[str, str],
    node_pids: list[int],
    redis_port: int,
) -> dict[str, Any]:
    load = "benchmarks.nodeload"
    receivers = [
        _python("-m", load, "receive", s.recv_url, str(accounts), str(s.first), str(s.count),
                str(seconds + 60), env=env, stdin=subprocess.PIPE)
        for s in slices
    ]  # fmt: skip
    try:
        for r in receivers:
            _json_line(r.stdout, "receivers")
        before = RedisCounters.read(redis_port)
        node_cpu = sum(_cpu_s(pid) for pid in node_pids)
        load_cpu, start, machine = _children_cpu_s(), time.monotonic(), _machine_jiffies()
        monitor = Monitor(redis_port, seconds * 0.2, min(1.0, seconds / 2))
        senders = [
            _python("-m", load, "send", s.send_url, str(accounts), str(pairs + s.first),
                    str(s.count), str(seconds), str(s.first), "0", str(WINDOW), env=env)
            for s in slices
        ]  # fmt: skip
        sent = [_json_line(p.stdout, "senders") for p in senders]
        for p in senders:
            p.wait(timeout=30)
        time.sleep(0.5)  # the last pushes land
        for r in receivers:
            assert r.stdin is not None
            r.stdin.close()
        got = [_json_line(r.stdout, "receivers") for r in receivers]
        for r in receivers:
            r.wait(timeout=30)
        wall = time.monotonic() - start
        after = RedisCounters.read(redis_port)
        node_cpu = sum(_cpu_s(pid) for pid in node_pids) - node_cpu
        load_cpu = _children_cpu_s() - load_cpu
        busy, total = (b - a for a, b in zip(machine, _machine_jiffies(), strict=True))
    finally:
        for r in receivers:
            if r.poll() is None:
                r.kill()
    received = sum(g["received"] for g in got)
    return {
        "received": received,
        "sent": sum(s["sent"] for s in sent),
        "duplicates": sum(g["duplicates"] for g in got),
        "seconds": max(s["seconds"] for s in sent),
        "p50_ms": max(g["p50_ms"] for g in got),
        "p99_ms": max(g["p99_ms"] for g in got),
        "wall": wall,
        "node_cpu_s": node_cpu,
        "load_cpu_s": load_cpu,
        "redis": (before, after),
        "client_share": monitor.share(),
        "machine_busy": busy / max(1, total),
    }


def _result(name: str, r: dict[str, Any], **extra: Any) -> Result:
    env_count = max(1, r["received"])
    before, after = r["redis"]
    ops = r["received"] / r["seconds"]
    wall = r["wall"]
    commands = (after.commands - before.commands) / env_count
    columns: dict[str, Any] = {
        "envelopes": r["received"],
        "redis_cmds_per_env": round(commands, 2),
        "round_trips_per_env": round(commands * r["client_share"], 2),
        "scripts_per_env": round((after.scripts - before.scripts) / env_count, 2),
        "redis_reads_per_env": round((after.reads - before.reads) / env_count, 2),
        "node_cpu": round(r["node_cpu_s"] / wall, 2),
        "redis_cpu": round((after.cpu_s - before.cpu_s) / wall, 2),
        "load_cpu": round(r["load_cpu_s"] / wall, 2),
        "machine_cpu": round(r["machine_busy"] * (os.cpu_count() or 1), 2),
        "node_cpu_us_per_env": round(r["node_cpu_s"] * 1e6 / env_count),
        "cpu_count": os.cpu_count() or 0,
        **extra,
    }
    return Result(
        group="cluster",
        name=name,
        ops_per_s=ops,
        mean_us=1e6 / ops if ops else 0.0,
        p50_us=r["p50_ms"] * 1000,
        p99_us=r["p99_ms"] * 1000,
        calls=r["received"],
        samples=1,
        batch=1,
        extra=columns,
    )


def _slices(pairs: int, recv_urls: list[str], send_urls: list[str]) -> list[Slice]:
    size = pairs // SLICES
    return [
        Slice(k * size, size if k < SLICES - 1 else pairs - k * size, recv_urls[k], send_urls[k])
        for k in range(SLICES)
    ]


def run(quick: bool) -> list[Result]:
    pairs = QUICK_PAIRS if quick else PAIRS
    seconds = QUICK_SECONDS if quick else SECONDS
    with tempfile.TemporaryDirectory(prefix="sealrelay-bench-cluster-") as tmp:
        redis, port = _start_redis(Path(tmp))
        nodes: list[subprocess.Popen[str]] = []
        try:
            redis_url = f"redis://{LOOPBACK}:{port}/0"
            env = {**os.environ, **NODE_ENV}
            env.update(SEALRELAY_STORE="redis", SEALRELAY_REDIS_URL=redis_url)
            keys = Path(tmp) / "keys"
            keys.mkdir()
            (url,) = _nodes(1, keys, env, nodes)
            codes = trio.run(_invites, redis_url, [f"u{i}" for i in range(2 * pairs)])
            accounts = Path(tmp) / "accounts.json"
            setup = _python("-m", "benchmarks.nodeload", "setup", url, str(accounts), *codes,
                            env=env)  # fmt: skip
            _json_line(setup.stdout, "setup")
            setup.wait(timeout=60)
            one = _round(accounts, _slices(pairs, [url] * 3, [url] * 3), pairs, seconds, env,
                         [nodes[0].pid], port)  # fmt: skip
            urls = [url, *_nodes(SLICES - 1, keys, env, nodes)]
            crossed = urls[1:] + urls[:1]
            three = _round(accounts, _slices(pairs, urls, crossed), pairs, seconds, env,
                           [n.pid for n in nodes], port)  # fmt: skip
        finally:
            for node in nodes:
                node.terminate()
            for node in nodes:
                node.wait(timeout=30)
            redis.kill()
            redis.wait(timeout=10)
    speedup = (three["received"] / three["seconds"]) / max(1e-9, one["received"] / one["seconds"])
    return [
        _result(f"1 replica {pairs}x{pairs} 1KiB", one),
        _result(f"3 replicas {pairs}x{pairs} 1KiB", three, speedup=round(speedup, 2)),
    ]
