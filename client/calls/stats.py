"""What a call measures: counters, RFC 3550 jitter, latency percentiles, and the summary.

:class:`CallStats` has the keys of the call summary the CLI prints (issue 17):
``frames_sent``, ``frames_received``, ``frames_lost``, ``frames_late``, ``decrypt_failures``,
``latency_ms_p50``, ``latency_ms_p99``, ``jitter_ms``, and a few more counters that explain
drops (``replays``, ``digest_mismatches``, ``malformed``, ``incomplete``).

Definitions (all per receiving side, over every stream it received):

* ``frames_received``: frames that authenticated, matched their digest and met their
  playout deadline; ``frames_late``: authenticated frames that completed after it.
* ``frames_lost``: gaps in each stream's frame index, 0 up to the highest authenticated
  index, that no authenticated frame filled (a frame that fails authentication is a gap
  too, so it counts in ``decrypt_failures`` and in ``frames_lost``).
* ``jitter_ms``: RFC 3550 section 6.4.1 / appendix A.8 interarrival jitter per stream
  (``J += (|D| - J) / 16``), from each frame's send timestamp and the time its last packet
  arrived; the largest over the streams.
* ``latency_ms_p50`` / ``_p99``: nearest-rank percentiles of arrival minus send timestamp over
  authenticated frames (late ones included); ``None`` before any frame arrived. They are
  meaningful only if sender and receiver clocks share an epoch (one machine, or synced).
"""

from __future__ import annotations

import math
from array import array
from dataclasses import asdict, dataclass
from typing import Final

MAX_LATENCY_SAMPLES: Final = 1_000_000
"""Latency samples kept (8 MB); later frames still count, but no longer move percentiles."""
JITTER_GAIN: Final = 16
"""RFC 3550 A.8: the jitter estimate moves by 1/16 of each new difference."""
_MS: Final = 1000.0


class JitterEstimator:
    """RFC 3550 interarrival jitter of one stream, in seconds (times in seconds)."""

    def __init__(self) -> None:
        self.jitter = 0.0
        self._last_transit: float | None = None

    def update(self, sent: float, arrived: float) -> None:
        """Account one frame sent at ``sent`` (sender clock) that arrived at ``arrived``."""
        transit = arrived - sent
        if self._last_transit is not None:
            d = abs(transit - self._last_transit)
            self.jitter += (d - self.jitter) / JITTER_GAIN
        self._last_transit = transit


def percentile(sorted_values: list[float], pct: float) -> float:
    """Nearest-rank percentile (the smallest value with ``pct`` % at or below it)."""
    if not sorted_values:
        raise ValueError("percentile of no values")
    rank = max(1, math.ceil(pct / 100.0 * len(sorted_values)))
    return sorted_values[rank - 1]


class LatencySamples:
    """Latencies in milliseconds, bounded by :data:`MAX_LATENCY_SAMPLES`."""

    def __init__(self) -> None:
        self._values = array("d")

    def add(self, latency_s: float) -> None:
        """Record one latency given in seconds."""
        if len(self._values) < MAX_LATENCY_SAMPLES:
            self._values.append(latency_s * _MS)

    def __len__(self) -> int:
        return len(self._values)

    def percentiles(self, *pcts: float) -> tuple[float | None, ...]:
        """The nearest-rank percentiles, ``None`` each if there are no samples."""
        if not self._values:
            return tuple(None for _ in pcts)
        ordered = sorted(self._values)
        return tuple(percentile(ordered, p) for p in pcts)


@dataclass
class ReceiveCounters:
    """Running counters of a receiver (see the module docstring for each meaning)."""

    frames_received: int = 0
    frames_late: int = 0
    decrypt_failures: int = 0
    replays: int = 0
    digest_mismatches: int = 0
    malformed: int = 0
    incomplete: int = 0


@dataclass(frozen=True)
class CallStats:
    """The call summary; :meth:`as_dict` is the JSON object the CLI prints."""

    frames_sent: int
    frames_received: int
    frames_lost: int
    frames_late: int
    decrypt_failures: int
    latency_ms_p50: float | None
    latency_ms_p99: float | None
    jitter_ms: float
    replays: int
    digest_mismatches: int
    malformed: int
    incomplete: int

    def as_dict(self) -> dict[str, int | float | None]:
        """The fields as a JSON-ready dict."""
        return asdict(self)
