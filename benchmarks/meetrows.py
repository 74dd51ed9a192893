"""The rows of ``benchmarks.meetings`` (see its docstring for what each case measures): the
arithmetic from the load processes' answers (``benchmarks.meetload``) and the node's
counters to ``Result`` rows."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from benchmarks.harness import Result

GROUP: Final = "meetings"
BUCKET_US: Final = 10
"""The load processes' latency histogram resolution (``benchmarks.meetload.BUCKET_US``)."""


@dataclass(frozen=True)
class Meeting:
    """One measured window of the meeting, merged over the load processes."""

    participants: int
    speakers: int
    seconds: float
    sent: int
    """Datagrams the speakers sent in the window."""
    received: int
    """Of those, copies the participants received."""
    histogram: Mapping[int, int]
    base_sent: int
    base_received: int
    base_histogram: Mapping[int, int]
    node_cpu_s: float
    forwarded: float
    """Copies the node forwarded in the window (``/metrics``)."""
    load_cpu_s: float
    machine_cpu_s: float
    loadavg: float
    drops: Mapping[str, float]
    probe_histogram: Mapping[int, int]
    """Latencies at the probe participant alone (its process receives nothing else)."""
    probe_base_histogram: Mapping[int, int]


def merge(answers: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The load processes' ``measure`` answers, summed (histograms bucket by bucket)."""
    merged: dict[str, Any] = {
        "sent": 0, "received": 0, "base_sent": 0, "base_received": 0, "cpu_s": 0.0,
        "histogram": Counter(), "base_histogram": Counter(),
    }  # fmt: skip
    for answer in answers:
        merged["sent"] += sum(answer["sent"].values())
        for key in ("received", "base_sent", "base_received", "cpu_s"):
            merged[key] += answer[key]
        for key in ("histogram", "base_histogram"):
            merged[key].update({int(k): v for k, v in answer[key].items()})
    return merged


def percentile_ms(histogram: Mapping[int, int], pct: float, bucket_us: int = BUCKET_US) -> float:
    """The nearest-rank ``pct`` percentile of a histogram of ``bucket_us`` buckets
    (:data:`BUCKET_US` unless said), in ms (the bucket's upper edge; 0.0 when empty)."""
    total = sum(histogram.values())
    if not total:
        return 0.0
    rank = max(1, -(-pct * total // 100))
    seen = 0
    for bucket in sorted(histogram):
        seen += histogram[bucket]
        if seen >= rank:
            return (bucket + 1) * bucket_us / 1000
    raise AssertionError("unreachable")


def expected_copies(sent: int, participants: int) -> int:
    """Copies due for ``sent`` speaker datagrams: every participant but the speaker gets
    every speaker (there are at most ``node.sfu.AUDIO_STREAMS`` of them)."""
    return sent * (participants - 1)


def loss_pct(m: Meeting) -> float:
    due = expected_copies(m.sent, m.participants)
    return 100 * (due - m.received) / max(due, 1)


def meeting_result(m: Meeting) -> Result:
    """The 200-person meeting row: ``p50``/``p99`` µs are the relay-added latency, the
    path percentile less the baseline probe's; ``ops/s`` the copies received per second."""
    path = {pct: percentile_ms(m.histogram, pct) for pct in (50, 99)}
    base = {pct: percentile_ms(m.base_histogram, pct) for pct in (50, 99)}
    return Result(
        group=GROUP,
        name=f"meeting, {m.participants} participants, {m.speakers} speakers",
        ops_per_s=m.received / max(m.seconds, 1e-9),
        mean_us=_mean_us(m.histogram) - _mean_us(m.base_histogram),
        p50_us=(path[50] - base[50]) * 1000,
        p99_us=(path[99] - base[99]) * 1000,
        calls=m.received,
        samples=m.received,
        batch=1,
        extra={
            "datagrams_out_per_s": round(m.forwarded / max(m.seconds, 1e-9), 1),
            "loss_pct": round(loss_pct(m), 3),
            "expected": expected_copies(m.sent, m.participants),
            "path_p50_ms": path[50],
            "path_p99_ms": path[99],
            "base_p50_ms": base[50],
            "base_p99_ms": base[99],
            "base_loss_pct": round(100 * (m.base_sent - m.base_received) / max(m.base_sent, 1), 3),
            "cpu_node": round(m.node_cpu_s / max(m.seconds, 1e-9), 3),
            "cpu_load": round(m.load_cpu_s / max(m.seconds, 1e-9), 3),
            "cpu_machine": round(m.machine_cpu_s / max(m.seconds, 1e-9), 3),
            "loadavg_1m": round(m.loadavg, 2),
            **{k: int(v) for k, v in m.drops.items()},
        },
    )


def probe_result(m: Meeting) -> Result:
    """Relay-added latency at the probe participant: a receiver in a process of its own
    (four speakers' streams and its baseline, no backlog of 50 receivers); path percentile
    less its baseline probe's."""
    path = {pct: percentile_ms(m.probe_histogram, pct) for pct in (50, 99)}
    base = {pct: percentile_ms(m.probe_base_histogram, pct) for pct in (50, 99)}
    received = sum(m.probe_histogram.values())
    return Result(
        group=GROUP,
        name="relay-added latency, probe participant",
        ops_per_s=received / max(m.seconds, 1e-9),
        mean_us=_mean_us(m.probe_histogram) - _mean_us(m.probe_base_histogram),
        p50_us=(path[50] - base[50]) * 1000,
        p99_us=(path[99] - base[99]) * 1000,
        calls=received,
        samples=received,
        batch=1,
        extra={
            "path_p50_ms": path[50],
            "path_p99_ms": path[99],
            "base_p50_ms": base[50],
            "base_p99_ms": base[99],
        },
    )


def forwarding_result(m: Meeting) -> Result:
    """Copies forwarded per CPU-second of the node process in the window."""
    per_cpu = m.forwarded / max(m.node_cpu_s, 1e-9)
    return Result(
        group=GROUP,
        name=f"forwarding, node process, {m.participants} participants",
        ops_per_s=per_cpu,
        mean_us=1e6 / per_cpu if per_cpu else 0.0,
        p50_us=None,
        p99_us=None,
        calls=int(m.forwarded),
        samples=1,
        batch=int(m.forwarded),
        extra={
            "node_cpu_s": round(m.node_cpu_s, 3),
            "forwarded_per_s": round(m.forwarded / max(m.seconds, 1e-9), 1),
            "cpu_node": round(m.node_cpu_s / max(m.seconds, 1e-9), 3),
            "loadavg_1m": round(m.loadavg, 2),
        },
    )


def join_result(participants: int, answers: Iterable[Mapping[str, Any]]) -> Result:
    """From the first ``MeetingJoin`` of any load process to the last participant hearing
    every speaker (``mean µs``; ``last_bound_ms``: to the last ``MediaBound``)."""
    docs = list(answers)
    first = min(d["first_join"] for d in docs)
    bound = max(d["last_bound"] for d in docs) - first
    hearing = max(d["last_hearing"] for d in docs) - first
    return Result(
        group=GROUP,
        name=f"join, {participants} participants",
        ops_per_s=participants / max(hearing, 1e-9),
        mean_us=hearing * 1e6,
        p50_us=None,
        p99_us=None,
        calls=participants,
        samples=1,
        batch=participants,
        extra={"seconds": round(hearing, 3), "last_bound_s": round(bound, 3)},
    )


def not_measured(name: str, why: str) -> Result:
    return Result(GROUP, name, 0.0, 0.0, None, None, 0, 0, 0, extra={"status": why})


def _mean_us(histogram: Mapping[int, int]) -> float:
    """The mean of a histogram at its buckets' midpoints, µs."""
    total = sum(histogram.values())
    if not total:
        return 0.0
    return sum((b + 0.5) * BUCKET_US * n for b, n in histogram.items()) / total
