"""The rows of ``benchmarks.meetings``' *trace* window: where the relay-added latency of a
meeting datagram goes (issue 18, "relay-added p99 under 50 ms").

One window of the same meeting with the node's timing hooks on (``benchmarks.nodetrace``)
and the load processes measuring as in the meeting window. Every figure is a delay from the
send time in the payload (``CLOCK_MONOTONIC``, one clock for the machine), so the rows add
up along the path:

``trace: send -> node forward``
    the sender's QUIC stack, the loopback, the node's socket queue, its QUIC receive and its
    scheduling, up to ``MeetingService.forward`` (voice datagrams);
``trace: send -> copy out of node``
    up to each copy's flush to the node's socket (the node's fan-out included);
``trace: send -> receivers``, ``trace: send -> probe``
    up to ``receive_datagram_batch`` in the load processes (all receivers; the probe
    participant alone in its process); ``base`` the same load processes' loopback baseline.

``reached_node_pct``: of the voice datagrams sent in the window, the share that reached
the node's ``forward`` by the end of the window and a 1 s drain (the others were later
still: the percentiles of that row leave them out, so a low share means they are low).
The node's wrappers cost it some CPU in this window (a stamp read per copy), so a node
short of CPU is a little later here than in the meeting window: compare the trace rows
with each other, not with the meeting row.
``note`` sums it up (:func:`verdict`): the machine, congestion control, or the node.
The difference between the copy row and the receivers' row is the receiving side: the
kernel's queue of a load process and its QUIC and trio, which the node does not control.
``node_waited_pct`` / ``load_waited_pct``: the share of the window the node's (the load
processes', summed) main thread was runnable but had no core (``/proc/PID/schedstat``),
against ``*_ran_pct``; ``cpu_pressure_pct``: the machine's (``/proc/pressure/cpu``).
``cwnd_limited_pct``: copies that found the destination's congestion window full;
``sender_cwnd_full_pct``: the same for the speakers' connections to the node, sampled in
their process every 0.1 s (a full window holds the speaker's datagrams in its process,
after their send time was stamped); ``*_rtt_*``: those connections' smoothed RTT.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final

from benchmarks.harness import Result
from benchmarks.meetrows import GROUP, percentile_ms

TRACE_BUCKET_US: Final = 100
"""``benchmarks.nodetrace.BUCKET_US``."""


def schedstat(pids: Iterable[int]) -> tuple[int, int]:
    """Nanoseconds the main threads of ``pids`` have run on a CPU and have waited on a run
    queue (runnable, not running: the machine had no core for them), ``/proc/PID/schedstat``."""
    ran = waited = 0
    for pid in pids:
        with contextlib.suppress(OSError, ValueError):
            fields = Path(f"/proc/{pid}/schedstat").read_text(encoding="ascii").split()
            ran, waited = ran + int(fields[0]), waited + int(fields[1])
    return ran, waited


def cpu_pressure() -> float:
    """The machine's CPU pressure (``/proc/pressure/cpu``, ``some avg10``): the share of the
    last 10 s in which some runnable task waited for a core, percent; -1 if unknown."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        first = Path("/proc/pressure/cpu").read_text(encoding="ascii").splitlines()[0]
        return float(first.split()[1].split("=")[1])
    return -1.0


def sched_shares(
    before: Mapping[str, tuple[int, int]], after: Mapping[str, tuple[int, int]], seconds: float
) -> dict[str, float]:
    """``<who>_ran_pct`` and ``<who>_waited_pct`` of the wall time, from two
    :func:`schedstat` readings per ``who`` (summed over its processes)."""
    out: dict[str, float] = {}
    for who, (ran, waited) in after.items():
        ran0, waited0 = before[who]
        out[f"{who}_ran_pct"] = round(100 * (ran - ran0) / (seconds * 1e9), 1)
        out[f"{who}_waited_pct"] = round(100 * (waited - waited0) / (seconds * 1e9), 1)
    return out


def histogram_of(doc: Mapping[str, int]) -> dict[int, int]:
    return {int(k): v for k, v in doc.items()}


def _row(name: str, p50_ms: float, p99_ms: float, count: int, extra: dict[str, Any]) -> Result:
    return Result(
        group=GROUP,
        name=name,
        ops_per_s=0.0,
        mean_us=0.0,
        p50_us=p50_ms * 1000,
        p99_us=p99_ms * 1000,
        calls=count,
        samples=count,
        batch=1,
        extra=extra,
    )


