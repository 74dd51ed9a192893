"""The replicas' rows of the calls benchmark (``benchmarks.callreplicas``; issue 18, item 4):
the quick profile (two replicas on one real redis-server, about 10 s) yields a row per case
with sane numbers; no timing is asserted. Also the row arithmetic on made-up samples."""

from __future__ import annotations

import pytest

from benchmarks import callreplicas
from benchmarks.callreplicas import BASELINE, BRIDGED, RELAYED, Measured


def test_a_row_is_relay_added_latency_and_ratios_to_the_baseline() -> None:
    direct = Measured([0.001] * 100, 100, 0.0, 2.0, 1.0)
    first = Measured([0.002] * 100, 100, 0.01, 2.0, 1.0)
    slower = Measured([0.004] * 99, 100, 0.03, 2.0, 1.0)
    row = callreplicas.row(BRIDGED, slower, direct, first)
    assert row.p50_us == pytest.approx(3000.0)
    assert row.extra["p50_ratio"] == pytest.approx(3.0)
    assert row.extra["cpu_us_per_dgram"] == pytest.approx(300.0)
    assert row.extra["cpu_ratio"] == pytest.approx(3.0)
    assert row.extra["loss_pct"] == pytest.approx(1.0)


@pytest.mark.slow
def test_quick_run_has_a_row_per_case_with_sane_numbers() -> None:
    rows = {row.name: row for row in callreplicas.run(quick=True)}
    assert set(rows) == {BASELINE, BRIDGED, RELAYED}
    expected = round(callreplicas.QUICK_SECONDS / callreplicas.INTERVAL) * 2
    for row in rows.values():
        assert row.group == "calls"
        assert row.calls > expected // 2  # most datagrams arrived, both ways
        extra = {key: float(value) for key, value in row.extra.items()}
        assert extra["loss_pct"] < 50
        assert row.p50_us is not None
        assert row.p99_us is not None
        # relay-added figures are differences of percentiles: their order is not fixed
        assert 0 < extra["path_p50_ms"] <= extra["path_p99_ms"] < 1000
        assert extra["cpu_us_per_dgram"] >= 0
    assert rows[BASELINE].extra["p50_ratio"] in (0.0, 1.0)  # 0.0: nothing added, no ratio
