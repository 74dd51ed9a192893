"""The :class:`~node.store.ports.GroupTokens` contract (issue 20): group token verifiers
made live, replaced and revoked per account, bounded per account (every backend alike)."""

from __future__ import annotations

import os

import pytest

from node.store import GroupTokens, Storage

ALICE = "alice@a.example"
BOB = "bob@a.example"
LIMIT = 4


@pytest.fixture
def group_tokens(storage: Storage) -> GroupTokens:
    return storage.group_tokens


def verifier() -> bytes:
    return os.urandom(32)


async def test_a_put_verifier_is_live_for_its_address_only(group_tokens: GroupTokens) -> None:
    v = verifier()
    assert not await group_tokens.has_group_token(ALICE, v)
    assert await group_tokens.put_group_token(ALICE, v, None, LIMIT)
    assert await group_tokens.has_group_token(ALICE, v)
    assert not await group_tokens.has_group_token(BOB, v)
    assert not await group_tokens.has_group_token(ALICE, verifier())
    assert await group_tokens.count_group_tokens(ALICE) == 1
    assert await group_tokens.count_group_tokens(BOB) == 0


async def test_putting_a_live_verifier_again_changes_nothing(group_tokens: GroupTokens) -> None:
    v = verifier()
    assert await group_tokens.put_group_token(ALICE, v, None, LIMIT)
    assert await group_tokens.put_group_token(ALICE, v, None, LIMIT)
    assert await group_tokens.count_group_tokens(ALICE) == 1


async def test_a_revoked_verifier_is_no_longer_live(group_tokens: GroupTokens) -> None:
    v, w = verifier(), verifier()
    await group_tokens.put_group_token(ALICE, v, None, LIMIT)
    await group_tokens.put_group_token(ALICE, w, None, LIMIT)
    assert await group_tokens.revoke_group_token(ALICE, v)
    assert not await group_tokens.has_group_token(ALICE, v)
    assert await group_tokens.has_group_token(ALICE, w)
    assert not await group_tokens.revoke_group_token(ALICE, v)
    assert not await group_tokens.revoke_group_token(BOB, w)
    assert await group_tokens.has_group_token(ALICE, w)
    assert await group_tokens.count_group_tokens(ALICE) == 1


async def test_a_put_replaces_the_old_verifier_at_once(group_tokens: GroupTokens) -> None:
    old, new = verifier(), verifier()
    await group_tokens.put_group_token(ALICE, old, None, LIMIT)
    assert await group_tokens.put_group_token(ALICE, new, old, LIMIT)
    assert not await group_tokens.has_group_token(ALICE, old)
    assert await group_tokens.has_group_token(ALICE, new)
    assert await group_tokens.count_group_tokens(ALICE) == 1
    # replacing one that is not live only adds
    assert await group_tokens.put_group_token(ALICE, verifier(), verifier(), LIMIT)
    assert await group_tokens.count_group_tokens(ALICE) == 2


async def test_the_limit_bounds_the_live_verifiers(group_tokens: GroupTokens) -> None:
    live = [verifier() for _ in range(LIMIT)]
    for v in live:
        assert await group_tokens.put_group_token(ALICE, v, None, LIMIT)
    extra = verifier()
    assert not await group_tokens.put_group_token(ALICE, extra, None, LIMIT)
    assert not await group_tokens.has_group_token(ALICE, extra)
    assert await group_tokens.count_group_tokens(ALICE) == LIMIT
    # a replacement keeps the count, so it passes at the limit; re-putting a live one too
    assert await group_tokens.put_group_token(ALICE, extra, live[0], LIMIT)
    assert await group_tokens.put_group_token(ALICE, live[1], None, LIMIT)
    assert not await group_tokens.has_group_token(ALICE, live[0])
    assert await group_tokens.count_group_tokens(ALICE) == LIMIT
    # another account has its own bound
    assert await group_tokens.put_group_token(BOB, verifier(), None, LIMIT)
