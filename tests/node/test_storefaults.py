"""Store failures as refusals: stable codes with ``retry_after``, every one counted, a log
line at most every ``LOG_EVERY`` seconds per kind."""

from __future__ import annotations

import logging

import pytest

from node.metrics import Metrics
from node.store import StoreError, StoreFull, StoreUnavailable
from node.storefaults import LOG_EVERY, StoreFaults


def test_each_failure_kind_has_its_code_and_a_retry_after() -> None:
    faults = StoreFaults(Metrics(), clock=lambda: 0.0)
    full = faults.refusal(StoreFull("disk"))
    gone = faults.refusal(StoreUnavailable("redis"))
    other = faults.refusal(StoreError("io"))
    assert (full.code, gone.code, other.code) == ("store.full", "store.unavailable", "internal")
    assert full.retry_after > gone.retry_after > 0
    assert other.retry_after > 0


def test_failures_are_all_counted_and_logged_sparingly(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    metrics = Metrics()
    faults = StoreFaults(metrics, clock=lambda: now[0])
    with caplog.at_level(logging.ERROR, logger="sealrelay.node.store"):
        for _ in range(50):
            faults.refusal(StoreFull("disk"))
            now[0] += LOG_EVERY / 100
        now[0] += LOG_EVERY
        faults.refusal(StoreFull("disk"))
        faults.refusal(StoreUnavailable("redis"))
    assert metrics.labeled["store_failures"] == {
        (("kind", "full"),): 51,
        (("kind", "unavailable"),): 1,
    }
    full = [r for r in caplog.records if r.msg.startswith("the store is full")]
    assert [r.__dict__["count"] for r in full] == [1, 50]
    assert any(r.msg.startswith("the store does not answer") for r in caplog.records)
