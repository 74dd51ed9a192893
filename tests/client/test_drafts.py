"""Drafts (messages written while the node is down) and the local checks of what a user
types: addresses and node URLs."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

from client.account import Account
from client.content import unpack
from client.drafts import Draft, Drafts, DraftSender
from client.errors import BadAddress, BadNodeUrl, Refused, UnknownAccount
from client.nodehttp import check_node_url
from client.records import AccountInfo
from client.routing import check_address
from client.store.memory import MemoryStore


def _draft(n: int) -> Draft:
    return Draft(os.urandom(16), "bob@example.test", f"text {n}", 1_700_000_000_000 + n, None, 0)


def test_drafts_keep_order_and_survive_reopen() -> None:
    store = MemoryStore()
    drafts = [_draft(n) for n in range(4)]
    for draft in drafts:
        Drafts(store).add(draft)
    Drafts(store).remove(drafts[1].draft_id)
    again = Drafts(store)
    assert again.pending() == [drafts[0], *drafts[2:]]
    assert len(again) == 3
    again.add(drafts[1])
    assert again.pending()[-1] == drafts[1]


def test_a_draft_is_removed_only_if_the_transaction_commits() -> None:
    store = MemoryStore()
    draft = _draft(0)
    Drafts(store).add(draft)

    def crash() -> None:
        with store.transaction():
            Drafts(store).remove(draft.draft_id)
            raise RuntimeError("crash before the outbox write commits")

    with pytest.raises(RuntimeError):
        crash()
    assert Drafts(store).pending() == [draft]


class FakeComposer:
    """Composes into a list, in a store transaction with ``also``; refuses as told."""

    def __init__(self, store: MemoryStore, refusals: dict[str, Exception]) -> None:
        self.store = store
        self.refusals = refusals
        self.composed: list[tuple[str, str]] = []

    async def compose(
        self, to: str, plaintext: bytes, ttl: int, *, also: Callable[[], None] | None = None
    ) -> list[bytes]:
        text = unpack(plaintext).text
        if text in self.refusals:
            raise self.refusals[text]
        with self.store.transaction():
            if also is not None:
                also()
            self.composed.append((to, text))
        return [os.urandom(16)]


async def test_draft_sender_composes_drops_refused_and_stops_at_a_passing_refusal() -> None:
    store = MemoryStore()
    drafts = Drafts(store)
    written = [_draft(n) for n in range(5)]
    for draft in written:
        drafts.add(draft)
    composer = FakeComposer(
        store,
        {"text 1": UnknownAccount("bob@example.test"), "text 3": Refused("limit.rate", "", 0)},
    )
    info = AccountInfo("http://127.0.0.1:1", b"doc", os.urandom(16), os.urandom(16))
    sender = DraftSender(store, drafts, composer, Account(store, info))
    await sender.send_all()
    assert sender.sent.is_set()
    assert composer.composed == [("bob@example.test", "text 0"), ("bob@example.test", "text 2")]
    assert [(d, type(e)) for d, e in sender.failed] == [(written[1], UnknownAccount)]
    assert drafts.pending() == written[3:]  # left for the next connection, in order


@pytest.mark.parametrize("address", ["bob@example.test", "a.b@x", "bob@localhost"])
def test_an_address_is_name_at_domain(address: str) -> None:
    assert check_address(address) == address


@pytest.mark.parametrize("address", ["bob", "@example.test", "bob@", "", "bo b@example.test"])
def test_anything_else_is_a_bad_address(address: str) -> None:
    with pytest.raises(BadAddress, match="NAME@DOMAIN"):
        check_address(address)


@pytest.mark.parametrize("url", ["http://127.0.0.1:7480", "https://relay.example/"])
def test_a_node_url_has_a_scheme_and_a_host(url: str) -> None:
    assert check_node_url(url) == url


@pytest.mark.parametrize(
    "url", ["127.0.0.1:7480", "localhost:7480", "relay.example", "ftp://x", "http://", "http://h:x"]
)
def test_a_node_url_without_a_scheme_or_host_is_refused(url: str) -> None:
    with pytest.raises(BadNodeUrl, match="http://HOST:PORT"):
        check_node_url(url)
