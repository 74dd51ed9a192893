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
- ``forwarding, N calls``: ``ops/s`` is datagrams forwarded per CPU-second of the node
  process during the N-call round, from when every call is bound (QUIC handshakes and leg
  requests are not counted) to the end: ``sealrelay_call_forwarded_datagrams_total`` (``/metrics``)
  delta over the node's user + system CPU delta (``/proc/PID/stat``). Target: at least
  30,000. ``mean µs`` is the node's CPU per forwarded datagram.
- ``profile ...``: afterwards the node of the first domain is restarted under ``cProfile``
  (``benchmarks.profiled``: CPU time, main thread), fresh accounts make ``PROFILE_CALLS``
  video calls through it for ``SECONDS``, profiled from when every call is bound to just
  after they end, and the functions with the most own time are listed: ``mean µs`` is
  that function's own CPU time per forwarded datagram, ``share_pct`` its share of all
  profiled time, ``cum_pct`` its time with what it calls. cProfile slows the node down
  (each Python call costs more), so the shares say where the time goes, not how much.

The nodes and the load processes share this machine's cores; ``cpu_load`` is the load
processes' CPU per wall second in the round, ``cpu_machine`` the whole machine's.
"""

from __future__ import annotations

import os
import pstats
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

from benchmarks.federation import Node, _final_line, _free_ports, _kill, _machine_cpu_s
from benchmarks.harness import Result, nearest_rank
from benchmarks.node import NODE_ENV, _cpu_s, _invites, _json_line

CALLS: Final = 20
LOAD_PROCS: Final = 2
SECONDS: Final = 10.0
SETUPS: Final = 5
PROFILE_CALLS: Final = 10
QUICK_CALLS: Final = 2
QUICK_SECONDS: Final = 1.0
QUICK_SETUPS: Final = 1
DOMAINS: Final = ("alpha.localhost", "bravo.localhost")
EXTRA: Final = 'udp_listen = "127.0.0.1:0"'
SUITE: Final = "cnsa2"
LOAD: Final = "benchmarks.callload"
FORWARDED: Final = "sealrelay_call_forwarded_datagrams_total"
PROFILE_TOP: Final = 12
NOT_MEASURED: Final = "not measured"
LOG_TAIL: Final = 40
PROFILED: Final = "benchmarks.profiled"
PROFILE_WRITE_TIMEOUT: Final = 30.0


class CallsFailed(RuntimeError):
    """A call of a setup round did not complete; ``reasons``: how the calls ended."""

    def __init__(self, message: str, reasons: list[str]) -> None:
        super().__init__(message)
        self.reasons = reasons


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
                self.proc.wait(timeout=30)
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


def _forwarded(node: Node) -> float:
    text = httpx.get(node.url + "/metrics", timeout=10).text
    match = re.search(rf"^{FORWARDED} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def _ms(samples_us: list[float], pct: float) -> float:
    return nearest_rank(sorted(samples_us), pct) / 1000


def _setup_result(name: str, runs: list[dict[str, Any]]) -> Result:
    measured = runs[1:] or runs  # the first call is the warm-up (first contact, documents)
    if not all(r["ok"] and r["caller_ms"] is not None for r in measured):
        reasons = sorted({reason for r in runs for reason in r["reasons"]})
        raise CallsFailed(f"{name}: a call did not complete ({', '.join(reasons)})", reasons)
    caller = sorted(r["caller_ms"] * 1000 for r in measured)
    callee = sorted(r["callee_ms"] * 1000 for r in measured if r["callee_ms"] is not None)
    mean = sum(caller) / len(caller)
    return Result(
        group="calls",
        name=name,
        ops_per_s=1e6 / mean,
        mean_us=mean,
        p50_us=nearest_rank(caller, 50),
        p99_us=nearest_rank(caller, 99),
        calls=len(caller),
        samples=len(caller),
        batch=1,
        extra={
            "callee_ms_p50": round(nearest_rank(callee, 50) / 1000, 1),
            "warmup_ms": runs[0]["caller_ms"] or 0.0,
            "decrypt_failures": sum(r["decrypt_failures"] for r in runs),
        },
    )


def _not_measured(name: str, why: str) -> Result:
    return Result("calls", name, 0.0, 0.0, None, None, 0, 0, 0, extra={"status": why})


def _merge(answers: list[dict[str, Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = {"latencies": [], "cpu_s": 0.0}
    for answer in answers:
        for key, value in answer.items():
            if key == "latencies":
                merged[key] += value
            else:
                merged[key] = merged.get(key, 0) + value
    return merged


@dataclass(frozen=True)
class Round:
    """One relayed media round and its baseline."""

    relayed: dict[str, Any]
    base: dict[str, Any]
    wall_s: float
    node_cpu_s: float
    machine_cpu_s: float
    forwarded: float
    loadavg: float
    """The machine's 1-minute load average at the end of the round."""


