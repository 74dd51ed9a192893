"""RFC 3550 jitter and nearest-rank latency percentiles."""

from __future__ import annotations

import pytest

from client.calls.stats import JitterEstimator, LatencySamples, percentile


def test_jitter_rfc3550_a8() -> None:
    est = JitterEstimator()
    est.update(0.0, 0.010)  # transit 10 ms: the first sets the reference only
    assert est.jitter == 0.0
    est.update(0.020, 0.030)  # transit 10 ms again: D = 0
    assert est.jitter == pytest.approx(0.0, abs=1e-12)
    est.update(0.040, 0.066)  # transit 26 ms: D = 16 ms, J = 16/16 = 1 ms
    assert est.jitter == pytest.approx(0.001)
    est.update(0.060, 0.070)  # transit 10 ms: D = 16 ms, J = 1 + (16 - 1)/16
    assert est.jitter == pytest.approx(0.001 + 0.015 / 16)


def test_constant_delay_has_no_jitter() -> None:
    est = JitterEstimator()
    for i in range(100):
        est.update(i * 0.02, i * 0.02 + 0.035)
    assert est.jitter == pytest.approx(0.0, abs=1e-12)


def test_nearest_rank_percentiles() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile([7.0], 99) == 7.0
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)


def test_latency_samples_in_ms() -> None:
    samples = LatencySamples()
    assert samples.percentiles(50, 99) == (None, None)
    for s in (0.003, 0.001, 0.002):
        samples.add(s)
    assert len(samples) == 3
    assert samples.percentiles(50, 99) == pytest.approx((2.0, 3.0))
