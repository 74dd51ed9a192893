"""The rekey rows of ``benchmarks.meetings`` (issue 18, "rekey after a leave at 200: time
until every remaining participant sends and receives under the new epoch and the leaver is
cut off", target p99 under 1.5 s): the plan of leaves and the arithmetic from the load
processes' key records (``benchmarks.meetkeys.Records``) to ``Result`` rows. Pure.

For a leave (one removal, or a batch of them :data:`BATCH_GAP` s apart) that made epoch
``e`` at time ``at`` (the first removal), each remaining participant ``r`` is *done* at the
later of

* when ``r`` switched to sending under ``e`` (every frame it sends from then on is under
  ``e``), and
* for every speaker ``s`` still present other than ``r``, when ``r`` first opened a frame
  of ``s`` under ``e``;

``done - at`` is its rekey time. ``p50``/``p99`` are over every remaining participant of
every leave of the row; ``every_ms`` per leave (``-`` for one not done) is the last
participant's (the leave's own "time until every remaining participant").
``keys_only_*``: the same with the *send* time of each first opened frame instead of its
arrival, so without the media path's delay (the relay-added latency rows' business).

A removed participant stays connected and keeps trying every frame: ``leaver_opened``
counts the frames it opened under the epochs made at or after its removal (the target is
0), ``leaver_refused`` the ones it got and could not open.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from benchmarks.harness import Result
from benchmarks.meetrows import GROUP

SINGLES: Final = 5
BATCH: Final = 3
BATCH_GAP: Final = 0.08
"""Seconds between the removals of the batch: all within the leader's 200 ms window."""
SPACING: Final = 2.0
"""Seconds from one leave to the next (and to the report after the last), at least: the
next leave also waits until every remaining participant is done with this one (at most
:data:`SETTLED_WAIT` s), so that a slow rekey is measured, not overtaken by the next."""
SETTLED_WAIT: Final = 15.0
TARGET_P99_MS: Final = 1500.0
STARVED_RATIO: Final = 2.0
STARVED_PRESSURE_PCT: Final = 50.0


@dataclass(frozen=True)
class Leave:
    """One leave: when (first removal, monotonic s), who, and the epoch it made."""

    at: float
    pids: tuple[int, ...]
    epoch: int


def leavers(participants: int, speakers: int, probes: int) -> tuple[list[int], list[int]]:
    """Pids for :data:`SINGLES` single leaves and one batch of :data:`BATCH`: silent
    participants spread over the meeting, never a speaker (the first ``speakers`` pids, the
    key leader among them) nor a probe (the last ``probes``)."""
    silent = list(range(speakers, participants - probes))
    wanted = SINGLES + BATCH
    if len(silent) < wanted:
        raise ValueError(f"{wanted} leaves need {wanted} silent participants")
    step = len(silent) / wanted
    chosen = [silent[int(i * step)] for i in range(wanted)]
    return chosen[:SINGLES], chosen[SINGLES:]


