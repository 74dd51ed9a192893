"""The table of ``benchmarks.compare``: per case and metric, each side's median over the
rounds, head/base, and each side's spread ((max - min) / median)."""

from __future__ import annotations

import statistics
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final


@dataclass(frozen=True)
class Run:
    """One benchmark run of one side: its results (``harness.Result`` as dicts) or error."""

    module: str
    side: str
    round: int
    seconds: float
    results: list[dict[str, Any]]
    error: str | None
    imported_from: dict[str, list[str]] = field(default_factory=dict)
    processes: int = 0


@dataclass(frozen=True)
class Row:
    """One line of the table: medians over the rounds, their ratio and each side's spread."""

    module: str
    case: str
    metric: str
    base: float | None
    head: float | None
    base_spread: float | None
    head_spread: float | None
    throughput: bool

    @property
    def ratio(self) -> float | None:
        if self.base is None or self.head is None or self.base == 0:
            return None
        return self.head / self.base


EXTRAS: Final = {
    "node_cpu_us_per_envelope": "node CPU us/env",
    "us_a": "A CPU us/env",
    "us_b": "B CPU us/env",
    "node_us": "node CPU us/delivery",
    "cpu_other": "other load, cores",
}
"""Extra columns shown as metrics: CPU per envelope varies much less with the machine's load
than rates do (``docs/operations.md``); ``cpu_other`` says how loaded the machine was."""


def _metrics(result: Mapping[str, Any]) -> Iterator[tuple[str, float]]:
    if result["ops_per_s"]:
        yield "ops/s", float(result["ops_per_s"])
    for key, metric in (("p50_us", "p50 ms"), ("p99_us", "p99 ms")):
        if result[key] is not None:
            yield metric, float(result[key]) / 1000
    extra = result.get("extra", {})
    for key, metric in EXTRAS.items():
        if isinstance(extra.get(key), int | float):
            yield metric, float(extra[key])


def _case(result: Mapping[str, Any]) -> str:
    return f"{result['group']} {result['name']}" if result["group"] else str(result["name"])


def _is_throughput(case: str, metric: str) -> bool:
    """Rows that the "throughput within the threshold" rule is about: rates that are not
    paced at a fixed share of another case's rate."""
    return metric == "ops/s" and "latency at half" not in case


def _spread(values: Sequence[float]) -> float | None:
    middle = statistics.median(values) if values else 0.0
    return (max(values) - min(values)) / middle if len(values) > 1 and middle else None


def rows(runs: Sequence[Run]) -> list[Row]:
    """Median per (module, case, metric) and side, in the order the cases first appear."""
    values: dict[tuple[str, str, str], dict[str, list[float]]] = {}
    for run in runs:
        for result in run.results:
            for metric, value in _metrics(result):
                key = (run.module, _case(result), metric)
                values.setdefault(key, {"base": [], "head": []})[run.side].append(value)
    table: list[Row] = []
    for (module, case, metric), sides in values.items():
        base, head = sides["base"], sides["head"]
        table.append(
            Row(
                module,
                case,
                metric,
                statistics.median(base) if base else None,
                statistics.median(head) if head else None,
                _spread(base),
                _spread(head),
                _is_throughput(case, metric),
            )
        )
    return table


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.2f}"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _verdict(row: Row, threshold: float) -> str:
    if not row.throughput or row.ratio is None:
        return ""
    return "ok" if row.ratio >= 1 - threshold else "SLOWER"


HEADER: Final = ("module", "case", "metric", "base", "head", "head/base", "base spread",
                 "head spread", "within")  # fmt: skip


def cells(table: Sequence[Row], threshold: float) -> list[list[str]]:
    """The table as text cells, header first."""
    body = [
        [
            row.module,
            row.case.removeprefix(f"{row.module} "),
            row.metric,
            _number(row.base),
            _number(row.head),
            "-" if row.ratio is None else f"{row.ratio:.3f}",
            _percent(row.base_spread),
            _percent(row.head_spread),
            _verdict(row, threshold),
        ]
        for row in table
    ]
    return [[*HEADER[:-1], f"within {threshold:.0%}"], *body]


def plain(grid: Sequence[Sequence[str]]) -> str:
    widths = [max(len(line[i]) for line in grid) for i in range(len(grid[0]))]
    lines = []
    for n, line in enumerate(grid):
        text = [line[0].ljust(widths[0]), line[1].ljust(widths[1]), line[2].ljust(widths[2])]
        text += [c.rjust(w) for c, w in zip(line[3:], widths[3:], strict=True)]
        lines.append("  ".join(text).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown(grid: Sequence[Sequence[str]]) -> str:
    lines = [f"| {' | '.join(line)} |" for line in grid]
    lines.insert(1, "|" + "---|" * len(grid[0]))
    return "\n".join(lines)
