"""Timing helper and module registry for ``python -m benchmarks``.

:func:`measure` times one case: it warms the callable up, picks a batch size so that one
timed sample (``batch`` back-to-back calls between two ``time.perf_counter_ns`` readings)
lasts at least :attr:`Budget.sample_s`, then takes samples until :attr:`Budget.target_s`
has passed and :attr:`Budget.min_samples` are in, or :attr:`Budget.max_s` has passed.
As in :mod:`timeit`, the garbage collector is off while samples are taken.  Percentiles
are over the per-call times of the samples, so for a fast case (``batch > 1``) they
describe batch means, not single calls.
"""

from __future__ import annotations

import gc
import importlib
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol

MODULES: Final = ("suites", "client", "node", "groups", "groupnet", "federation", "cluster", "quic")
"""Registered benchmark modules, in run order: ``benchmarks/<name>.py`` each."""
NAMED_ONLY: Final = ("calls", "meetings")
"""Modules that run only when named (``python -m benchmarks calls``, ``make bench calls``,
``make bench meetings``): they start node and load processes for a minute or more."""

Extra = Mapping[str, int | float | str]

_NS_PER_S: Final = 1_000_000_000
_NS_PER_US: Final = 1_000
_MIN_SAMPLES_FOR_P99: Final = 100


@dataclass(frozen=True)
class Budget:
    """How long to spend on one case, in seconds (see the module docstring)."""

    warmup_s: float
    target_s: float
    max_s: float
    min_samples: int
    sample_s: float


FULL: Final = Budget(warmup_s=0.1, target_s=0.5, max_s=1.0, min_samples=200, sample_s=20e-6)
QUICK: Final = Budget(warmup_s=0.0, target_s=0.005, max_s=0.05, min_samples=3, sample_s=20e-6)


def budget(quick: bool) -> Budget:
    return QUICK if quick else FULL


@dataclass(frozen=True)
class Result:
    """One measured case.  Times are per call, in microseconds.

    ``p50_us`` needs two samples and ``p99_us`` a hundred; otherwise they are ``None``.
    ``calls`` = ``samples * batch``.  ``extra`` holds the benchmark's own columns.
    """

    group: str
    name: str
    ops_per_s: float
    mean_us: float
    p50_us: float | None
    p99_us: float | None
    calls: int
    samples: int
    batch: int
    extra: dict[str, int | float | str] = field(default_factory=dict)


class Runner(Protocol):
    def __call__(self, quick: bool) -> list[Result]: ...


def measure(
    name: str,
    fn: Callable[[], object],
    *,
    quick: bool,
    group: str = "",
    extra: Extra | None = None,
) -> Result:
    """Time ``fn()`` (which must be safe to call many times) and summarise it."""
    plan = budget(quick)
    batch = max(1, math.ceil(plan.sample_s * _NS_PER_S / _warm_up(fn, plan.warmup_s)))
    per_call = _sample(fn, batch, plan)
    return _summarise(group, name, per_call, batch, dict(extra or {}))


@dataclass
class Cases:
    """Collects the results of one group of cases: ``cases.add(name, fn, in_bytes=1024)``."""

    group: str
    quick: bool
    results: list[Result] = field(default_factory=list)

    def add(self, name: str, fn: Callable[[], object], **extra: int | float | str) -> None:
        """:func:`measure` ``fn``; keyword arguments become extra columns."""
        self.results.append(measure(name, fn, quick=self.quick, group=self.group, extra=extra))


def load(name: str) -> Runner:
    """The ``run`` function of the registered module ``benchmarks.<name>``."""
    if name not in (*MODULES, *NAMED_ONLY):
        have = ", ".join((*MODULES, *NAMED_ONLY))
        raise KeyError(f"unknown benchmark module {name!r}; registered: {have}")
    run: Runner = importlib.import_module(f"benchmarks.{name}").run
    return run


def _warm_up(fn: Callable[[], object], seconds: float) -> float:
    """Call ``fn`` for ``seconds`` (at least once); the mean ns per call."""
    calls = 0
    start = time.perf_counter_ns()
    deadline = start + int(seconds * _NS_PER_S)
    while True:
        fn()
        calls += 1
        now = time.perf_counter_ns()
        if now >= deadline:
            return max(1.0, (now - start) / calls)


def _sample(fn: Callable[[], object], batch: int, plan: Budget) -> list[float]:
    """Per-call ns of each sample of ``batch`` calls."""
    per_call: list[float] = []
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter_ns()
        target = start + int(plan.target_s * _NS_PER_S)
        hard_stop = start + int(plan.max_s * _NS_PER_S)
        while True:
            t0 = time.perf_counter_ns()
            for _ in range(batch):
                fn()
            t1 = time.perf_counter_ns()
            per_call.append((t1 - t0) / batch)
            if t1 >= hard_stop or (t1 >= target and len(per_call) >= plan.min_samples):
                return per_call
    finally:
        if gc_was_enabled:
            gc.enable()


def _summarise(
    group: str, name: str, per_call: list[float], batch: int, extra: dict[str, int | float | str]
) -> Result:
    ordered = sorted(per_call)
    mean_ns = sum(ordered) / len(ordered)
    return Result(
        group=group,
        name=name,
        ops_per_s=_NS_PER_S / mean_ns,
        mean_us=mean_ns / _NS_PER_US,
        p50_us=_percentile(ordered, 50) if len(ordered) >= 2 else None,
        p99_us=_percentile(ordered, 99) if len(ordered) >= _MIN_SAMPLES_FOR_P99 else None,
        calls=len(ordered) * batch,
        samples=len(ordered),
        batch=batch,
        extra=extra,
    )


def _percentile(ordered: list[float], pct: int) -> float:
    """Nearest-rank percentile of sorted ns values, in microseconds."""
    return nearest_rank(ordered, pct) / _NS_PER_US


def nearest_rank(ordered: Sequence[float], pct: float) -> float:
    """The nearest-rank ``pct`` percentile of the sorted ``ordered`` (0.0 when empty)."""
    if not ordered:
        return 0.0
    return float(ordered[max(1, math.ceil(pct / 100 * len(ordered))) - 1])
