"""Store failures as refusals with stable codes, counted, and logged without a flood.

A request whose store operation fails is refused, never acknowledged (a write that failed
was not committed: ``node.store.commit``, ``node.store.redis_client``)::

    StoreFull          store.full          the disk (or Redis' maxmemory) is full; retry
                                           after FULL_RETRY_MS
    StoreUnavailable   store.unavailable   the store does not answer (Redis down); retry
                                           after UNAVAILABLE_RETRY_MS
    StoreError         internal            any other store failure; retry after
                                           ERROR_RETRY_MS

Each failure is counted (``sealrelay_store_failures_total{kind}``, kind ``full``,
``unavailable`` or ``error``) and logged at error level at most once per ``LOG_EVERY``
seconds and kind, with the number of failures since the last line: a full disk must not
fill itself further with log lines.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Final

from node import errors
from node.errors import NodeError
from node.metrics import Metrics
from node.store.errors import StoreError, StoreFull, StoreUnavailable

log = logging.getLogger("sealrelay.node.store")

FULL_RETRY_MS: Final = 10_000
UNAVAILABLE_RETRY_MS: Final = 2_000
ERROR_RETRY_MS: Final = 1_000
LOG_EVERY: Final = 10.0

_KINDS: Final = {
    "full": (errors.STORE_FULL, "the node's storage is full; try again later", FULL_RETRY_MS),
    "unavailable": (
        errors.STORE_UNAVAILABLE,
        "the node's storage does not answer; try again shortly",
        UNAVAILABLE_RETRY_MS,
    ),
    "error": (errors.INTERNAL, "the node's storage failed; try again", ERROR_RETRY_MS),
}
_LOG_LINES: Final = {
    "full": "the store is full: refusing writes (free space on the data volume)",
    "unavailable": "the store does not answer: refusing requests until it is back",
    "error": "the store failed a request",
}


def kind_of(exc: StoreError) -> str:
    if isinstance(exc, StoreFull):
        return "full"
    if isinstance(exc, StoreUnavailable):
        return "unavailable"
    return "error"


class StoreFaults:
    """The refusal for a store failure; counts every one, logs some (``clock``: seconds,
    monotonic)."""

    def __init__(self, metrics: Metrics, clock: Callable[[], float] = time.monotonic) -> None:
        self._metrics = metrics
        self._clock = clock
        self._logged: dict[str, float] = {}
        self._unlogged: dict[str, int] = {}

    def refusal(self, exc: StoreError) -> NodeError:
        kind = kind_of(exc)
        self._metrics.count("store_failures", kind=kind)
        self._log(kind, exc)
        code, message, retry_after = _KINDS[kind]
        return NodeError(code, message, retry_after)

    def _log(self, kind: str, exc: StoreError) -> None:
        now = self._clock()
        self._unlogged[kind] = self._unlogged.get(kind, 0) + 1
        if now - self._logged.get(kind, -LOG_EVERY) < LOG_EVERY:
            return
        self._logged[kind] = now
        count = self._unlogged.pop(kind)
        log.error(_LOG_LINES[kind], extra={"error": str(exc), "count": count, "code": kind})
