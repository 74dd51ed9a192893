"""What a benchmark run prints (one table per module) and writes (JSON with machine info)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Final

from cryptography.hazmat.backends.openssl import backend

from benchmarks.harness import Result

SCHEMA_VERSION: Final = 1
LIBRARIES: Final = ("cryptography", "pqcrypto", "pyinstrument")
LATEST: Final = "latest.json"

_FIXED_COLUMNS: Final = ("case", "ops/s", "mean µs", "p50 µs", "p99 µs", "calls")


# --- machine info -----------------------------------------------------------------------------


def machine_info() -> dict[str, object]:
    """Where and with what the numbers were taken."""
    return {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "libraries": {name: _version(name) for name in LIBRARIES},
        "openssl": backend.openssl_version_text(),
        "git_commit": _git_commit(),
    }


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _git_commit() -> str | None:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None


# --- JSON -------------------------------------------------------------------------------------


def module_document(
    module: str, results: Sequence[Result], machine: Mapping[str, object], quick: bool
) -> dict[str, object]:
    return {
        "schema": SCHEMA_VERSION,
        "module": module,
        "quick": quick,
        "machine": dict(machine),
        "results": [asdict(r) for r in results],
    }


def latest_document(
    modules: Mapping[str, Sequence[Result]],
    errors: Mapping[str, str],
    machine: Mapping[str, object],
    quick: bool,
) -> dict[str, object]:
    return {
        "schema": SCHEMA_VERSION,
        "quick": quick,
        "machine": dict(machine),
        "modules": {name: [asdict(r) for r in results] for name, results in modules.items()},
        "errors": dict(errors),
    }


def write_json(path: Path, document: Mapping[str, object]) -> None:
    """Write ``document`` to ``path`` atomically (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)


# --- table ------------------------------------------------------------------------------------


def table(module: str, results: Sequence[Result]) -> str:
    """A plain-text table: the fixed columns, then every ``extra`` key in first-seen order."""
    extras = list(dict.fromkeys(key for r in results for key in r.extra))
    header = [*_FIXED_COLUMNS, *extras]
    rows = [header, *(_row(r, extras) for r in results)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [f"== {module} =="]
    for n, row in enumerate(rows):
        cells = [
            row[0].ljust(widths[0]),
            *(c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)),
        ]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _row(r: Result, extras: Sequence[str]) -> list[str]:
    case = f"{r.group} {r.name}" if r.group else r.name
    return [
        case,
        f"{r.ops_per_s:,.0f}",
        _us(r.mean_us),
        _us(r.p50_us),
        _us(r.p99_us),
        f"{r.calls:,}",
        *(_cell(r.extra.get(key)) for key in extras),
    ]


def _us(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}" if value >= 1 else f"{value:.3f}"


def _cell(value: int | float | str | None) -> str:
    if value is None:
        return ""
    return f"{value:.2f}" if isinstance(value, float) else str(value)
