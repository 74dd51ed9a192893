"""Group messaging over the network (the groups issue): real ``sealrelay node serve``
processes on the embedded default (SQLite, fsync on every group commit), load from
separate processes (``benchmarks.groupload``) over real WebSockets on loopback.

Cases:

- ``fan-out at one node``: one node, ``FANOUT_RECEIVERS`` receiving accounts connected
  (split over ``RECEIVER_PROCS`` processes, each acking every push); one sender uploads
  ``FANOUT_MESSAGES`` group messages as ``SendShared`` (one body, every receiver's mailbox
  and delivery token), keeping ``FANOUT_WINDOW`` uploads unanswered. ``ops/s`` is fan-out
  deliveries (receivers x messages, each received and acked) divided by the time from the
  first upload to the last ack (``mean`` is its inverse); ``p50``/``p99`` are
  upload-to-receipt times per delivery; ``node_us`` is the node's CPU per delivery. The
  body is a real group upload body (``benchmarks.groupload``: a 1 KiB sender-key message,
  wrapped and padded; ``body_bytes``).
- ``all 199 have it``: three nodes (A, B, C, pinned to each other as ``node.devfed`` lays
  them out), ``GROUP_RECEIVERS`` receiving accounts spread evenly over A, B and C (one
  receiver process), the sender on A. For each of ``GROUP_MESSAGES`` messages (one at a
  time, ``GROUP_PAUSE_S`` apart, after one warm-up message that is not counted and is
  reported as ``warmup_ms``) the sender does what the client does
  (``client.groups`` encryption, ``client.groupnet.wrap`` and ``uploads``: one
  ``SendShared`` to A, one ``Forward`` of a many-recipient routing layer for each of B and
  C). The time of a message runs from before its encryption to the last of its receipts
  (sender's and receivers' ``time.time_ns``, same machine); ``p50``/``p99``/``max_ms``
  are over the messages. ``from_send_p50_ms`` starts at the first frame sent instead
  (without the sender's own CPU, ``build_cpu_us``); ``answered_p50_ms`` ends when A has
  answered every upload; ``last_a_p50_ms`` (``_b``, ``_c``) ends at the last receipt on A
  (B, C).

Both fail unless every delivery arrived exactly once: each expected (account, envelope)
pair received, none twice, nothing else. The nodes and the load processes share this
machine's cores: the CPU columns (``cpu_*``: CPU seconds per wall second, 1.0 is one core
busy; ``cpu_other``: the rest of the machine meanwhile) say how much each used.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final

import trio

from benchmarks.federation import Node, _final_line, _free_ports, _kill, _machine_cpu_s, _python
from benchmarks.groupload import read_deliveries, read_sent, read_uploads
from benchmarks.harness import Result, nearest_rank
from benchmarks.node import NODE_ENV, _cpu_s, _invites, _json_line

FANOUT_RECEIVERS: Final = 199
FANOUT_MESSAGES: Final = 300
FANOUT_WINDOW: Final = 4
RECEIVER_PROCS: Final = 2
GROUP_RECEIVERS: Final = 199
GROUP_MESSAGES: Final = 20
GROUP_PAUSE_S: Final = 1.0
QUICK_FANOUT_RECEIVERS: Final = 6
QUICK_FANOUT_MESSAGES: Final = 10
QUICK_GROUP_RECEIVERS: Final = 9
QUICK_GROUP_MESSAGES: Final = 2
QUICK_GROUP_PAUSE_S: Final = 0.05
DOMAINS: Final = ("alpha.localhost", "bravo.localhost", "charlie.localhost")
RECEIVE_TIMEOUT: Final = 300.0
LOAD: Final = "benchmarks.groupload"


# --- nodes and accounts ----------------------------------------------------------------------


@dataclass
class Site:
    """A running node and the account files registered on it."""

    node: Node
    accounts: dict[str, Path]


def _start(
    tmp: Path, domains: tuple[str, ...], names: list[dict[str, int]], log: IO[str]
) -> list[Site]:
    """Nodes for ``domains`` (pinned to each other), each with the accounts of ``names``
    (file stem -> how many), registered through the client protocol."""
    from node.devfed import prepare

    setups = prepare(tmp / "fed", domains, _free_ports(len(domains)))
    sites: list[Site] = []
    plans: list[tuple[Node, Path, list[str]]] = []
    for setup, wanted in zip(setups, names, strict=True):
        node = Node(setup.domain, setup.port, setup.data_dir, setup.config, log)
        site = Site(node, {})
        for stem, count in wanted.items():
            path = tmp / f"{setup.domain}-{stem}.json"
            site.accounts[stem] = path
            codes = trio.run(_invites, setup.data_dir, [f"{stem}{i}" for i in range(count)])
            plans.append((node, path, codes))
        sites.append(site)
    registering: list[subprocess.Popen[str]] = []
    try:
        for site in sites:
            site.node.start()
        registering += [
            _python("-m", "benchmarks.nodeload", "setup", node.url, str(path), *codes)
            for node, path, codes in plans
        ]
        for proc in registering:
            _json_line(proc.stdout, "setup")
            proc.wait(timeout=300)
    except BaseException:
        _stop(sites)
        raise
    finally:
        for proc in registering:
            _end(proc)
    return sites


def _stop(sites: list[Site]) -> None:
    for site in sites:
        site.node.stop()
        if site.node.proc is not None:
            _close(site.node.proc)


def _end(proc: subprocess.Popen[str]) -> None:
    """Kill ``proc`` if it still runs, and close our ends of its pipes."""
    _kill(proc)
    _close(proc)


def _close(proc: subprocess.Popen[str]) -> None:
    for pipe in (proc.stdin, proc.stdout):
        if pipe is not None:
            pipe.close()


class Cpu:
    """CPU seconds of some node processes and of the whole machine since creation."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.start = self._now()

    def _now(self) -> list[float]:
        return [time.monotonic(), _machine_cpu_s(), *(_cpu_s(pid) for pid in self.pids)]

    def used(self) -> tuple[float, float, list[float]]:
        """Wall seconds, machine CPU, each node's CPU."""
        end = self._now()
        delta = [e - s for e, s in zip(end, self.start, strict=True)]
        return delta[0], delta[1], delta[2:]


