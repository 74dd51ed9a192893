"""node.limits.RateLimiter.take_run and node.conn.core.ConnCore.charge_run: a batch's
further Sends charged in one call per limiter give exactly what one call per Send gave
(the allowed ones, each refusal's wait, the buckets and the cluster's spent tokens after)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from hypothesis import given, settings
from hypothesis import strategies as st

from node.conn.core import ConnCore, Policy
from node.conn.state import Login
from node.limits import RateLimiter

PEER: Final = "192.0.2.7"
RATES: Final = st.sampled_from([0.5, 1.0, 3.0, 200.0, 1e6])
BURSTS: Final = st.integers(min_value=1, max_value=40)
COUNTS: Final = st.integers(min_value=0, max_value=40)
TIMES: Final = st.floats(min_value=0.0, max_value=5.0, allow_nan=False)
SETTINGS: Final = settings(max_examples=300, deadline=None)


def _limiter(rate: float, burst: int, spent: int, debit: float) -> RateLimiter:
    limiter = RateLimiter(rate, burst)
    limiter.track = True
    for _ in range(spent):
        limiter.take("k", 0.0)
    limiter.debit("k", debit, 0.0)
    return limiter


def _state(limiter: RateLimiter) -> tuple[object, ...]:
    return (dict(limiter._buckets), dict(limiter.spent))


@SETTINGS
@given(RATES, BURSTS, st.integers(0, 40), st.sampled_from([0.0, 0.5, 7.25]), TIMES, COUNTS)
def test_take_run_is_count_takes(
    rate: float, burst: int, spent: int, debit: float, later: float, count: int
) -> None:
    one, run = _limiter(rate, burst, spent, debit), _limiter(rate, burst, spent, debit)
    waits = [one.take("k", later) for _ in range(count)]
    allowed, wait = run.take_run("k", later, count)
    assert waits == [0.0] * allowed + [wait] * (count - allowed)
    assert _state(run) == _state(one)


@dataclass(frozen=True)
class Caller:
    address: str
    mailbox: bytes


def _core(ip: tuple[float, int], second: tuple[float, int], anonymous: bool) -> ConnCore[Caller]:
    ip_limit, other = RateLimiter(*ip), RateLimiter(*second)
    if anonymous:
        policy = Policy(1 << 20, 100, ip_limit, RateLimiter(1.0, 1), other)
        login = Login.ANONYMOUS
    else:
        policy = Policy(1 << 20, 100, ip_limit, other)
        login = Login.AWAIT_LOGIN
    core: ConnCore[Caller] = ConnCore(PEER, policy, lambda code: None, lambda e, n: None, login)
    if not anonymous:
        core.caller = Caller("alice@relay.test", bytes(16))
    return core


def _buckets(core: ConnCore[Caller]) -> tuple[object, ...]:
    p = core.policy
    limiters = (p.ip_limit, p.account_limit, p.connection_limit)
    return tuple(None if x is None else dict(x._buckets) for x in limiters)


@SETTINGS
@given(RATES, BURSTS, RATES, BURSTS, st.booleans(), st.integers(0, 30), TIMES, COUNTS)
def test_charge_run_is_count_charges(
    ip_rate: float,
    ip_burst: int,
    rate: float,
    burst: int,
    anonymous: bool,
    before: int,
    later: float,
    count: int,
) -> None:
    one = _core((ip_rate, ip_burst), (rate, burst), anonymous)
    run = _core((ip_rate, ip_burst), (rate, burst), anonymous)
    for core in (one, run):
        for _ in range(before):
            core.charge(0.0)
    assert run.charge_run(later, count) == [one.charge(later) for _ in range(count)]
    assert _buckets(run) == _buckets(one)