def trace_results(
    trace: Mapping[str, Any],
    merged: Mapping[str, Any],
    speakers: Mapping[str, Any],
    probe: Mapping[str, Any],
    loadavg: tuple[float, float, float],
    cpu: Mapping[str, float],
    sched: Mapping[str, float],
) -> list[Result]:
    """The trace window's rows (module docstring): the node's hooks' counts ``trace``,
    the load processes' merged ``measure`` answers, the speakers' process's and the probe
    process's."""
    bucket = int(trace.get("bucket_us", TRACE_BUCKET_US))
    enter = histogram_of(trace["enter"])
    copy = histogram_of(trace["copy"])
    forward = histogram_of(trace["forward_us"])
    rtt = histogram_of(trace["rtt_ms"])
    copies = int(trace["copies"])
    load = {"loadavg": "/".join(f"{x:.2f}" for x in loadavg), **cpu, **sched}
    note = verdict(
        percentile_ms(forward, 99, bucket), sched, int(trace["cwnd_limited"]) / max(copies, 1)
    )
    rows = [
        _row(
            "trace: send -> node forward",
            percentile_ms(enter, 50, bucket),
            percentile_ms(enter, 99, bucket),
            sum(enter.values()),
            {
                "reached_node_pct": round(
                    100 * sum(enter.values()) / max(sum(speakers["sent"].values()), 1), 1
                ),
                "forward_call_p99_ms": percentile_ms(forward, 99, bucket),
                **_sender_quic(speakers),
                **load,
                "note": note,
            },
        ),
        _row(
            "trace: send -> copy out of node",
            percentile_ms(copy, 50, bucket),
            percentile_ms(copy, 99, bucket),
            copies,
            {
                "cwnd_limited_pct": round(100 * int(trace["cwnd_limited"]) / max(copies, 1), 2),
                "rtt_p50_ms": percentile_ms(rtt, 50, 1000),
                "rtt_p99_ms": percentile_ms(rtt, 99, 1000),
            },
        ),
    ]
    for name, doc in (("receivers", merged), ("probe", probe)):
        path = histogram_of(doc["histogram"])
        base = histogram_of(doc["base_histogram"])
        rows.append(
            _row(
                f"trace: send -> {name}",
                percentile_ms(path, 50),
                percentile_ms(path, 99),
                sum(path.values()),
                {
                    "base_p50_ms": percentile_ms(base, 50),
                    "base_p99_ms": percentile_ms(base, 99),
                },
            )
        )
    return rows


def _sender_quic(speakers: Mapping[str, Any]) -> dict[str, float]:
    """The speakers' connections to the node, sampled in their process: how often qh3's
    congestion window was full (their datagrams then wait there for the node's acks) and
    the smoothed RTT."""
    samples = int(speakers.get("quic_samples", 0))
    rtt = histogram_of(speakers.get("quic_rtt_ms", {}))
    return {
        "sender_cwnd_full_pct": round(
            100 * int(speakers.get("quic_cwnd_full", 0)) / max(samples, 1), 1
        ),
        "sender_rtt_p50_ms": percentile_ms(rtt, 50, 1000),
        "sender_rtt_p99_ms": percentile_ms(rtt, 99, 1000),
    }


WAITED_PCT: Final = 25.0
"""A node that waited for a core this share of the window (runnable, not running) was
held up by the machine: each wait delays every datagram it has in hand."""
PRESSURE_PCT: Final = 50.0


def verdict(forward_p99_ms: float, sched: Mapping[str, float], cwnd_share: float) -> str:
    """One sentence for the table: where the relay-added latency of the window came from."""
    ran, waited = sched.get("node_ran_pct", 0.0), sched.get("node_waited_pct", 0.0)
    pressure = sched.get("cpu_pressure_pct", -1.0)
    facts = (
        f"node ran {ran:.0f}% and waited for a core {waited:.0f}% of the window, "
        f"CPU pressure {pressure:.0f}%, one forward call p99 {forward_p99_ms:.1f} ms, "
        f"{100 * cwnd_share:.1f}% of copies behind a full congestion window"
    )
    if waited > WAITED_PCT and pressure > PRESSURE_PCT:
        return f"bound by the machine (no core for the node or the load processes): {facts}"
    if cwnd_share > 0.1:
        return f"bound by QUIC congestion control towards slow receivers: {facts}"
    return f"not bound by the machine: look at the node's forward path: {facts}"