@dataclass
class Load:
    """The load processes of one case (receivers, then one sender) and the CPU seconds
    they had used when they said ``ready``."""

    receivers: list[tuple[subprocess.Popen[str], Path]] = field(default_factory=list)
    sender: subprocess.Popen[str] | None = None
    ready_cpu_s: float = 0.0

    def kill(self) -> None:
        procs = [proc for proc, _ in self.receivers]
        if self.sender is not None:
            procs.append(self.sender)
        for proc in procs:
            _end(proc)


def _load(*args: str, stdin: int | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", LOAD, *args],
        stdin=stdin,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, **NODE_ENV},
    )


def _receivers(load: Load, expect: list[int], tmp: Path, tag: str, specs: list[list[str]]) -> None:
    """One receiver process per ``specs`` entry (accounts numbered on from the previous
    ones); returns once every one is logged in and drained."""
    base = 0
    for n, (count, spec) in enumerate(zip(expect, specs, strict=True)):
        out = tmp / f"{tag}-received-{n}.bin"
        args = (str(count), str(RECEIVE_TIMEOUT), str(out), str(base), *spec)
        load.receivers.append((_load("receive", *args), out))
        base += sum(int(item.rsplit(",", 1)[1]) for item in spec)
    for proc, _ in load.receivers:
        load.ready_cpu_s += _json_line(proc.stdout, "receivers")["cpu_s"]


def _sender(load: Load, *args: str) -> None:
    """Start the sender; return once it is ready to send."""
    load.sender = _load(*args, stdin=subprocess.PIPE)
    load.ready_cpu_s += _json_line(load.sender.stdout, "sender")["cpu_s"]


def _go(load: Load, key: str) -> dict[str, Any]:
    """Let the sender go; its final line (the first with ``key``) once it is done."""
    sender = load.sender
    assert sender is not None
    assert sender.stdin is not None
    sender.stdin.write("go\n")
    sender.stdin.flush()
    done = _final_line(sender.stdout, "sender", key)
    sender.wait(timeout=60)
    return done


def _collect(load: Load) -> tuple[list[dict[str, Any]], list[tuple[int, bytes, int]]]:
    """The receivers' final lines and their deliveries, once they are done."""
    docs: list[dict[str, Any]] = []
    deliveries: list[tuple[int, bytes, int]] = []
    for proc, out in load.receivers:
        docs.append(_final_line(proc.stdout, "receivers", "received"))
        proc.wait(timeout=60)
        deliveries += read_deliveries(out)
    return docs, deliveries


def _load_cpu_s(load: Load, sent: dict[str, Any], docs: list[dict[str, Any]]) -> float:
    """CPU seconds the load processes used after they said ``ready``."""
    return float(sent["cpu_s"]) + sum(float(d["cpu_s"]) for d in docs) - load.ready_cpu_s


