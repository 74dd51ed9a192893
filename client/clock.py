"""The client's clock: injected (``time.time`` in production, a fake in tests), read in ms."""

from __future__ import annotations

from collections.abc import Callable

Clock = Callable[[], float]
"""Seconds since the epoch, as ``time.time``."""


def now_ms(clock: Clock) -> int:
    """``clock`` in whole milliseconds since the epoch (the unit of every wire time)."""
    return int(clock() * 1000)
