"""Federation benchmarks (the federation issue): two real ``sealrelay node serve`` processes,
A and B, on the embedded default (SQLite, fsync on every group commit), pinned to each other
as ``node.devfed`` lays them out; load from separate processes (``benchmarks.fedload``)
over real WebSockets on loopback: senders on A (``Forward``), receivers on B (ack every
push).

Cases:

- ``throughput``: ``PAIRS`` senders on A forward ``THROUGHPUT_ENVELOPES`` 1 KiB envelopes
  to ``PAIRS`` receivers on B, each sender keeping ``WINDOW`` requests outstanding. ``ops/s``
  is envelopes received and acked on B divided by the time from the first send on A to the
  last receive on B (end to end, not A's intake).
- ``latency at half load``: the same, paced at half the measured throughput for
  ``HALF_SECONDS``; p50 and p99 of send-to-receive time (sender's clock to receiver's
  clock, same machine).
- ``backlog drain``: B is stopped (SIGTERM), ``BACKLOG`` envelopes are forwarded to A (all
  answered ``Sent``, so durably queued), B is started; the time from B listening until the
  receivers (connecting as soon as B accepts) have received and acked all of them, and
  until A's outbound queue for B is empty (polled read-only in A's SQLite file).

The cases run on the default suite (cnsa2), then again on xwing (the full run only): on
cnsa2, opening each routing layer on B costs a P-384 ECDH in OpenSSL (about 350-450 us on
this machine), most of B's CPU per envelope.

Routing layers are sealed to B's KEM key (``client.routing.seal_for_domain``) before
each timed window, by two sealer processes: sealing costs about a millisecond of client CPU
per envelope and would otherwise compete with the nodes. The seal cost is reported
(``seal_us``). A, B and the load generators share this machine's cores: each case reports
the CPU each used during its window (``cpu_a``/``cpu_b``/``cpu_load``, CPU seconds per wall
second: 1.0 is one core busy), and ``cpu_other`` what the rest of the machine used meanwhile
(from ``/proc/stat``): a busy machine makes every number here worse. ``us_a``, ``us_b``
and ``us_load`` are the same CPU per envelope, in microseconds: they vary much less with
the machine's load than the rates do.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final

import trio

from benchmarks.fedload import read_records
from benchmarks.harness import Result, nearest_rank
from benchmarks.node import NODE_ENV, _children_cpu_s, _cpu_s, _invites, _json_line

PAIRS: Final = 20
WINDOW: Final = 16
THROUGHPUT_ENVELOPES: Final = 16_000
HALF_SECONDS: Final = 8.0
BACKLOG: Final = 10_000
QUICK_PAIRS: Final = 2
QUICK_THROUGHPUT: Final = 100
QUICK_HALF_SECONDS: Final = 0.5
QUICK_BACKLOG: Final = 100
SEALERS: Final = 2
SEAL_SHARE: Final = 1000  # fewer layers than this per sealer: not worth another process
DOMAINS: Final = ("alpha.localhost", "bravo.localhost")
RECEIVE_TIMEOUT: Final = 300.0
POLL_S: Final = 0.01
LOAD: Final = "benchmarks.fedload"
DEFAULT_SUITE: Final = "cnsa2"
OTHER_SUITE: Final = "xwing"


def _free_ports(count: int) -> list[int]:
    socks = [socket.socket() for _ in range(count)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _python(*args: str, stderr: IO[str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, *args],
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        env={**os.environ, **NODE_ENV},
    )


def _final_line(stream: IO[str] | None, what: str, key: str) -> dict[str, Any]:
    """The first JSON line of ``stream`` that has ``key``."""
    while True:
        doc = _json_line(stream, what)
        if key in doc:
            return doc


@dataclass
class Node:
    """One node process over a data directory kept across restarts."""

    domain: str
    port: int
    data: Path
    config: Path
    log: IO[str]
    proc: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> int:
        """Start and wait until it listens; ``time.time_ns()`` when it said so."""
        self.proc = _python(
            "-m", "sealrelay", "node", "serve", "--domain", self.domain,
            "--listen", f"127.0.0.1:{self.port}", "--data", str(self.data),
            "--config", str(self.config), stderr=self.log,
        )  # fmt: skip
        _final_line(self.proc.stdout, f"node {self.domain}", "url")
        return time.time_ns()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)


@dataclass
class Bench:
    tmp: Path
    a: Node
    b: Node
    senders: Path
    receivers: Path
    pairs: int
    seal_us: float = 0.0
    _files: int = 0

    def _path(self, stem: str) -> Path:
        self._files += 1
        return self.tmp / f"{stem}-{self._files}.bin"

    def seal(self, count: int) -> list[Path]:
        """``count`` layers sealed to B, in up to ``SEALERS`` files made in parallel."""
        sealers = min(SEALERS, max(1, count // SEAL_SHARE))
        paths = [self._path("layers") for _ in range(sealers)]
        shares = [count // sealers + (i < count % sealers) for i in range(sealers)]
        procs = [
            _python("-m", LOAD, "seal", self.b.url, str(self.receivers), str(n), str(p))
            for n, p in zip(shares, paths, strict=True)
        ]
        costs = [_json_line(p.stdout, "sealer")["cpu_us_per_layer"] for p in procs]
        for p in procs:
            p.wait(timeout=60)
        self.seal_us = sum(costs) / len(costs)
        return paths

    def send(self, layers: list[Path], rate: float) -> tuple[subprocess.Popen[str], Path]:
        out = self._path("sent")
        args = (DOMAINS[1], str(rate), str(WINDOW), str(out), *map(str, layers))
        return _python("-m", LOAD, "send", self.a.url, str(self.senders), *args), out

    def receive(self, expect: int) -> tuple[subprocess.Popen[str], Path]:
        out = self._path("received")
        args = (str(expect), str(RECEIVE_TIMEOUT), str(out))
        return _python("-m", LOAD, "receive", self.b.url, str(self.receivers), *args), out


class Cpu:
    """CPU seconds used by A, B and the reaped load processes since creation."""

    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        self.start = self._now()

    def _now(self) -> tuple[float, float, float, float, float]:
        b = self.bench
        return (
            time.monotonic(),
            _cpu_s(b.a.pid),
            _cpu_s(b.b.pid),
            _children_cpu_s(),
            _machine_cpu_s(),
        )

    def split(self, envelopes: int) -> dict[str, float]:
        """Cores used by A, B, the load processes and everything else on the machine;
        CPU microseconds per envelope of A, B and the load (``us_a``...)."""
        end = self._now()
        wall = end[0] - self.start[0]
        a, b, load, machine = (end[i] - self.start[i] for i in (1, 2, 3, 4))
        per = 1e6 / max(1, envelopes)
        return {"cpu_a": round(a / wall, 2), "cpu_b": round(b / wall, 2),
                "cpu_load": round(load / wall, 2),
                "cpu_other": round(max(0.0, machine - a - b - load) / wall, 2),
                "us_a": round(a * per), "us_b": round(b * per),
                "us_load": round(load * per)}  # fmt: skip


def _machine_cpu_s() -> float:
    """Busy CPU seconds of the whole machine (all cores) since boot, from /proc/stat."""
    fields = Path("/proc/stat").read_text(encoding="ascii").splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _round(bench: Bench, layers: list[Path], count: int, rate: float) -> dict[str, Any]:
    """Forward ``count`` pre-sealed layers from A at ``rate`` (0: flat out) and receive
    them on B: rate, latencies and the CPU split."""
    recv, recv_out = bench.receive(count)
    try:
        _json_line(recv.stdout, "receivers")  # ready: every receiver is logged in
        cpu = Cpu(bench)
        sender, sent_out = bench.send(layers, rate)
        sent = _final_line(sender.stdout, "senders", "sent")
        sender.wait(timeout=60)
        got = _final_line(recv.stdout, "receivers", "received")
        recv.wait(timeout=60)
        split = cpu.split(count)
    finally:
        _kill(recv)
    _check(count, sent, got)
    sent_at, got_at = read_records(sent_out), read_records(recv_out)
    latencies = sorted(t - sent_at[e] for e, t in got_at.items() if e in sent_at)
    first, last = min(sent_at.values()), max(got_at.values(), default=0)
    seconds = max(1e-9, (last - first) / 1e9)
    return {
        **split,
        "sent": sent["sent"],
        "received": got["received"],
        "duplicates": got["duplicates"],
        "rate": got["received"] / seconds,
        "seconds": seconds,
        "p50_ms": nearest_rank(latencies, 50) / 1e6,
        "p99_ms": nearest_rank(latencies, 99) / 1e6,
        "max_ms": (latencies[-1] / 1e6) if latencies else 0.0,
    }


def _kill(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=30)


def _check(count: int, sent: dict[str, Any], got: dict[str, Any]) -> None:
    """Every envelope answered ``Sent`` on A and received on B, or the case fails."""
    if sent["sent"] != count or got["received"] != count:
        raise RuntimeError(
            f"{count} envelopes: {sent['sent']} answered Sent on A, "
            f"{got['received']} received on B within {RECEIVE_TIMEOUT:.0f} s"
        )


def _outbound_depth(data: Path, domain: str) -> int:
    uri = (data / "node.sqlite3").as_uri() + "?mode=ro"
    with sqlite3.connect(uri, uri=True, timeout=5) as db:
        row = db.execute("SELECT count(*) FROM outbound WHERE domain = ?", (domain,)).fetchone()
    return int(row[0])


def _backlog(bench: Bench, count: int) -> dict[str, Any]:
    """Stop B, queue ``count`` envelopes on A, start B: time to drain."""
    layers = bench.seal(count)
    bench.b.stop()
    sender, _ = bench.send(layers, 0.0)
    sent = _final_line(sender.stdout, "senders", "sent")
    sender.wait(timeout=60)
    queue_rate = sent["sent"] / max(1e-9, (sent["end_ns"] - sent["start_ns"]) / 1e9)
    depth = _outbound_depth(bench.a.data, DOMAINS[1])
    recv, _ = bench.receive(count)  # it connects as soon as B accepts connections
    try:
        listening = bench.b.start()
        cpu = Cpu(bench)
        while _outbound_depth(bench.a.data, DOMAINS[1]):
            time.sleep(POLL_S)
        a_empty = time.time_ns()
        got = _final_line(recv.stdout, "receivers", "received")
        recv.wait(timeout=60)
        split = cpu.split(count)
    finally:
        _kill(recv)
    _check(count, sent, got)
    return {
        **split,
        "sent": sent["sent"],
        "queued_on_a": depth,
        "queue_rate": queue_rate,
        "received": got["received"],
        "duplicates": got["duplicates"],
        "drain_s": (got["last_ack_ns"] - listening) / 1e9,
        "a_empty_s": (a_empty - listening) / 1e9,
    }


def _result(name: str, ops: float, p50_ms: float | None, p99_ms: float | None,
            calls: int, **extra: Any) -> Result:  # fmt: skip
    return Result(
        group="federation",
        name=name,
        ops_per_s=ops,
        mean_us=1e6 / ops if ops else 0.0,
        p50_us=None if p50_ms is None else p50_ms * 1000,
        p99_us=None if p99_ms is None else p99_ms * 1000,
        calls=calls,
        samples=1,
        batch=1,
        extra=extra,
    )


def _setup(tmp: Path, pairs: int, log: IO[str], suite: str = DEFAULT_SUITE) -> Bench:
    from node.devfed import prepare

    setups = prepare(tmp / "fed", DOMAINS, _free_ports(len(DOMAINS)), suite=suite)
    a, b = (Node(s.domain, s.port, s.data_dir, s.config, log) for s in setups)
    bench = Bench(tmp, a, b, tmp / "senders.json", tmp / "receivers.json", pairs)
    codes_a = trio.run(_invites, a.data, [f"s{i}" for i in range(pairs)])
    codes_b = trio.run(_invites, b.data, [f"r{i}" for i in range(pairs)])
    a.start()
    b.start()
    registering = [
        _python("-m", "benchmarks.nodeload", "setup", node.url, str(out), *codes)
        for node, codes, out in ((a, codes_a, bench.senders), (b, codes_b, bench.receivers))
    ]
    for proc in registering:
        _json_line(proc.stdout, "setup")
        proc.wait(timeout=120)
    return bench


def run(quick: bool) -> list[Result]:
    results = _run_suite(quick, DEFAULT_SUITE, "")
    if not quick:  # the same federation on the other suite, for comparison
        results += _run_suite(quick, OTHER_SUITE, f" ({OTHER_SUITE})")
    return results


def _run_suite(quick: bool, suite: str, label: str) -> list[Result]:
    pairs = QUICK_PAIRS if quick else PAIRS
    total = QUICK_THROUGHPUT if quick else THROUGHPUT_ENVELOPES
    half_s = QUICK_HALF_SECONDS if quick else HALF_SECONDS
    backlog = QUICK_BACKLOG if quick else BACKLOG
    with tempfile.TemporaryDirectory(prefix="sealrelay-fedbench-") as tmp_name:
        tmp = Path(tmp_name)
        with (tmp / "nodes.log").open("w") as log:
            bench = _setup(tmp, pairs, log, suite)
            try:
                full = _round(bench, bench.seal(total), total, 0.0)
                seal_us = bench.seal_us
                half_n = max(pairs, round(full["rate"] / 2 * half_s))
                half = _round(bench, bench.seal(half_n), half_n, full["rate"] / 2)
                drain = _backlog(bench, backlog)
            finally:
                bench.b.stop()
                bench.a.stop()
    common = {"window": WINDOW, "pairs": pairs}
    return [
        _result(
            f"throughput A->B 1KiB{label}", full["rate"], full["p50_ms"], full["p99_ms"],
            full["received"], sent=full["sent"], duplicates=full["duplicates"],
            seal_us=round(seal_us), **common, **_cpu_cols(full),
        ),
        _result(
            f"latency at half load{label}", half["rate"], half["p50_ms"], half["p99_ms"],
            half["received"], target_rate=round(full["rate"] / 2),
            max_ms=round(half["max_ms"], 1), **_cpu_cols(half),
        ),
        _result(
            f"backlog {backlog} drain{label}", backlog / drain["drain_s"], None, None,
            drain["received"], drain_s=round(drain["drain_s"], 2),
            a_empty_s=round(drain["a_empty_s"], 2), queued_on_a=drain["queued_on_a"],
            queue_rate=round(drain["queue_rate"]), duplicates=drain["duplicates"],
            **_cpu_cols(drain),
        ),
    ]  # fmt: skip


def _cpu_cols(round_: dict[str, Any]) -> dict[str, float]:
    keys = ("cpu_a", "cpu_b", "cpu_load", "cpu_other", "us_a", "us_b", "us_load")
    return {k: round_[k] for k in keys}
