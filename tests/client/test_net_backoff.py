"""The reconnect delay schedule: exponential, jittered, capped, reset after success."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from client.net import Backoff


def test_grows_exponentially_within_jitter_bounds() -> None:
    low = Backoff(base=1.0, cap=100.0, rand=lambda: 0.0)
    high = Backoff(base=1.0, cap=100.0, rand=lambda: 0.999999)
    for n in range(6):
        ceiling = 2.0**n
        assert low.next_delay() == ceiling / 2
        assert ceiling / 2 < high.next_delay() <= ceiling


def test_capped() -> None:
    backoff = Backoff(base=1.0, cap=30.0, rand=lambda: 1.0)
    delays = [backoff.next_delay() for _ in range(200)]
    assert max(delays) == 30.0
    assert delays[-1] == 30.0


def test_reset_starts_over() -> None:
    backoff = Backoff(base=0.5, cap=30.0, rand=lambda: 1.0)
    for _ in range(10):
        backoff.next_delay()
    backoff.reset()
    assert backoff.next_delay() == 0.5


def test_jitter_spreads_clients() -> None:
    values = iter([0.1, 0.9])
    a = Backoff(base=4.0, rand=lambda: next(values))
    b = Backoff(base=4.0, rand=lambda: next(values))
    assert a.next_delay() != b.next_delay()


@given(
    st.floats(min_value=0.001, max_value=10.0),
    st.floats(min_value=0.01, max_value=600.0),
    st.integers(min_value=0, max_value=5000),
    st.floats(min_value=0.0, max_value=1.0),
)
def test_never_above_cap_never_zero(base: float, cap: float, attempts: int, r: float) -> None:
    backoff = Backoff(base=base, cap=cap, rand=lambda: r, attempt=attempts)
    delay = backoff.next_delay()
    assert 0 < delay <= max(cap, 0.0) + 1e-9
    assert delay >= min(cap, base) / 2 - 1e-9
