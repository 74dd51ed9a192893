"""Meeting legs in the ``CallLegs`` port in cluster mode (node/calls/meetlegs.py): added
with the secret's hash, renewed while their room holds them, deleted once ended; a store
that fails is logged, never raised into the join."""

from __future__ import annotations

from node.calls.legs import ALLOCATION_TIMEOUT_MS, Leg, secret_hash
from node.calls.meetlegs import MeetingLegMirror
from node.store import MemoryStore
from tests.node.calls.helpers import T0

REPLICA = b"r" * 16
LIVE = Leg(b"l" * 16, b"s" * 32, T0 + 1000)
ENDED = Leg(b"e" * 16, b"t" * 32, T0 + 1000)


async def test_meeting_legs_are_mirrored_renewed_and_deleted() -> None:
    store, now = MemoryStore(), [T0]
    mirror = MeetingLegMirror(
        store, REPLICA, lambda leg_id: leg_id == LIVE.leg_id, now_ms=lambda: now[0]
    )
    for leg in (LIVE, ENDED):
        await mirror.add(leg)
    record = await store.leg(LIVE.leg_id, T0)
    assert record is not None
    assert (record.replica, record.secret_hash) == (REPLICA, secret_hash(LIVE.leg_secret))
    now[0] = T0 + 500
    await mirror.round()
    renewed = await store.leg(LIVE.leg_id, T0 + 2000)
    assert renewed is not None
    assert renewed.expires == T0 + 500 + ALLOCATION_TIMEOUT_MS
    assert await store.leg(ENDED.leg_id, T0) is None
    assert mirror.mirrored == {LIVE.leg_id}


async def test_a_failing_store_is_logged_not_raised() -> None:
    store = MemoryStore()
    await store.aclose()
    mirror = MeetingLegMirror(store, REPLICA, lambda _: True, now_ms=lambda: T0)
    await mirror.add(LIVE)
    assert mirror.mirrored == set()
