"""Run a module as ``__main__`` with a CPU-time profile of a window of its run:

    python -m benchmarks.profiled OUT MODULE [ARG ...]

``SIGUSR1`` starts ``cProfile`` (timer: ``time.process_time``, so time spent waiting in
``epoll`` costs nothing), ``SIGUSR2`` stops it and writes the ``pstats`` file ``OUT``.
``benchmarks.calls`` runs ``sealrelay node serve`` this way and profiles it only while the
calls run, not while it starts up or idles. Only the main thread is profiled (where the node
runs trio; the store's threads are not).
"""

from __future__ import annotations

import cProfile
import runpy
import signal
import sys
import time
from types import FrameType


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
