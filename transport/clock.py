"""The clock QUIC timers are read in, and how a QUIC deadline becomes a trio deadline.

qh3 has no clock of its own: every ``QuicConnection`` call takes ``now``, and
``get_timer()`` answers in whatever clock those ``now`` values came from. Its asyncio shell
passes ``loop.time()``, which is ``time.monotonic()``.

Pitfall: ``trio.current_time()`` is *not* ``time.monotonic()``. trio adds a random offset
(of the order of 10^4 to 10^5 seconds) to its clock precisely so that code mixing the two
fails loudly. A shell that feeds qh3 ``time.monotonic()`` and then calls
``trio.sleep_until(conn.get_timer())`` sleeps for hours: loss recovery, ACKs, pacing and
the idle timeout all stop. So a deadline is converted, never reused::

    trio_deadline = trio.current_time() + (quic_deadline - clock.now())

i.e. "as many seconds from now as the library asked for", on trio's clock. ``QuicClock`` does
that; every QUIC call of this package reads ``now`` from one ``QuicClock`` and nothing else.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import trio


@dataclass(frozen=True)
class QuicClock:
    """A monotonic clock for qh3 (``read``, seconds) and the conversion to trio's clock."""

    read: Callable[[], float] = time.monotonic

    def now(self) -> float:
        return self.read()

    def to_trio(self, quic_deadline: float) -> float:
        """The trio deadline at the same instant as ``quic_deadline`` on this clock."""
        return trio.current_time() + (quic_deadline - self.read())


MONOTONIC: Final = QuicClock()
"""The default: ``time.monotonic``, as qh3's own asyncio shell uses."""
