"""The rows of ``benchmarks.calls`` (see its docstring for what each case measures): the
arithmetic from the load processes' answers and the node's counters to ``Result`` rows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from benchmarks.harness import Result, nearest_rank

GROUP: Final = "calls"


class CallsFailed(RuntimeError):
    """A call of a setup round did not complete; ``reasons``: how the calls ended."""

    def __init__(self, message: str, reasons: list[str]) -> None:
        super().__init__(message)
        self.reasons = reasons


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


def ms(samples_us: list[float], pct: float) -> float:
    return nearest_rank(sorted(samples_us), pct) / 1000


def setup_result(name: str, runs: list[dict[str, Any]]) -> Result:
    measured = runs[1:] or runs  # the first call is the warm-up (first contact, documents)
    if not all(r["ok"] and r["caller_ms"] is not None for r in measured):
        reasons = sorted({reason for r in runs for reason in r["reasons"]})
        raise CallsFailed(f"{name}: a call did not complete ({', '.join(reasons)})", reasons)
    caller = sorted(r["caller_ms"] * 1000 for r in measured)
    callee = sorted(r["callee_ms"] * 1000 for r in measured if r["callee_ms"] is not None)
    mean = sum(caller) / len(caller)
    return Result(
        group=GROUP,
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


def not_measured(name: str, why: str) -> Result:
    return Result(GROUP, name, 0.0, 0.0, None, None, 0, 0, 0, extra={"status": why})


def hop_result(name: str, r: Round, hops: int) -> Result:
    path, base = r.relayed["latencies"], r.base["latencies"]
    per_hop = {pct: (ms(path, pct) - ms(base, pct)) / hops * 1000 for pct in (50, 99)}
    sent = r.relayed["sent"]
    frames = r.relayed["frames_sent"] or 1
    base_sent = max(r.base["sent"], 1)
    return Result(
        group=GROUP,
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
            "path_p50_ms": round(ms(path, 50), 3),
            "path_p99_ms": round(ms(path, 99), 3),
            "base_p50_ms": round(ms(base, 50), 3),
            "base_p99_ms": round(ms(base, 99), 3),
            "loss_pct": round(100 * (sent - r.relayed["received"]) / max(sent, 1), 3),
            "base_loss_pct": round(100 * (r.base["sent"] - r.base["received"]) / base_sent, 3),
            "frames_lost_pct": round(100 * r.relayed["frames_lost"] / frames, 3),
            "frames_late": r.relayed["frames_late"],
            "node_drops": r.relayed.get("node_drops", 0),
            "udp_buffer_errors": r.relayed.get("udp_buffer_errors", 0),
            "node_socket_drops": r.relayed.get("node_socket_drops", 0),
            "decrypt_failures": r.relayed["decrypt_failures"],
            "loadavg_1m": round(r.loadavg, 2),
        },
    )


def forwarding_result(name: str, r: Round) -> Result:
    per_cpu = r.forwarded / max(r.node_cpu_s, 1e-9)
    return Result(
        group=GROUP,
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
