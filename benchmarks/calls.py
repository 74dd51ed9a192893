"""Calls (issue 17, "Done when"): real ``sealrelay node serve`` processes with ``udp_listen``
set (two domains, pinned to each other as ``node.devfed`` lays them out), media from load
generator processes (``benchmarks.callload``) over QUIC on loopback UDP, replaying the
shipped fixture (real Opus 20 ms + VP8 30 fps frames, SFrame-encrypted and packetized by
``client.calls.runner``). ``make bench calls`` runs this module alone.

Cases:

- ``setup, same domain`` / ``setup, across domains``: the load generator places a call with
  the call signalling (``client.calls.control``: an end-to-end CallOffer over the pairwise
  session, the callee's ``LegAllocate``, the caller's ``LegBridge``, QUIC binds) and times,
  from just before the offer, the first frame the caller receives from the callee
  (``p50``/``p99``/``mean`` over ``SETUPS`` calls after one warm-up call that is not counted;
  ``callee_ms_p50``: the first frame the callee receives). Target: under 200 ms across
  domains.
- ``hop latency, N calls``: ``N`` concurrent video calls (both directions send audio and
  video) for ``SECONDS``, each call's two ends in one load process. Each datagram's time
  from the sender's ``send_datagrams`` to the receiver's ``receive_datagram_batch`` is taken
  on that process's clock (``benchmarks.callload.Probe``): ``path_p50_ms``/``path_p99_ms``.
  The same calls are then run with no node, the two ends on one direct loopback QUIC
  connection (``base_p50_ms``/``base_p99_ms``): the client stacks, loopback and the load
  process's scheduling. ``p50``/``p99`` (µs) are the relay-added latency per node hop:
  (path percentile - baseline percentile) / hops (1 in one domain, 2 across domains). Target:
  p99 under 5 ms per hop at 20 calls. ``loss_pct``: datagrams sent and never received
  through the nodes; ``frames_lost_pct`` the frames the receivers counted lost. Target: loss
  under 0.1 % at 20 calls. ``decrypt_failures`` must be 0 (the case fails otherwise).
  Where datagrams went: ``node_drops`` (the node's ``sealrelay_call_dropped_total`` and
  ``send_failures``), ``node_socket_drops`` (the kernel's drops on the nodes' UDP sockets,
  ``/proc/net/udp``), ``udp_buffer_errors`` (the kernel's drops on full UDP socket buffers,
  machine-wide: the load processes' sockets and anything else on the machine).
- ``forwarding, N calls``: ``ops/s`` is datagrams forwarded per CPU-second of the node
  process during the N-call round, from when every call is bound (QUIC handshakes and leg
  requests are not counted) to the end: ``sealrelay_call_forwarded_datagrams_total`` (``/metrics``)
  delta over the node's user + system CPU delta (``/proc/PID/stat``). Target: at least
  30,000. ``mean µs`` is the node's CPU per forwarded datagram.
- ``forwarding, flood of N calls``: the node's capacity rather than a call's load: each
  load process binds ``FLOOD_CALLS`` calls, and both ends of each send the fixture's
  datagrams (encrypted once beforehand) as fast as the other end receives them (at most
  64 in flight each way) for ``SECONDS`` (``callload`` ``flood``); ``ops/s`` is again
  datagrams forwarded per node CPU-second. ``loss_pct``: sent and never received.
- ``profile ...``: afterwards the node of the first domain is restarted under ``cProfile``
  (``benchmarks.profiled``: CPU time, main thread), fresh accounts make ``PROFILE_CALLS``
  video calls through it for ``SECONDS``, profiled from when every call is bound to just
  after they end, and the functions with the most own time are listed: ``mean µs`` is
  that function's own CPU time per forwarded datagram, ``share_pct`` its share of all
  profiled time, ``cum_pct`` its time with what it calls. cProfile slows the node down
  (each Python call costs more), so the shares say where the time goes, not how much.
- ``replicas: ...``: one raw 1:1 audio call across the two replicas of one domain on one
  redis-server (bridged, a relayed bind) against both legs on one replica
  (``benchmarks.callreplicas``; ``not measured`` rows, with the reason, if it fails).

The nodes and the load processes share this machine's cores; ``cpu_load`` is the load
processes' CPU per wall second in the round, ``cpu_machine`` the whole machine's.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final

import httpx
import trio

from benchmarks.callreplicas import rows as replica_rows
from benchmarks.callrows import (
    CallsFailed,
    Round,
    forwarding_result,
    hop_result,
    not_measured,
    setup_result,
)
from benchmarks.federation import Node, _final_line, _free_ports, _kill, _machine_cpu_s
from benchmarks.harness import Result
from benchmarks.node import NODE_ENV, _cpu_s, _invites, _json_line
from benchmarks.profiled import profile_results

CALLS: Final = 20
LOAD_PROCS: Final = 4
SECONDS: Final = 10.0
SETUPS: Final = 5
PROFILE_CALLS: Final = 10
FLOOD_CALLS: Final = 1
"""Calls per load process in the flood round."""
QUICK_CALLS: Final = 2
QUICK_SECONDS: Final = 1.0
QUICK_SETUPS: Final = 1
DOMAINS: Final = ("alpha.localhost", "bravo.localhost")
EXTRA: Final = 'udp_listen = "127.0.0.1:0"'
SUITE: Final = "cnsa2"
LOAD: Final = "benchmarks.callload"
FORWARDED: Final = "sealrelay_call_forwarded_datagrams_total"
NOT_FORWARDED: Final = ("sealrelay_call_dropped_total", "sealrelay_call_send_failures_total")
NOT_MEASURED: Final = "not measured"
LOG_TAIL: Final = 40
PROFILED: Final = "benchmarks.profiled"
PROFILE_WRITE_TIMEOUT: Final = 30.0
QUIT_TIMEOUT: Final = 10.0


@dataclass(frozen=True)
class Plan:
    calls: int
    procs: int
    seconds: float
    setups: int
    profile_calls: int


FULL: Final = Plan(CALLS, LOAD_PROCS, SECONDS, SETUPS, PROFILE_CALLS)
QUICK: Final = Plan(QUICK_CALLS, 1, QUICK_SECONDS, QUICK_SETUPS, QUICK_CALLS)


# --- load processes ---------------------------------------------------------------------------


class Load:
    """One ``benchmarks.callload`` process over its spec file."""

    def __init__(self, spec: Path, log: IO[str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", LOAD, str(spec)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env={**os.environ, **NODE_ENV},
        )

    def ready(self) -> None:
        _json_line(self.proc.stdout, "load process")

    def send(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def answer(self) -> dict[str, Any]:
        doc = _json_line(self.proc.stdout, "load process")
        return doc

    def close(self) -> None:
        if self.proc.poll() is None and self.proc.stdin is not None:
            try:
                self.send("quit")
                self.proc.wait(timeout=QUIT_TIMEOUT)
            except (OSError, subprocess.TimeoutExpired):
                pass
        _kill(self.proc)
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()


def _account(node: Node, invite: str) -> dict[str, str]:
    """The account of one ``name=code`` invite on ``node``."""
    name, code = invite.split("=", 1)
    return {"address": f"{name}@{node.domain}", "url": node.url, "code": code}


def _spec(path: Path, pairs: list[tuple[dict[str, str], dict[str, str]]]) -> Path:
    import json

    doc = {"suite": SUITE, "pairs": [{"caller": a, "callee": b} for a, b in pairs]}
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def _pairs(
    caller_node: Node, callee_node: Node, tag: str, count: int
) -> list[tuple[dict[str, str], dict[str, str]]]:
    """``count`` (caller, callee) accounts; invites written while the nodes are stopped."""
    callers = trio.run(_invites, caller_node.data, [f"{tag}a{i}" for i in range(count)])
    callees = trio.run(_invites, callee_node.data, [f"{tag}b{i}" for i in range(count)])
    return [
        (_account(caller_node, a), _account(callee_node, b))
        for a, b in zip(callers, callees, strict=True)
    ]


def _ask(loads: list[Load], commands: list[str]) -> list[dict[str, Any]]:
    """Send each load process its command at once; their answers (an error raises)."""
    for load, command in zip(loads, commands, strict=True):
        load.send(command)
    return _answers(loads)


def _bound(loads: list[Load], commands: list[str]) -> None:
    """Send each load process its media command; return once all its calls are bound."""
    for load, command in zip(loads, commands, strict=True):
        load.send(command)
    for answer in _answers(loads):
        if "bound" not in answer:
            raise RuntimeError(f"load process: {answer}")


def _answers(loads: list[Load]) -> list[dict[str, Any]]:
    answers = [load.answer() for load in loads]
    for answer in answers:
        if "error" in answer:
            raise RuntimeError(f"load process: {answer['error']}")
    return answers


# --- measurements -----------------------------------------------------------------------------


def _metric(text: str, name: str) -> float:
    """The sum of the samples of ``name`` (any labels) in a ``/metrics`` text."""
    pattern = rf"^{name}(?:{{[^}}]*}})? (\S+)$"
    return sum(float(value) for value in re.findall(pattern, text, re.MULTILINE))


def _forwarded(node: Node) -> float:
    return _counters(node)[0]


def _counters(node: Node) -> tuple[float, float]:
    """(datagrams forwarded, datagrams dropped or not sent) by ``node`` so far."""
    text = httpx.get(node.url + "/metrics", timeout=10).text
    return _metric(text, FORWARDED), sum(_metric(text, name) for name in NOT_FORWARDED)


def _socket_drops(pids: list[int]) -> int:
    """Datagrams the kernel dropped on the UDP sockets of processes ``pids`` so far (the
    ``drops`` column of ``/proc/net/udp`` for the sockets among their open files)."""
    inodes: set[str] = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    target = os.readlink(fd)
                    if target.startswith("socket:["):
                        inodes.add(target[8:-1])
    rows = (line.split() for line in Path("/proc/net/udp").read_text().splitlines()[1:])
    return sum(int(row[12]) for row in rows if len(row) > 12 and row[9] in inodes)


def _udp_buffer_errors() -> int:
    """UDP datagrams the kernel dropped for a full socket buffer, machine-wide so far
    (``/proc/net/snmp``: RcvbufErrors + SndbufErrors)."""
    lines = [line.split() for line in Path("/proc/net/snmp").read_text().splitlines()]
    names, values = (line for line in lines if line[0] == "Udp:")
    table = dict(zip(names[1:], values[1:], strict=True))
    return int(table.get("RcvbufErrors", 0)) + int(table.get("SndbufErrors", 0))


def _merge(answers: list[dict[str, Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = {"latencies": [], "cpu_s": 0.0}
    for answer in answers:
        for key, value in answer.items():
            if key == "latencies":
                merged[key] += value
            else:
                merged[key] = merged.get(key, 0) + value
    return merged


def _round(
    loads: list[Load], shares: list[int], plan: Plan, nodes: list[Node], offsets: list[int]
) -> Round:
    """The baseline (no node), then the same calls through ``nodes`` (each load process's
    pairs from its ``offsets`` entry on)."""
    video = "1"
    args = [f"{plan.seconds} {video} {n} {at}" for n, at in zip(shares, offsets, strict=True)]
    _bound(loads, [f"direct {a}" for a in args])
    base = _merge(_answers(loads))
    _bound(loads, [f"media {a}" for a in args])
    before = (time.monotonic(), _machine_cpu_s(), [_cpu_s(n.pid) for n in nodes])
    counted, udp = [_counters(n) for n in nodes], _udp_buffer_errors()
    node_pids = [n.pid for n in nodes]
    drops = _socket_drops(node_pids)  # the load's sockets close with their calls: not here
    relayed = _merge(_answers(loads))
    after = [_counters(n) for n in nodes]
    forwarded = [e[0] - s[0] for e, s in zip(after, counted, strict=True)]
    relayed["node_drops"] = sum(e[1] - s[1] for e, s in zip(after, counted, strict=True))
    relayed["udp_buffer_errors"] = _udp_buffer_errors() - udp
    relayed["node_socket_drops"] = _socket_drops(node_pids) - drops
    node_cpu = sum(_cpu_s(n.pid) - c for n, c in zip(nodes, before[2], strict=True))
    for doc in (base, relayed):
        if doc["decrypt_failures"] or doc["digest_mismatches"]:
            raise RuntimeError(f"frames failed to decrypt or match: {doc}")
    return Round(
        relayed,
        base,
        time.monotonic() - before[0],
        node_cpu,
        _machine_cpu_s() - before[1],
        sum(forwarded),
        os.getloadavg()[0],
    )


# --- the profile ------------------------------------------------------------------------------


def _stop(node: Node) -> None:
    """Stop ``node`` (SIGTERM) and close our end of its stdout."""
    node.stop()
    if node.proc is not None and node.proc.stdout is not None:
        node.proc.stdout.close()


def _start_profiled(node: Node, out: Path) -> None:
    """Start ``node`` under ``benchmarks.profiled`` (a profile between SIGUSR1 and SIGUSR2,
    written to ``out``)."""
    node.proc = subprocess.Popen(
        [sys.executable, "-m", PROFILED, str(out), "sealrelay", "node", "serve",
         "--domain", node.domain, "--listen", f"127.0.0.1:{node.port}", "--data", str(node.data),
         "--config", str(node.config)],
        stdout=subprocess.PIPE, stderr=node.log, text=True, env={**os.environ, **NODE_ENV},
    )  # fmt: skip
    _final_line(node.proc.stdout, f"node {node.domain}", "url")


def _wait_for(path: Path) -> None:
    deadline = time.monotonic() + PROFILE_WRITE_TIMEOUT
    while not path.exists():
        if time.monotonic() > deadline:
            raise RuntimeError("the profiled node wrote no profile")
        time.sleep(0.05)


# --- the run ----------------------------------------------------------------------------------


def run(quick: bool) -> list[Result]:
    plan = QUICK if quick else FULL
    with tempfile.TemporaryDirectory(prefix="sealrelay-bench-calls-") as tmp:
        log_path = Path(tmp) / "nodes.log"
        try:
            with log_path.open("w", encoding="utf-8") as log:
                results = _run(Path(tmp), plan, log)
        except BaseException:
            tail = log_path.read_text(encoding="utf-8").splitlines()[-LOG_TAIL:]
            print("\n".join(["nodes' and load processes' stderr, last lines:", *tail]),
                  file=sys.stderr)  # fmt: skip
            raise
    return [*results, *replica_rows(quick)]


def _run(tmp: Path, plan: Plan, log: IO[str]) -> list[Result]:
    from node.devfed import prepare

    setups = prepare(tmp / "fed", DOMAINS, _free_ports(len(DOMAINS)), suite=SUITE, extra=EXTRA)
    a, b = (Node(s.domain, s.port, s.data_dir, s.config, log) for s in setups)
    local = _pairs(a, a, "c", plan.calls)
    cross = _pairs(a, b, "x", 1)
    remote = trio.run(_invites, b.data, [f"y{i}" for i in range(plan.calls)])
    cross_many = [
        (caller, _account(b, code)) for (caller, _), code in zip(local, remote, strict=True)
    ]
    shares = [plan.calls // plan.procs + (i < plan.calls % plan.procs) for i in range(plan.procs)]
    specs: list[Path] = []
    for share in shares:
        n = sum(shares[: len(specs)])
        mine = local[n : n + share] + cross_many[n : n + share]
        specs.append(_spec(tmp / f"load{len(specs)}.json", mine))
    specs.append(_spec(tmp / "cross.json", cross))
    loads: list[Load] = []
    try:
        a.start()
        b.start()
        loads = [Load(spec, log) for spec in specs]
        for load in loads:
            load.ready()
        results = _measure(loads[:-1], loads[-1], shares, plan, a, b)
        for load in loads:
            load.close()
        results += _profile(tmp, plan, a, log)
        return results
    finally:
        for load in loads:
            load.close()
        _stop(a)
        _stop(b)


def _measure(
    loads: list[Load], xload: Load, shares: list[int], plan: Plan, a: Node, b: Node
) -> list[Result]:
    results = []
    setups = plan.setups + 1  # the first is the warm-up
    results.append(
        setup_result("setup, same domain", _ask(loads[:1], [f"setup {setups}"])[0]["setups"])
    )
    why = ""
    try:
        runs = _ask([xload], [f"setup {setups}"])[0]["setups"]
        results.append(setup_result("setup, across domains", runs))
        cross_ok = True
    except CallsFailed as exc:  # no node-to-node media link: the calls end call.failed
        why = f"{NOT_MEASURED}: calls ended {'/'.join(exc.reasons)}"
        results.append(not_measured("setup, across domains", why))
        cross_ok = False
    one = _round(loads[:1], [1], plan, [a], [0])
    results.append(hop_result("hop latency, 1 call", one, 1))
    if cross_ok:
        x = _round([xload], [1], plan, [a, b], [0])
        results.append(hop_result("hop latency across domains, 1 call", x, 2))
    else:
        results.append(not_measured("hop latency across domains, 1 call", why))
    zeros = [0] * len(shares)
    many = _round(loads, shares, plan, [a], zeros)
    results.append(hop_result(f"hop latency, {plan.calls} video calls", many, 1))
    results.append(forwarding_result(f"forwarding, {plan.calls} video calls", many))
    results.append(_flood(loads, plan, a))
    across = f"across domains, {plan.calls} video calls"
    if cross_ok:  # the second half of each load process's pairs: callees on B
        manyx = _round(loads, shares, plan, [a, b], shares)
        results.append(hop_result(f"hop latency {across}", manyx, 2))
        results.append(forwarding_result(f"forwarding {across} (both nodes)", manyx))
    else:
        results.append(not_measured(f"hop latency {across}", why))
        results.append(not_measured(f"forwarding {across} (both nodes)", why))
    return results


def _flood(loads: list[Load], plan: Plan, a: Node) -> Result:
    """``FLOOD_CALLS`` calls per load process flood the node (``callload`` ``flood``)."""
    count = min(FLOOD_CALLS, plan.calls // len(loads) or 1)
    _bound(loads, [f"flood {plan.seconds} {count}" for _ in loads])
    wall, cpu, forwarded = time.monotonic(), _cpu_s(a.pid), _forwarded(a)
    done = _merge(_answers(loads))
    wall, cpu = time.monotonic() - wall, _cpu_s(a.pid) - cpu
    forwarded = _forwarded(a) - forwarded
    per_cpu = forwarded / max(cpu, 1e-9)
    return Result(
        group="calls",
        name=f"forwarding, flood of {count * len(loads)} calls",
        ops_per_s=per_cpu,
        mean_us=1e6 / per_cpu if per_cpu else 0.0,
        p50_us=None,
        p99_us=None,
        calls=int(forwarded),
        samples=1,
        batch=int(forwarded),
        extra={
            "node_cpu_s": round(cpu, 3),
            "forwarded_per_s": round(forwarded / wall, 1),
            "loss_pct": round(100 * (done["sent"] - done["received"]) / max(done["sent"], 1), 3),
            "cpu_node": round(cpu / wall, 3),
            "cpu_load": round(done["cpu_s"] / wall, 3),
        },
    )


def _profile(tmp: Path, plan: Plan, a: Node, log: IO[str]) -> list[Result]:
    """Node A again, under cProfile, with fresh accounts making ``plan.profile_calls``
    video calls; its top functions."""
    _stop(a)
    pairs = _pairs(a, a, "p", plan.profile_calls)
    out = tmp / "node.prof"
    _start_profiled(a, out)
    load = Load(_spec(tmp / "profile.json", pairs), log)
    try:
        load.ready()
        before = _forwarded(a)
        _bound([load], [f"media {plan.seconds} 1 {plan.profile_calls}"])
        os.kill(a.pid, signal.SIGUSR1)
        _answers([load])
        os.kill(a.pid, signal.SIGUSR2)
        forwarded = _forwarded(a) - before
        _wait_for(out)
    finally:
        load.close()
        _stop(a)
    return profile_results(out, forwarded)
