"""Relay node benchmarks (issue 4): one real ``sealrelay node serve`` process on the
embedded default (SQLite, fsync on every group commit), load from separate processes
(``benchmarks.nodeload``) over real WebSockets on loopback.

Cases:

- ``throughput``: 1 KiB envelopes from ``PAIRS`` senders to ``PAIRS`` receivers (sender i
  to receiver i), each sender keeping ``WINDOW`` sends outstanding and sending whatever
  its window allows at once in one ``SendBatch`` (at most ``BATCH``; set
  ``SEALRELAY_BENCH_BATCH=1`` for one ``Send`` per message); receivers ack every push.
  ``ops/s`` is envelopes received (hence stored, pushed and acked) per second.
- ``latency at half load``: the same, paced at half the measured throughput; p50 and p99
  of send-to-receive time (sender clock to receiver clock, same machine). Also reported:
  ``to_node`` p50 and p99 (sender clock to the node's timestamp of the envelope, taken
  just before its commit, whole milliseconds), and CPU per envelope of the node (its main
  thread, where trio runs, apart) and of the load generators.
- ``throughput unbatched`` and ``latency at half unbatched load``: the same two with one
  ``Send`` per message (``BATCH`` 1), as interactive clients send: the node's cost per
  message, and the latency at half of that rate.
- ``idle connections``: node RSS growth per connection for ``IDLE`` open WebSockets that
  completed the handshake and got their challenge.

The senders and receivers run in two processes and the node in a third, all on this
machine's cores: the numbers include the load generators' share of the CPU (they speak
WebSocket through the lean ``benchmarks.wsclient``, which costs them far less per message
than ``trio_websocket`` did). With ``SEALRELAY_BENCH_PIN=1`` (a machine of two or more
cores, with ``taskset``) the node runs on CPU 0 and the load generators on CPU 1, which
separates the node's own cost from contention with its load.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any, Final

import trio

from benchmarks.harness import Result

PAIRS: Final = 50
WINDOW: Final = 8
BATCH: Final = int(os.environ.get("SEALRELAY_BENCH_BATCH", WINDOW))
SECONDS: Final = 10.0
IDLE: Final = 5000
QUICK_PAIRS: Final = 4
QUICK_SECONDS: Final = 1.0
QUICK_IDLE: Final = 50
NODE_ENV: Final = {
    "SEALRELAY_RATE_IP_PER_S": "1000000",
    "SEALRELAY_RATE_IP_BURST": "1000000",
    "SEALRELAY_RATE_ACCOUNT_PER_S": "1000000",
    "SEALRELAY_RATE_ACCOUNT_BURST": "1000000",
    "SEALRELAY_MAX_CONNECTIONS_PER_IP": "20000",
    # every load process sends from 127.0.0.1, to 50 mailboxes, over anonymous connections
    "SEALRELAY_RATE_SEALED_IP_PER_S": "1000000",
    "SEALRELAY_RATE_SEALED_IP_BURST": "1000000",
    "SEALRELAY_RATE_SEALED_CONNECTION_PER_S": "1000000",
    "SEALRELAY_RATE_SEALED_CONNECTION_BURST": "1000000",
    "SEALRELAY_RATE_SEALED_MAILBOX_PER_S": "1000000",
    "SEALRELAY_RATE_SEALED_MAILBOX_BURST": "1000000",
    "SEALRELAY_MAX_SEALED_CONNECTIONS_PER_IP": "20000",
    "SEALRELAY_LOG_LEVEL": "warning",
}
DOMAIN: Final = "bench.test"


def _python(*args: str, stdin: int | None = None) -> subprocess.Popen[str]:
    pin: list[str] = []
    if os.environ.get("SEALRELAY_BENCH_PIN") == "1":
        pin = ["taskset", "-c", "0" if "serve" in args else "1"]
    return subprocess.Popen(
        [*pin, sys.executable, *args],
        stdin=stdin,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, **NODE_ENV},
    )


def _json_line(stream: IO[str] | None, what: str) -> dict[str, Any]:
    assert stream is not None
    while True:
        line = stream.readline()
        if not line:
            raise RuntimeError(f"{what} ended without its JSON line")
        if line.startswith("{"):
            doc: dict[str, Any] = json.loads(line)
            return doc


async def _invites(data: Path, names: list[str]) -> list[str]:
    from node.accounts import code_hash, format_code
    from node.store import open_store

    store = await open_store("sqlite", data)
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


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text(encoding="ascii").splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def _cpu_s(pid: int, stat: str = "") -> float:
    """User + system CPU seconds of process ``pid`` so far (of the thread whose ``stat``
    file is given)."""
    text = Path(stat or f"/proc/{pid}/stat").read_text(encoding="ascii")
    fields = text.rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _main_thread_cpu_s(pid: int) -> float:
    """User + system CPU seconds of the main thread of process ``pid`` (where the node runs
    trio; its other threads are the store's)."""
    return _cpu_s(pid, f"/proc/{pid}/task/{pid}/stat")


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _round(
    accounts: Path, url: str, node_pid: int, pairs: int, seconds: float, rate: float, batch: int
) -> dict[str, Any]:
    """One send/receive round: the receivers' and senders' JSON merged, plus the CPU
    seconds the node (and its main thread) and the load generators used."""
    load = "benchmarks.nodeload"
    node_cpu, load_cpu = _cpu_s(node_pid), _children_cpu_s()
    main_cpu = _main_thread_cpu_s(node_pid)
    recv = _python(
        "-m", load, "receive", url, str(accounts), str(pairs), str(pairs), str(seconds + 60),
        stdin=subprocess.PIPE,
    )  # fmt: skip
    try:
        _json_line(recv.stdout, "receivers")
        args = ("0", str(pairs), str(seconds), str(pairs), str(rate), str(WINDOW), str(batch))
        sender = _python("-m", load, "send", url, str(accounts), *args)
        sent = _json_line(sender.stdout, "senders")
        sender.wait(timeout=30)
        time.sleep(1.0)  # let the last pushes land
        assert recv.stdin is not None
        recv.stdin.close()
        got = _json_line(recv.stdout, "receivers")
        recv.wait(timeout=30)
    finally:
        if recv.poll() is None:
            recv.kill()
    cpu = {
        "node_cpu_s": _cpu_s(node_pid) - node_cpu,
        "node_main_cpu_s": _main_thread_cpu_s(node_pid) - main_cpu,
        "load_cpu_s": _children_cpu_s() - load_cpu,
    }
    return {**sent, **got, **cpu}


def _cpu_per_envelope(result: dict[str, Any]) -> dict[str, int]:
    envelopes = max(1, result["received"])
    return {
        f"{name}_us_per_envelope": round(result[f"{name}_s"] * 1e6 / envelopes)
        for name in ("node_cpu", "node_main_cpu", "load_cpu")
    }


def _pair(
    label: str, accounts: Path, url: str, node_pid: int, pairs: int, seconds: float, batch: int
) -> list[Result]:
    """Throughput with ``batch``, then latency at half that rate."""
    full = _round(accounts, url, node_pid, pairs, seconds, 0.0, batch)
    rate = full["received"] / full["seconds"]
    half = _round(accounts, url, node_pid, pairs, seconds, rate / 2, batch)
    return [
        _result(
            f"throughput{label} {pairs}x{pairs} 1KiB",
            rate,
            full["p50_ms"] * 1000,
            full["p99_ms"] * 1000,
            envelopes=full["received"],
            sent=full["sent"],
            duplicates=full["duplicates"],
            max_batch=batch,
            **_cpu_per_envelope(full),
        ),
        _result(
            f"latency at half{label} load",
            half["received"] / half["seconds"],
            half["p50_ms"] * 1000,
            half["p99_ms"] * 1000,
            envelopes=half["received"],
            target_rate=round(rate / 2),
            max_ms=round(half["max_ms"], 2),
            to_node_p50_ms=round(half["to_node_p50_ms"], 2),
            to_node_p99_ms=round(half["to_node_p99_ms"], 2),
            **_cpu_per_envelope(half),
        ),
    ]


def _result(name: str, ops: float, p50: float | None, p99: float | None, **extra: Any) -> Result:
    return Result(
        group="node",
        name=name,
        ops_per_s=ops,
        mean_us=1e6 / ops if ops else 0.0,
        p50_us=p50,
        p99_us=p99,
        calls=int(extra.get("envelopes", 0)),
        samples=1,
        batch=1,
        extra=extra,
    )


def run(quick: bool) -> list[Result]:
    pairs = QUICK_PAIRS if quick else PAIRS
    seconds = QUICK_SECONDS if quick else SECONDS
    idle = QUICK_IDLE if quick else IDLE
    with tempfile.TemporaryDirectory(prefix="sealrelay-bench-") as tmp:
        data = Path(tmp) / "node"
        data.mkdir()
        codes = trio.run(_invites, data, [f"u{i}" for i in range(2 * pairs)])
        node = _python(
            "-m", "sealrelay", "node", "serve", "--domain", DOMAIN, "--listen", "127.0.0.1:0",
            "--data", str(data),
        )  # fmt: skip
        try:
            url = _json_line(node.stdout, "node")["url"]
            accounts = Path(tmp) / "accounts.json"
            setup = _python("-m", "benchmarks.nodeload", "setup", url, str(accounts), *codes)
            _json_line(setup.stdout, "setup")
            setup.wait(timeout=60)
            results = _pair("", accounts, url, node.pid, pairs, seconds, BATCH)
            if BATCH != 1 and not quick:
                results += _pair(" unbatched", accounts, url, node.pid, pairs, seconds, 1)
            rss_before = _rss_kib(node.pid)
            idler = _python(
                "-m", "benchmarks.nodeload", "idle", url, str(idle), "600", stdin=subprocess.PIPE
            )  # fmt: skip
            opened = _json_line(idler.stdout, "idle")["open"]
            time.sleep(1.0)
            rss_after = _rss_kib(node.pid)
            assert idler.stdin is not None
            idler.stdin.close()
            idler.wait(timeout=60)
        finally:
            node.terminate()
            node.wait(timeout=30)
    per_conn = (rss_after - rss_before) * 1024 / max(1, opened)
    return [
        *results,
        _result(
            f"idle connections x{opened}",
            0.0,
            None,
            None,
            rss_bytes_per_connection=round(per_conn),
            rss_before_kib=rss_before,
            rss_after_kib=rss_after,
        ),
    ]
