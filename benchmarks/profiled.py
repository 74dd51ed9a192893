"""Run a module as ``__main__`` with a CPU-time profile of a window of its run:

    python -m benchmarks.profiled OUT MODULE [ARG ...]

``SIGUSR1`` starts ``cProfile`` (timer: ``time.process_time``, so time spent waiting in
``epoll`` costs nothing), ``SIGUSR2`` stops it and writes the ``pstats`` file ``OUT``.
``benchmarks.calls`` runs ``sealrelay node serve`` this way and profiles it only while the
calls run, not while it starts up or idles. Only the main thread is profiled (where the node
runs trio; the store's threads are not). :func:`profile_results` reads such a file: the
functions with the most own time, as benchmark rows.
"""

from __future__ import annotations

import cProfile
import pstats
import runpy
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any, Final

from benchmarks.harness import Result

PROFILE_TOP: Final = 12
"""Functions listed by :func:`profile_results`."""


def profile_results(path: Path, forwarded: float) -> list[Result]:
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


def main() -> None:
    out, module = sys.argv[1], sys.argv[2]
    sys.argv = [module, *sys.argv[3:]]
    profiler = cProfile.Profile(time.process_time)

    def start(_signum: int, _frame: FrameType | None) -> None:
        profiler.enable()

    def stop(_signum: int, _frame: FrameType | None) -> None:
        profiler.disable()
        profiler.dump_stats(out)

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