def _exactly_once(
    expected: set[tuple[int, bytes]], deliveries: list[tuple[int, bytes, int]], duplicates: int
) -> None:
    """Every expected (account, eid) received, nothing else, nothing twice; else fail."""
    got = {(account, eid) for account, eid, _ in deliveries}
    missing, extra = len(expected - got), len(got - expected)
    if missing or extra or duplicates:
        raise RuntimeError(
            f"{len(expected)} deliveries expected: {missing} missing, {extra} unexpected, "
            f"{duplicates} duplicates (receivers waited up to {RECEIVE_TIMEOUT:.0f} s)"
        )


def _cores(seconds: float, wall: float) -> float:
    return round(seconds / max(1e-9, wall), 2)


# --- case 1: fan-out at one node --------------------------------------------------------------


def _fanout(tmp: Path, log: IO[str], receivers: int, messages: int) -> Result:
    sites = _start(tmp, DOMAINS[:1], [{"s": 1, "r": receivers}], log)
    site = sites[0]
    try:
        url, recv_file = site.node.url, site.accounts["r"]
        shares = [receivers // RECEIVER_PROCS + (i < receivers % RECEIVER_PROCS)
                  for i in range(RECEIVER_PROCS)]  # fmt: skip
        firsts = [sum(shares[:i]) for i in range(RECEIVER_PROCS)]
        specs = [[f"{url},{recv_file},{f},{n}"] for f, n in zip(firsts, shares, strict=True)]
        load = Load()
        try:
            _receivers(load, [n * messages for n in shares], tmp, "fanout", specs)
            sent_out = tmp / "fanout-sent.bin"
            senders = str(site.accounts["s"])
            args = (url, senders, str(recv_file), str(messages), str(FANOUT_WINDOW), str(sent_out))
            _sender(load, "fanout", *args)
            cpu = Cpu([site.node.pid])
            sent = _go(load, "sent")
            docs, deliveries = _collect(load)
            wall, machine_s, (node_s,) = cpu.used()
        finally:
            load.kill()
    finally:
        _stop(sites)
    load_s = _load_cpu_s(load, sent, docs)
    sent_at = read_sent(sent_out)
    if sent["sent"] != messages or len(sent_at) != messages:
        raise RuntimeError(f"{messages} uploads: {sent['sent']} answered SentShared")
    expected = {(a, eid) for a in range(receivers) for eid in sent_at}
    _exactly_once(expected, deliveries, sum(d["duplicates"] for d in docs))
    total = len(expected)
    last = max(d["last_ack_ns"] for d in docs)
    seconds = max(1e-9, (last - sent["start_ns"]) / 1e9)
    latencies = sorted((t - sent_at[eid]) / 1e3 for _, eid, t in deliveries)
    rate = total / seconds
    return Result(
        group="groupnet",
        name=f"fan-out at one node ({receivers} recipients x {messages})",
        ops_per_s=rate,
        mean_us=1e6 / rate,
        p50_us=nearest_rank(latencies, 50),
        p99_us=nearest_rank(latencies, 99),
        calls=total,
        samples=1,
        batch=1,
        extra={
            "deliveries": total,
            "seconds": round(seconds, 2),
            "window": FANOUT_WINDOW,
            "body_bytes": sent["body_bytes"],
            "node_us": round(node_s * 1e6 / total, 1),
            "load_us": round(load_s * 1e6 / total, 1),
            "cpu_node": _cores(node_s, wall),
            "cpu_load": _cores(load_s, wall),
            "cpu_other": _cores(max(0.0, machine_s - node_s - load_s), wall),
            "duplicates": 0,
        },
    )


# --- case 2: all 199 have it across three domains -------------------------------------------


