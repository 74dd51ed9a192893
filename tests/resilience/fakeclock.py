"""A node process whose wall clock is off by a chosen offset, changed while it runs.

    clock = FakeClock(tmp / "alpha.clock")     # starts right (offset 0)
    node.env = {**(node.env or {}), **clock.env()}
    node.start()
    clock.set(360)                             # 6 minutes ahead, from the next second on
    clock.set(0)                               # right again

Debian's libfaketime (package ``faketime``) is preloaded into the node process: every
``clock_gettime(CLOCK_REALTIME)`` of the process, hence Python's ``time.time()``, reads
the offset in ``path`` (re-read at most once a second: ``FAKETIME_CACHE_DURATION``). The
monotonic clock stays true (``DONT_FAKE_MONOTONIC``), so trio's timeouts are not skewed.
No node code knows about it. The library's path is the one the ``faketime`` wrapper
preloads on this machine, asked for at run time (it differs between architectures).
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from pathlib import Path
from typing import Final

REREAD_SECONDS: Final = 1
SETTLE: Final = REREAD_SECONDS + 0.5
"""Seconds after :meth:`FakeClock.set` by which every clock read of the node sees it."""


@functools.cache
def preload() -> str:
    """The ``LD_PRELOAD`` value the ``faketime`` wrapper uses (multi-threaded library)."""
    wrapper = shutil.which("faketime")
    if wrapper is None:
        raise AssertionError(
            "the clock skew tests need Debian's faketime (libfaketime): apt-get install faketime"
        )
    out = subprocess.run(
        [wrapper, "-m", "-f", "+0", "sh", "-c", 'printf %s "$LD_PRELOAD"'],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    if "faketime" not in out.stdout:
        raise AssertionError(f"faketime did not preload its library: {out.stdout!r}")
    return out.stdout


class FakeClock:
    """The offset file of one node process."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.set(0)

    def set(self, seconds: int) -> None:
        """From the next re-read on, the node's wall clock is ``seconds`` ahead (behind if
        negative) of the true one."""
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(f"{seconds:+d}\n")
        tmp.replace(self.path)

    def env(self) -> dict[str, str]:
        return {
            "LD_PRELOAD": preload(),
            "FAKETIME_TIMESTAMP_FILE": str(self.path),
            "FAKETIME_CACHE_DURATION": str(REREAD_SECONDS),
            "DONT_FAKE_MONOTONIC": "1",
        }
