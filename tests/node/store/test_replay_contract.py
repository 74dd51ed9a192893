"""The :class:`~node.store.ports.ReplayGuard` contract: transaction results and request
nonces of peer domains, remembered until their expiry (every backend alike)."""

from __future__ import annotations

import os

from node.store import Storage
from tests.node.store.contract import HOUR, NOW


async def test_transaction_results_and_nonces_are_remembered_until_expiry(storage: Storage) -> None:
    assert await storage.replay.txn_result("a.example", b"T" * 16) is None
    await storage.replay.record_txn("a.example", b"T" * 16, b"answer", NOW + HOUR)
    assert await storage.replay.txn_result("a.example", b"T" * 16) == b"answer"
    assert await storage.replay.txn_result("c.example", b"T" * 16) is None
    nonce = os.urandom(16)
    assert await storage.replay.remember_nonce("a.example", nonce, NOW + HOUR)
    assert not await storage.replay.remember_nonce("a.example", nonce, NOW + HOUR)
    assert await storage.replay.remember_nonce("c.example", nonce, NOW + HOUR)
    await storage.maintenance.sweep(NOW + 2 * HOUR)
    assert await storage.replay.txn_result("a.example", b"T" * 16) is None
    assert await storage.replay.remember_nonce("a.example", nonce, NOW + 3 * HOUR)
