"""Interleavings in the Relay's shared caches and hand-overs, forced with store wrappers."""

from __future__ import annotations

import pytest
import trio

from node import accounts, errors
from node.errors import NodeError
from node.relay import Caller, Relay
from node.store import DeviceRecord, MemoryStore, StoredEnvelope
from tests.node.harness import make_config, server_keys
from wire.relay import Send, Sent

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
            await relay.check_token(ADDRESS, old)
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
    await relay.check_token(ADDRESS, new)  # the stale verifier was not cached
    with pytest.raises(NodeError) as refused:
        await relay.check_token(ADDRESS, old)
    assert refused.value.code == errors.SEND_BAD_TOKEN


class SlowCommitStore(MemoryStore):
    """``enqueue`` commits, then waits for ``release`` before returning (as a group commit
    waits for its fsync): a cancellation arriving meanwhile hits a committed envelope."""

    def __init__(self) -> None:
        super().__init__()
        self.committed = trio.Event()
        self.release = trio.Event()

    async def enqueue(self, envelope: StoredEnvelope) -> tuple[bool, int]:
        result = await super().enqueue(envelope)
        self.committed.set()
        await self.release.wait()
        return result


class Receiver:
    def __init__(self) -> None:
        self.offered: list[StoredEnvelope] = []

    def offer(self, envelope: StoredEnvelope) -> None:
        self.offered.append(envelope)

    def supersede(self) -> None:
        raise AssertionError("not superseded")


async def test_a_cancelled_send_still_hands_its_committed_envelope_to_the_recipient() -> None:
    store = SlowCommitStore()
    relay = make(store)
    await store.add_invite(b"code", "bob", 2**62)
    assert await store.register(
        b"code", "bob", DeviceRecord(ADDRESS, 1, b"id", CALLER.mailbox, 0), 0
    )
    token = b"t" * 16
    await relay.set_token(CALLER, accounts.token_verifier(token))
    receiver = Receiver()
    relay.hub.attach(CALLER.mailbox, receiver)
    results: list[object] = []

    async def sender(scope: trio.CancelScope) -> None:
        with scope:
            results.append(
                await relay.send(Send(1, CALLER.mailbox, b"e" * 16, token, 60, b"x"), None)
            )

    scope = trio.CancelScope()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(sender, scope)
        await store.committed.wait()
        scope.cancel()  # the sender's connection went away
        await trio.sleep(0.01)
        store.release.set()
    assert [e.eid for e in receiver.offered] == [b"e" * 16]
    assert results == [Sent(1, b"e" * 16, False)]
