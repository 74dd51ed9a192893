"""The placement rules' pure core (``node.store.placement``): bounds checked before any
write, and a table that does not keep expired holds forever."""

from __future__ import annotations

import pytest

from node.store import MediaAddress, PlacementInvalid
from node.store.placement import (
    MAX_TTL_MS,
    PRUNE_FLOOR,
    PlacementTable,
    expiry,
    media_address,
)

NOW = 1_700_000_000_000
REPLICA = b"R" * 16


def test_addresses_are_kept_canonical() -> None:
    assert media_address("10.0.0.7", 7482) == MediaAddress("10.0.0.7", 7482)
    assert media_address("FD00:0:0::A", 1) == MediaAddress("fd00::a", 1)
    assert media_address("::ffff:10.0.0.7", 7482) == MediaAddress("10.0.0.7", 7482)


def test_a_ttl_is_bounded_and_added_to_now() -> None:
    assert expiry(NOW, 1) == NOW + 1
    assert expiry(NOW, MAX_TTL_MS) == NOW + MAX_TTL_MS
    for ttl in (0, MAX_TTL_MS + 1, 1.5):
        with pytest.raises(PlacementInvalid) as refused:
            expiry(NOW, ttl)  # type: ignore[arg-type]
        assert refused.value.code == "placement.time"


def test_expired_holds_are_pruned_as_the_table_grows() -> None:
    table = PlacementTable()
    for i in range(4 * PRUNE_FLOOR):
        room = i.to_bytes(16, "big")
        assert table.place(room, REPLICA, NOW + i, 1) == REPLICA
    assert len(table._rooms) <= 2 * PRUNE_FLOOR  # the expired ones went
    assert table.holder((4 * PRUNE_FLOOR - 1).to_bytes(16, "big"), 4 * PRUNE_FLOOR - 1 + NOW)
