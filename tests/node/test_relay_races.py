"""Interleavings in the Relay's shared caches and hand-overs, forced with store wrappers."""

from __future__ import annotations

import pytest
import trio

from node import accounts, errors
from node.errors import NodeError
from node.relay import Caller, Relay
from node.store import MemoryStore
from tests.node.harness import make_config, server_keys

ADDRESS = "bob@relay.test"
CALLER = Caller(ADDRESS, 1, b"M" * 16)


class HeldVerifierStore(MemoryStore):
    """``token_verifier`` reads the value, then (while ``hold``) waits for ``release``
    before returning it: a read that straddles a concurrent write."""

    def __init__(self) -> None:
        super().__init__()
        self.hold = False
        self.read = trio.Event()
        self.release = trio.Event()

    async def token_verifier(self, address: str) -> bytes | None:
        value = await super().token_verifier(address)
        if self.hold:
            self.read.set()
            await self.release.wait()
        return value


def make(store: MemoryStore) -> Relay:
    config = make_config()
    return Relay(config=config, store=store, keys=server_keys(config.suite))


async def test_a_verifier_read_during_set_token_is_not_cached_stale() -> None:
    store = HeldVerifierStore()
    relay = make(store)
    old, new = b"o" * 16, b"n" * 16
    await store.set_token_verifier(ADDRESS, accounts.token_verifier(old))
    store.hold = True
    outcome: list[str] = []

    async def check_old_token() -> None:
        try:
            await relay._check_token(ADDRESS, old)
            outcome.append("ok")
        except NodeError as exc:
            outcome.append(exc.code)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(check_old_token)
        await store.read.wait()  # the read has the old verifier in hand
        await relay.set_token(CALLER, accounts.token_verifier(new))
        store.release.set()
    assert outcome == ["ok"]  # it began before the change: either answer is fine
    store.hold = False
    await relay._check_token(ADDRESS, new)  # the stale verifier was not cached
    with pytest.raises(NodeError) as refused:
        await relay._check_token(ADDRESS, old)
    assert refused.value.code == errors.SEND_BAD_TOKEN
