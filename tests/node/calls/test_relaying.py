"""The bind elsewhere's pure decisions (node/calls/relaying.py): what the replica a QUIC
bind reached does with the leg's ``CallLegs`` record, relay ids, a replica link's
keep-alive."""

from __future__ import annotations

from collections.abc import Callable

from node.calls.legs import secret_hash
from node.calls.relaying import (
    MAX_DRAWS,
    HandOn,
    Liveness,
    Refusal,
    fresh_relay_id,
    judge_bind,
)
from node.errors import CALL_BAD_SECRET, CALL_EXPIRED, CALL_NO_LEG
from node.store.base import LegRecord

LEG = bytes(16)
SECRET = bytes(range(32))
HERE, THERE = b"h" * 16, b"t" * 16
NOW = 1_700_000_000_000
RECORD = LegRecord(LEG, THERE, secret_hash(SECRET), NOW + 1)


def test_a_right_secret_is_handed_on_to_the_leg_s_replica() -> None:
    assert judge_bind(RECORD, SECRET, NOW, HERE) == HandOn(THERE)


def test_refusals_are_a_local_bind_s() -> None:
    def code(record: LegRecord | None, secret: bytes = SECRET, now: int = NOW) -> str:
        verdict = judge_bind(record, secret, now, HERE)
        assert isinstance(verdict, Refusal)
        return verdict.code

    assert code(None) == CALL_NO_LEG
    assert code(LegRecord(LEG, HERE, secret_hash(SECRET), NOW + 1)) == CALL_NO_LEG  # ended here
    assert code(RECORD, now=NOW + 1) == CALL_EXPIRED
    assert code(RECORD, bytes(32)) == CALL_BAD_SECRET
    assert code(RECORD, SECRET[:31]) == CALL_BAD_SECRET
    # an expired record is refused as expired whatever the secret (as the core's order)
    assert code(RECORD, bytes(32), NOW + 5) == CALL_EXPIRED


def _draws(*values: int) -> Callable[[int], bytes]:
    queue = list(values)

    def draw(n: int) -> bytes:
        return queue.pop(0).to_bytes(n, "big")

    return draw


def test_relay_ids_skip_those_taken_and_give_up_after_enough_draws() -> None:
    assert fresh_relay_id(_draws(5, 6), {5}) == 6
    assert fresh_relay_id(_draws(0xFFFF_FFFF), set()) == 0xFFFF_FFFF
    assert fresh_relay_id(_draws(*[1] * MAX_DRAWS), {1}) is None


def test_liveness_needs_something_within_the_timeout() -> None:
    alive = Liveness(10.0)
    assert alive.check(0, 100.0)
    assert alive.check(0, 109.9)
    assert alive.check(1, 109.95)  # something arrived: the clock starts again
    assert alive.check(1, 119.9)
    assert not alive.check(1, 119.95)
