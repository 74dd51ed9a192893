"""The :class:`~node.store.ports.Accounts` contract: invites, registration, devices,
mailbox owners, delivery-token verifiers and introductions (every backend alike)."""

from __future__ import annotations

from node.store import (
    Accounts,
    Storage,
)
from tests.node.store.contract import (
    HOUR,
    MAILBOX,
    NOW,
    OTHER_MAILBOX,
    device,
    registered,
)


async def test_an_invite_registers_once(storage: Storage) -> None:
    await storage.accounts.add_invite(b"h1", "alice", NOW + HOUR)
    assert await storage.accounts.register(b"h1", "alice", device(), NOW)
    other = device(mailbox=OTHER_MAILBOX)
    assert not await storage.accounts.register(b"h1", "alice", other, NOW)
    assert (await storage.maintenance.stats())["invites"] == 0


async def test_an_unknown_invite_registers_nothing(accounts: Accounts) -> None:
    assert not await accounts.register(b"nope", "alice", device(), NOW)
    assert await accounts.device("alice@a.example", 1) is None


async def test_an_invite_expires_at_its_expiry(accounts: Accounts) -> None:
    await accounts.add_invite(b"h1", "alice", NOW)
    assert not await accounts.register(b"h1", "alice", device(), NOW)
    await accounts.add_invite(b"h2", "alice", NOW + 1)
    assert await accounts.register(b"h2", "alice", device(), NOW)


async def test_an_invite_for_another_name_is_refused_and_not_spent(accounts: Accounts) -> None:
    await accounts.add_invite(b"h1", "bob", NOW + HOUR)
    assert not await accounts.register(b"h1", "alice", device(), NOW)
    assert await accounts.device("alice@a.example", 1) is None
    assert await accounts.register(b"h1", "bob", device("bob@a.example"), NOW)


async def test_a_taken_address_is_refused_and_the_invite_kept(storage: Storage) -> None:
    await registered(storage.accounts, "alice")
    await storage.accounts.add_invite(b"h2", "alice", NOW + HOUR)
    again = device("alice@a.example", 2, OTHER_MAILBOX)
    assert not await storage.accounts.register(b"h2", "alice", again, NOW)
    assert await storage.accounts.device("alice@a.example", 2) is None
    assert (await storage.maintenance.stats())["invites"] == 1


async def test_a_taken_mailbox_is_refused(accounts: Accounts) -> None:
    await registered(accounts, "alice", MAILBOX)
    await accounts.add_invite(b"h2", "bob", NOW + HOUR)
    assert not await accounts.register(b"h2", "bob", device("bob@a.example", 1, MAILBOX), NOW)
    assert await accounts.devices("bob@a.example") == []


async def test_devices_are_found_by_address_and_by_mailbox(accounts: Accounts) -> None:
    alice = await registered(accounts, "alice", MAILBOX)
    bob = await registered(accounts, "bob", OTHER_MAILBOX)
    assert await accounts.device("alice@a.example", 1) == alice
    assert await accounts.device("alice@a.example", 2) is None
    assert await accounts.devices("alice@a.example") == [alice]
    assert await accounts.devices("carol@a.example") == []
    assert await accounts.mailbox_owner(OTHER_MAILBOX) == bob
    assert await accounts.mailbox_owner(b"\x00" * 16) is None


async def test_has_account_by_name_alone(accounts: Accounts) -> None:
    """``admin invite`` refuses a name with an account (it does not know the domain)."""
    assert not await accounts.has_account("alice")
    await accounts.add_invite(b"h1", "alice", NOW + HOUR)
    assert not await accounts.has_account("alice")  # an invite is no account
    await registered(accounts, "a_b.c-d")
    await registered(accounts, "alice", OTHER_MAILBOX)
    assert await accounts.has_account("alice")
    assert await accounts.has_account("a_b.c-d")
    assert not await accounts.has_account("alic")  # a prefix is another name
    assert not await accounts.has_account("axb.c-d")  # "_" and "." are no wildcards
    assert not await accounts.has_account("a")


async def test_token_verifier_is_set_and_replaced(accounts: Accounts) -> None:
    assert await accounts.token_verifier("alice@a.example") is None
    await accounts.set_token_verifier("alice@a.example", b"v1" * 16)
    await accounts.set_token_verifier("bob@a.example", b"w1" * 16)
    await accounts.set_token_verifier("alice@a.example", b"v2" * 16)
    assert await accounts.token_verifier("alice@a.example") == b"v2" * 16
    assert await accounts.token_verifier("bob@a.example") == b"w1" * 16


async def test_introductions_are_refused_until_accepted_and_per_address(accounts: Accounts) -> None:
    assert await accounts.accepts_introductions("alice@a.example") is False
    await accounts.set_accepts_introductions("alice@a.example", True)
    assert await accounts.accepts_introductions("alice@a.example") is True
    assert await accounts.accepts_introductions("bob@a.example") is False
    await accounts.set_accepts_introductions("alice@a.example", False)
    assert await accounts.accepts_introductions("alice@a.example") is False
    await accounts.set_accepts_introductions("bob@a.example", True)
    assert await accounts.accepts_introductions("bob@a.example") is True
    assert await accounts.accepts_introductions("alice@a.example") is False
