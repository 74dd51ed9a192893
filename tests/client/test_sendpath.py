"""client.sendpath without a network and without trio: the pure plan (targets -> the
envelopes to write), the outbox items it becomes, and the one-transaction write; and the
pure plan of a group membership change (client.groupnet.flows)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from client.entropy import SYSTEM_ENTROPY
from client.groupnet.flows import by_address, change_plan, to_all
from client.outbox import Outbox, OutboxPump
from client.records import Contact
from client.sendpath import (
    Pairwise,
    PlannedEnvelope,
    SendPath,
    domain_of,
    outbox_item,
    plan,
    remote_domains,
)
from client.session import Device
from client.store.memory import MemoryStore
from federation.routing import open_layer
from node.keys import generate
from suites import get_suite
from tests.client.pairs import Domain, keyring_for
from wire.relay import Forward, Introduce, Send
from wire.server import ServerKeyDocument

HOME = "alpha.test"
OTHER = "bravo.test"
M1, M2, M3 = bytes([1]) * 16, bytes([2]) * 16, bytes([3]) * 16
TOKEN = bytes([9]) * 16


# --- the plan --------------------------------------------------------------------------------


def test_plan_gives_one_envelope_per_target_device_in_order() -> None:
    targets = {
        f"bob@{HOME}": {2: Contact(M2, TOKEN), 1: Contact(M1, None)},
        f"carol@{OTHER.upper()}": {7: Contact(M3, TOKEN)},
    }
    planned = plan(
        [Pairwise(f"bob@{HOME}", b"hi"), Pairwise(f"carol@{OTHER.upper()}", b"yo")],
        targets,
        HOME.upper(),
    )
    assert planned == [
        PlannedEnvelope(f"bob@{HOME}", 2, Contact(M2, TOKEN), b"hi", ""),
        PlannedEnvelope(f"bob@{HOME}", 1, Contact(M1, None), b"hi", ""),
        PlannedEnvelope(f"carol@{OTHER.upper()}", 7, Contact(M3, TOKEN), b"yo", OTHER),
    ]


def test_plan_keeps_to_the_devices_named() -> None:
    targets = {f"bob@{HOME}": {1: Contact(M1, None), 2: Contact(M2, None), 3: Contact(M3, None)}}
    planned = plan([Pairwise(f"bob@{HOME}", b"x", frozenset({3, 1}))], targets, HOME)
    assert [p.device for p in planned] == [1, 3]
    assert plan([Pairwise(f"bob@{HOME}", b"x", frozenset())], targets, HOME) == []


def test_remote_domains_are_the_other_domains_once_each() -> None:
    addresses = [f"a@{OTHER}", f"b@{HOME}", f"c@{OTHER.upper()}", "d@gamma.test"]
    assert remote_domains((domain_of(a) for a in addresses), HOME.upper()) == [
        OTHER,
        "gamma.test",
    ]


def test_outbox_item_frames() -> None:
    home_token = PlannedEnvelope(f"bob@{HOME}", 1, Contact(M1, TOKEN), b"p", "")
    home_intro = PlannedEnvelope(f"bob@{HOME}", 2, Contact(M2, None), b"p", "")
    remote = PlannedEnvelope(f"carol@{OTHER}", 1, Contact(M3, TOKEN), b"p", OTHER)
    eid = bytes(16)
    assert outbox_item(home_token, eid, 60, b"body").request() == Send(
        id=0, mailbox=M1, eid=eid, token=TOKEN, ttl=60, body=b"body"
    )
    assert outbox_item(home_intro, eid, 0, b"body").request() == Introduce(
        id=0, mailbox=M2, eid=eid, ttl=0, body=b"body"
    )
    assert outbox_item(remote, eid, 0, b"layer").request() == Forward(
        id=0, domain=OTHER, eid=eid, ttl=0, layer=b"layer"
    )


# --- the write -------------------------------------------------------------------------------


class CountingStore(MemoryStore):
    """A memory store that counts its outermost transactions."""

    def __init__(self) -> None:
        super().__init__()
        self.transactions = 0
        self._depth = 0

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self.transactions += self._depth == 0
        self._depth += 1
        try:
            with super().transaction():
                yield
        finally:
            self._depth -= 1


class NoDocuments:
    async def document(self, domain: str) -> ServerKeyDocument:
        raise AssertionError("the write fetches nothing")


async def _never(request: Any) -> Any:
    raise AssertionError("the write sends nothing")


def _sendpath(store: CountingStore, device: Device) -> tuple[SendPath, Outbox]:
    outbox = Outbox(store)
    path = SendPath(
        store,
        device,
        outbox=outbox,
        pump=OutboxPump(outbox, _never),
        request=_never,
        documents=NoDocuments(),
        entropy=SYSTEM_ENTROPY,
        clock=time.time,
    )
    return path, outbox


@pytest.fixture
def world() -> tuple[Device, Device, Device]:
    """alice@alpha with sessions to bob@alpha (devices 1 and 2) and carol@bravo."""
    alpha, bravo = Domain.create("xwing", HOME), Domain.create("xwing", OTHER)
    keyring = keyring_for(alpha, bravo)
    alice = alpha.device("alice", keyring)
    bob1 = alpha.device("bob", keyring)
    bob2 = alpha.device("bob", keyring, device_id=2, identity=bob1.identity)
    carol = bravo.device("carol", keyring)
    for peer in (bob1, bob2, carol):
        alice.start_session(peer.pool.bundle(peer.address, peer.device_id))
    return alice, bob1, carol


def test_write_queues_every_envelope_in_one_transaction(
    world: tuple[Device, Device, Device],
) -> None:
    alice, bob1, carol = world
    keys = generate(get_suite("xwing"))
    doc = keys.key_document(OTHER, ("http://127.0.0.1:1",), int(time.time() * 1000), 86_400)
    store = CountingStore()
    path, outbox = _sendpath(store, alice)
    targets = {
        bob1.address: {1: Contact(M1, TOKEN), 2: Contact(M2, None)},
        carol.address: {1: Contact(M3, TOKEN)},
    }
    messages = [Pairwise(bob1.address, b"to bob"), Pairwise(carol.address, b"to carol")]
    saved = []
    eids = path.write(plan(messages, targets, HOME), 30, {OTHER: doc}, also=lambda: saved.append(1))
    assert store.transactions == 1
    assert saved == [1]
    items = outbox.pending()
    assert [item.eid for item in items] == eids
    assert len(set(eids)) == 3
    home, intro, remote = (item.request() for item in items)
    assert isinstance(home, Send)
    assert isinstance(intro, Introduce)
    assert isinstance(remote, Forward)
    assert bob1.decrypt(home.body).plaintext == b"to bob"
    layer = open_layer(OTHER, keys.kem_private, remote.layer)
    assert (layer.eid, layer.ttl) == (eids[2], 30)
    assert [(r.mailbox, r.token) for r in layer.recipients] == [(M3, TOKEN)]
    assert carol.decrypt(layer.body).plaintext == b"to carol"


def test_a_failing_write_leaves_nothing(world: tuple[Device, Device, Device]) -> None:
    alice, bob1, _ = world
    store = CountingStore()
    path, outbox = _sendpath(store, alice)

    def fail() -> None:
        raise RuntimeError("the caller's own write failed")

    targets = {bob1.address: {1: Contact(M1, TOKEN)}}
    with pytest.raises(RuntimeError):
        path.write(plan([Pairwise(bob1.address, b"x")], targets, HOME), 0, {}, also=fail)
    assert len(outbox) == 0


# --- a group change ----------------------------------------------------------------------


def test_by_address_and_to_all_skip_this_device() -> None:
    me = ("me@a", 1)
    devices = [("x@a", 1), ("me@a", 1), ("me@a", 2), ("x@a", 3)]
    assert by_address(devices, me) == {"x@a": [1, 3], "me@a": [2]}
    assert to_all(devices, me, b"n") == [
        Pairwise("x@a", b"n", frozenset({1, 3})),
        Pairwise("me@a", b"n", frozenset({2})),
    ]


def test_change_plan_sends_the_key_to_the_remaining_members_only() -> None:
    me = ("admin@a", 1)
    before = {me, ("stay@a", 1), ("stay@a", 2), ("gone@b", 1)}
    after = {me, ("stay@a", 1), ("stay@a", 2), ("new@b", 4)}
    notes = [(b"add", b"add+key"), (b"remove", b"remove+key")]
    assert change_plan(before, after, me, notes, b"welcome+key") == [
        Pairwise("gone@b", b"add", frozenset({1})),
        Pairwise("gone@b", b"remove", frozenset({1})),
        Pairwise("stay@a", b"add", frozenset({1, 2})),
        Pairwise("stay@a", b"remove+key", frozenset({1, 2})),
        Pairwise("new@b", b"welcome+key", frozenset({4})),
    ]