def _round(loads: list[Load], shares: list[int], plan: Plan, nodes: list[Node]) -> Round:
    """The baseline (no node), then the same calls through ``nodes``."""
    video = "1"
    _bound(loads, [f"direct {plan.seconds} {video} {n}" for n in shares])
    base = _merge(_answers(loads))
    _bound(loads, [f"media {plan.seconds} {video} {n}" for n in shares])
    before = (time.monotonic(), _machine_cpu_s(), [_cpu_s(n.pid) for n in nodes])
    forwarded = [_forwarded(n) for n in nodes]
    relayed = _merge(_answers(loads))
    forwarded = [_forwarded(n) - f for n, f in zip(nodes, forwarded, strict=True)]
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


def _hop_result(name: str, r: Round, hops: int) -> Result:
    path, base = r.relayed["latencies"], r.base["latencies"]
    per_hop = {pct: (_ms(path, pct) - _ms(base, pct)) / hops * 1000 for pct in (50, 99)}
    sent = r.relayed["sent"]
    frames = r.relayed["frames_sent"] or 1
    return Result(
        group="calls",
        name=name,
        ops_per_s=len(path) / max(r.wall_s, 1e-9),
        mean_us=(sum(path) / len(path) - sum(base) / len(base)) / hops,
        p50_us=per_hop[50],
        p99_us=per_hop[99],
        calls=len(path),
        samples=len(path),
        batch=1,
        extra={
            "hops": hops,
            "path_p50_ms": round(_ms(path, 50), 3),
            "path_p99_ms": round(_ms(path, 99), 3),
            "base_p50_ms": round(_ms(base, 50), 3),
            "base_p99_ms": round(_ms(base, 99), 3),
            "loss_pct": round(100 * (sent - r.relayed["received"]) / max(sent, 1), 3),
            "frames_lost_pct": round(100 * r.relayed["frames_lost"] / frames, 3),
            "frames_late": r.relayed["frames_late"],
            "decrypt_failures": r.relayed["decrypt_failures"],
            "loadavg_1m": round(r.loadavg, 2),
        },
    )


def _forwarding_result(name: str, r: Round) -> Result:
    per_cpu = r.forwarded / max(r.node_cpu_s, 1e-9)
    return Result(
        group="calls",
        name=name,
        ops_per_s=per_cpu,
        mean_us=1e6 / per_cpu if per_cpu else 0.0,
        p50_us=None,
        p99_us=None,
        calls=int(r.forwarded),
        samples=1,
        batch=int(r.forwarded),
        extra={
            "node_cpu_s": round(r.node_cpu_s, 3),
            "forwarded_per_s": round(r.forwarded / r.wall_s, 1),
            "cpu_node": round(r.node_cpu_s / r.wall_s, 3),
            "cpu_load": round(r.relayed["cpu_s"] / r.wall_s, 3),
            "cpu_machine": round(r.machine_cpu_s / r.wall_s, 3),
            "loadavg_1m": round(r.loadavg, 2),
        },
    )


# --- the profile ------------------------------------------------------------------------------


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


def _profile_results(path: Path, forwarded: float) -> list[Result]:
    """The functions with the most own time in the node's profile."""
    stats = pstats.Stats(str(path))
    table: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    total = sum(entry[2] for entry in table.values()) or 1.0
    rows = sorted(table.items(), key=lambda item: item[1][2], reverse=True)[:PROFILE_TOP]
    results = []
    for (filename, line, function), (_, calls, own, cumulative, _) in rows:
        where = _short(filename)
        results.append(
            Result(
                group="profile",
                name=f"{where}:{line}({function})" if line else f"{where}({function})",
                ops_per_s=0.0,
                mean_us=own / max(forwarded, 1) * 1e6,
                p50_us=None,
                p99_us=None,
                calls=calls,
                samples=1,
                batch=calls,
                extra={
                    "share_pct": round(100 * own / total, 1),
                    "cum_pct": round(100 * cumulative / total, 1),
                },
            )
        )
    return results