def _group(tmp: Path, log: IO[str], receivers: int, messages: int, pause: float) -> Result:
    shares = [receivers // 3 + (i < receivers % 3) for i in range(3)]
    shares = [shares[1], shares[0], shares[2]]  # the odd one out on B, as A has the sender
    wanted = [{"s": 1, "r": shares[0]}, {"r": shares[1]}, {"r": shares[2]}]
    sites = _start(tmp, DOMAINS, wanted, log)
    total_messages = messages + 1  # the first is a warm-up
    try:
        a = sites[0].node
        spec = [f"{s.node.url},{s.accounts['r']},0,{n}" for s, n in zip(sites, shares, strict=True)]
        dests = [f"{s.node.domain},{s.node.url},{s.accounts['r']}" for s in sites]
        out = tmp / "group-sent.bin"
        args = (a.url, str(sites[0].accounts["s"]), a.domain, str(total_messages), str(pause))
        load = Load()
        try:
            _receivers(load, [receivers * total_messages], tmp, "group", [spec])
            _sender(load, "group", *args, str(out), *dests)
            cpu = Cpu([s.node.pid for s in sites])
            sent = _go(load, "messages")
            docs, deliveries = _collect(load)
            wall, machine_s, node_s = cpu.used()
        finally:
            load.kill()
    finally:
        _stop(sites)
    load_s = _load_cpu_s(load, sent, docs)
    uploads = read_uploads(out)
    firsts = [sum(shares[:i]) for i in range(3)]
    expected: set[tuple[int, bytes]] = set()
    upload_of: dict[bytes, tuple[int, int, int, int]] = {}
    for message, domain, eid, start, sent_ns, answered in uploads:
        upload_of[eid] = (message, start, sent_ns, answered)
        expected |= {(firsts[domain] + i, eid) for i in range(shares[domain])}
    _exactly_once(expected, deliveries, sum(d["duplicates"] for d in docs))
    last: dict[int, int] = {}
    last_in: dict[tuple[int, int], int] = {}  # (domain, message) -> last receipt there
    domain_of = [d for d in range(3) for _ in range(shares[d])]
    for account, eid, t in deliveries:
        message = upload_of[eid][0]
        last[message] = max(last.get(message, 0), t)
        key = (domain_of[account], message)
        last_in[key] = max(last_in.get(key, 0), t)
    start_of = {m: s for m, s, _, _ in upload_of.values()}
    sent_of = {m: s for m, _, s, _ in upload_of.values()}
    answered_of = {m: a for m, _, _, a in upload_of.values()}
    counted = range(1, total_messages)
    to_all = sorted((last[m] - start_of[m]) / 1e3 for m in counted)
    from_send = sorted((last[m] - sent_of[m]) / 1e3 for m in counted)
    answered_us = sorted((answered_of[m] - start_of[m]) / 1e3 for m in counted)
    per_domain = Counter(account for account, _, _ in deliveries)
    by_domain = [sum(per_domain[firsts[d] + i] for i in range(shares[d])) for d in range(3)]
    mean = sum(to_all) / len(to_all)
    total = len(deliveries)
    return Result(
        group="groupnet",
        name=f"all {receivers} have it, 3 domains (time per message)",
        ops_per_s=1e6 / mean,
        mean_us=mean,
        p50_us=nearest_rank(to_all, 50),
        p99_us=nearest_rank(to_all, 99),
        calls=messages,
        samples=messages,
        batch=1,
        extra={
            "max_ms": round(to_all[-1] / 1e3, 1),
            "warmup_ms": round((last[0] - start_of[0]) / 1e6, 1),
            "from_send_p50_ms": round(nearest_rank(from_send, 50) / 1e3, 1),
            "answered_p50_ms": round(nearest_rank(answered_us, 50) / 1e3, 1),
            "build_cpu_us": sent["build_cpu_us_p50"],
            **{
                f"last_{'abc'[d]}_p50_ms": round(
                    nearest_rank(sorted((last_in[d, m] - start_of[m]) / 1e3 for m in counted), 50)
                    / 1e3,
                    1,
                )
                for d in range(3)
            },
            "members_a_b_c": "/".join(map(str, shares)),
            "delivered_a_b_c": "/".join(map(str, by_domain)),
            "uploads_per_message": len(uploads) // total_messages,
            "deliveries": total,
            "cpu_a": _cores(node_s[0], wall),
            "cpu_b": _cores(node_s[1], wall),
            "cpu_c": _cores(node_s[2], wall),
            "cpu_load": _cores(load_s, wall),
            "cpu_other": _cores(max(0.0, machine_s - sum(node_s) - load_s), wall),
        },
    )


def run(quick: bool) -> list[Result]:
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="sealrelay-groupbench-") as tmp_name:
        tmp = Path(tmp_name)
        with (tmp / "nodes.log").open("w") as log:
            fan_r = QUICK_FANOUT_RECEIVERS if quick else FANOUT_RECEIVERS
            fan_m = QUICK_FANOUT_MESSAGES if quick else FANOUT_MESSAGES
            results.append(_fanout(tmp / "fanout", log, fan_r, fan_m))
            group_r = QUICK_GROUP_RECEIVERS if quick else GROUP_RECEIVERS
            group_m = QUICK_GROUP_MESSAGES if quick else GROUP_MESSAGES
            pause = QUICK_GROUP_PAUSE_S if quick else GROUP_PAUSE_S
            results.append(_group(tmp / "group", log, group_r, group_m, pause))
    return results