def merge_records(reports: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The load processes' ``keys_report`` answers as lookups."""
    switched: dict[tuple[int, int], float] = {}
    first_open: dict[tuple[int, int, int], tuple[float, float]] = {}
    opened: dict[tuple[int, int], int] = {}
    no_key: dict[tuple[int, int], int] = {}
    failures = rejected = sealed = 0
    epochs: list[Mapping[str, float]] = []
    for doc in reports:
        switched.update({(e, p): t for e, p, t in doc["switched"]})
        first_open.update({(e, r, s): (t, at) for e, r, s, t, at in doc["first_open"]})
        opened.update({(r, e): n for r, e, n in doc["opened"]})
        no_key.update({(r, e): n for r, e, n in doc["no_key"]})
        failures += doc["failures"]
        rejected += doc["rejected"]
        sealed += doc["sealed"]
        epochs += doc["epochs_sent"]
    return {
        "switched": switched, "first_open": first_open, "opened": opened, "no_key": no_key,
        "failures": failures, "rejected": rejected, "sealed": sealed, "epochs_sent": epochs,
    }  # fmt: skip


def done_times(
    leave: Leave, remaining: Iterable[int], speakers: Iterable[int], merged: Mapping[str, Any]
) -> tuple[list[float | None], list[float | None]]:
    """Each remaining participant's rekey time for ``leave`` (s; None if it never got
    there), by arrival and by send time (module docstring)."""
    switched, first_open = merged["switched"], merged["first_open"]
    talkers = [s for s in speakers if s not in leave.pids]
    by_arrival: list[float | None] = []
    by_send: list[float | None] = []
    for r in remaining:
        sent = switched.get((leave.epoch, r))
        heard = [first_open.get((leave.epoch, r, s)) for s in talkers if s != r]
        if sent is None or any(h is None for h in heard):
            by_arrival.append(None)
            by_send.append(None)
            continue
        arrivals = [h[0] for h in heard if h is not None]
        sends = [h[1] for h in heard if h is not None]
        by_arrival.append(max([sent, *arrivals]) - leave.at)
        by_send.append(max([sent, *sends]) - leave.at)
    return by_arrival, by_send


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (0.0 of nothing)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, -(-pct * len(ordered) // 100))
    return ordered[int(rank) - 1]


def leaver_counts(leaves: Sequence[Leave], merged: Mapping[str, Any]) -> tuple[int, int]:
    """(frames opened, frames refused) by removed participants under the epochs made at or
    after their removal."""
    opened = refused = 0
    for leave in leaves:
        for pid in leave.pids:
            opened += sum(
                n for (r, e), n in merged["opened"].items() if r == pid and e >= leave.epoch
            )
            refused += sum(
                n for (r, e), n in merged["no_key"].items() if r == pid and e >= leave.epoch
            )
    return opened, refused


def rekey_row(
    name: str,
    leaves: Sequence[Leave],
    all_leaves: Sequence[Leave],
    participants: Iterable[int],
    speakers: Iterable[int],
    merged: Mapping[str, Any],
    extra: Mapping[str, Any],
) -> Result:
    """One row over ``leaves`` (module docstring); ``all_leaves`` in order tell who is
    still present at each."""
    everyone, talkers = list(participants), list(speakers)
    times: list[float] = []
    keys_only: list[float] = []
    every: list[float | None] = []
    missing = 0
    for leave in leaves:
        gone = {p for earlier in all_leaves[: all_leaves.index(leave) + 1] for p in earlier.pids}
        arrival, send = done_times(leave, [p for p in everyone if p not in gone], talkers, merged)
        missing += sum(t is None for t in arrival)
        times += [t for t in arrival if t is not None]
        keys_only += [t for t in send if t is not None]
        every.append(None if None in arrival else max(t for t in arrival if t is not None))
    opened, refused = leaver_counts(leaves, merged)
    p99 = percentile(times, 99) * 1000
    worst = [t for t in every if t is not None]
    return Result(
        group=GROUP,
        name=name,
        ops_per_s=0.0,
        mean_us=sum(times) / max(len(times), 1) * 1e6,
        p50_us=percentile(times, 50) * 1e6,
        p99_us=p99 * 1000,
        calls=len(leaves),
        samples=len(times),
        batch=1,
        extra={
            "target_p99_ms": TARGET_P99_MS,
            "meets_target": bool(times) and not missing and p99 < TARGET_P99_MS,
            "every_ms": "/".join("-" if t is None else f"{t * 1000:.0f}" for t in every),
            "every_max_ms": round(max(worst, default=0.0) * 1000, 1),
            "keys_only_p50_ms": round(percentile(keys_only, 50) * 1000, 1),
            "keys_only_p99_ms": round(percentile(keys_only, 99) * 1000, 1),
            "not_done": missing,
            "leaver_opened": opened,
            "leaver_refused": refused,
            **extra,
        },
    )


def leader_costs(
    leaves: Sequence[Leave], epochs_sent: Sequence[Mapping[str, float]]
) -> dict[str, float]:
    """The key leader's side of ``leaves``: from the first removal to its new epoch's
    messages (the 200 ms batch and the tick), and its CPU for them (the roster signed, the
    messages made and encoded; no pairwise encryption here), medians in ms."""
    delays: list[float] = []
    cpu: list[float] = []
    for leave in leaves:
        later = [e for e in epochs_sent if e["at"] >= leave.at]
        if later:
            first = min(later, key=lambda e: e["at"])
            delays.append(first["at"] - leave.at)
            cpu.append(first["cpu_s"] + first["encode_cpu_s"])
    return {
        "epoch_out_ms": round(percentile(delays, 50) * 1000, 1),
        "leader_epoch_cpu_ms": round(percentile(cpu, 50) * 1000, 1),
    }


def rekey_note(sched: Mapping[str, float]) -> str:
    """One sentence for the table: whether the load processes had the CPU they needed."""
    ran, waited = sched.get("load_ran_pct", 0.0), sched.get("load_waited_pct", 0.0)
    pressure = sched.get("cpu_pressure_pct", -1.0)
    facts = (
        f"the load processes (every participant's key schedule and media) ran {ran:.0f}% "
        f"and waited for a core {waited:.0f}% (summed over processes), CPU pressure "
        f"{pressure:.0f}%"
    )
    if waited > STARVED_RATIO * max(ran, 0.1) and pressure > STARVED_PRESSURE_PCT:
        return f"bound by the machine: {facts}; see the key schedule alone for its own cost"
    return f"not bound by the machine: {facts}"