def _short(filename: str) -> str:
    """A profile entry's file, from the package or site-packages folder on."""
    parts = Path(filename).parts
    for marker in ("site-packages", "lib"):
        if marker in parts:
            return "/".join(parts[parts.index(marker) + 1 :])
    for root in ("node", "transport", "wire", "client", "trio", "qh3"):
        if root in parts:
            return "/".join(parts[len(parts) - 1 - parts[::-1].index(root) :])
    return filename


# --- the run ----------------------------------------------------------------------------------


def run(quick: bool) -> list[Result]:
    plan = QUICK if quick else FULL
    with tempfile.TemporaryDirectory(prefix="sealrelay-bench-calls-") as tmp:
        log_path = Path(tmp) / "nodes.log"
        try:
            with log_path.open("w", encoding="utf-8") as log:
                return _run(Path(tmp), plan, log)
        except BaseException:
            tail = log_path.read_text(encoding="utf-8").splitlines()[-LOG_TAIL:]
            print("\n".join(["nodes' and load processes' stderr, last lines:", *tail]),
                  file=sys.stderr)  # fmt: skip
            raise


def _run(tmp: Path, plan: Plan, log: IO[str]) -> list[Result]:
    from node.devfed import prepare

    setups = prepare(tmp / "fed", DOMAINS, _free_ports(len(DOMAINS)), suite=SUITE, extra=EXTRA)
    a, b = (Node(s.domain, s.port, s.data_dir, s.config, log) for s in setups)
    local = _pairs(a, a, "c", plan.calls)
    cross = _pairs(a, b, "x", 1)
    shares = [plan.calls // plan.procs + (i < plan.calls % plan.procs) for i in range(plan.procs)]
    loads: list[Load] = []
    try:
        a.start()
        b.start()
        starts, n = [], 0
        for share in shares:
            starts.append(_spec(tmp / f"load{len(starts)}.json", local[n : n + share]))
            n += share
        loads = [Load(spec, log) for spec in starts]
        xload = Load(_spec(tmp / "cross.json", cross), log)
        loads_all = [*loads, xload]
        for load in loads_all:
            load.ready()
        results = _measure(loads, xload, shares, plan, a, b)
        for load in loads_all:
            load.close()
        loads = []
        results += _profile(tmp, plan, a, log)
        return results
    finally:
        for load in loads:
            load.close()
        a.stop()
        b.stop()


def _measure(
    loads: list[Load], xload: Load, shares: list[int], plan: Plan, a: Node, b: Node
) -> list[Result]:
    results = []
    setups = plan.setups + 1  # the first is the warm-up
    results.append(
        _setup_result("setup, same domain", _ask(loads[:1], [f"setup {setups}"])[0]["setups"])
    )
    why = ""
    try:
        runs = _ask([xload], [f"setup {setups}"])[0]["setups"]
        results.append(_setup_result("setup, across domains", runs))
        cross_ok = True
    except CallsFailed as exc:  # no node-to-node media link: the calls end call.failed
        why = f"{NOT_MEASURED}: calls ended {'/'.join(exc.reasons)}"
        results.append(_not_measured("setup, across domains", why))
        cross_ok = False
    one = _round(loads[:1], [1], plan, [a])
    results.append(_hop_result("hop latency, 1 call", one, 1))
    if cross_ok:
        x = _round([xload], [1], plan, [a, b])
        results.append(_hop_result("hop latency across domains, 1 call", x, 2))
    else:
        results.append(_not_measured("hop latency across domains, 1 call", why))
    many = _round(loads, shares, plan, [a])
    results.append(_hop_result(f"hop latency, {plan.calls} video calls", many, 1))
    results.append(_forwarding_result(f"forwarding, {plan.calls} video calls", many))
    return results


def _profile(tmp: Path, plan: Plan, a: Node, log: IO[str]) -> list[Result]:
    """Node A again, under cProfile, with fresh accounts making ``plan.profile_calls``
    video calls; its top functions."""
    a.stop()
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
        a.stop()
    return _profile_results(out, forwarded)
