"""Group uploads: one per destination domain (a ``SendShared`` at home, a many-recipient
routing layer for another domain, opened here with the node side's own code), durable
``OutboxShared`` items beside the one-to-one ones, and the pump's handling of
``SentShared``."""

from __future__ import annotations

import os
import time
from typing import Any

import trio
import trio.lowlevel
import trio.testing

from client.entropy import SYSTEM_ENTROPY
from client.groupnet import uploads
from client.outbox import Outbox, OutboxItem, OutboxPump, OutboxShared
from client.routing import seal_for_domain
from client.store.memory import MemoryStore
from federation.routing import open_layer
from node.keys import ServerKeys, generate
from suites import get_suite
from wire.relay import Forward, SendShared, SentShared, SharedRecipient
from wire.server import ServerKeyDocument

HOME = "alpha.test"
OTHER = "bravo.test"


def _doc(domain: str) -> tuple[ServerKeys, ServerKeyDocument]:
    keys = generate(get_suite("xwing"))
    now = int(time.time() * 1000)
    return keys, keys.key_document(domain, ("http://127.0.0.1:1",), now, 86_400)


def _members(n: int) -> list[tuple[bytes, bytes | None]]:
    return [(os.urandom(16), None if i % 5 == 0 else os.urandom(16)) for i in range(n)]


def test_one_upload_per_domain_with_every_recipient() -> None:
    keys, doc = _doc(OTHER)
    home, other = _members(7), _members(300)
    body = os.urandom(4096)
    now = int(time.time() * 1000)
    items = list(
        uploads(HOME, {HOME: home, OTHER: other}, {OTHER: doc}, body, 60, now, SYSTEM_ENTROPY)
    )
    assert [i.domain for i in items] == ["", OTHER, OTHER]  # 300 > 256: the layer splits
    assert len({i.eid for i in items}) == 3
    shared = items[0].request()
    assert isinstance(shared, SendShared)
    assert shared.body == body
    assert [(r.mailbox, r.token) for r in shared.recipients] == home
    opened = []
    for item in items[1:]:
        frame = item.request()
        assert isinstance(frame, Forward)
        assert body not in frame.layer  # sealed to the destination
        layer = open_layer(OTHER, keys.kem_private, frame.layer)
        assert layer.body == body
        assert layer.eid == item.eid
        opened += [(r.mailbox, r.token) for r in layer.recipients]
    assert opened == other


def test_seal_for_domain_keeps_the_one_recipient_call() -> None:
    keys, doc = _doc(OTHER)
    now = int(time.time() * 1000)
    one = seal_for_domain(
        doc, now, mailbox=b"\x01" * 16, token=None, eid=b"\x02" * 16, ttl=5, body=b"x"
    )
    layer = open_layer(OTHER, keys.kem_private, one)
    assert [(r.mailbox, r.token) for r in layer.recipients] == [(b"\x01" * 16, None)]


def _shared(n: int) -> OutboxShared:
    return OutboxShared(
        eid=os.urandom(16),
        ttl=0,
        recipients=tuple(SharedRecipient(mailbox=m, token=t) for m, t in _members(n)),
        body=os.urandom(1024),
        domain="",
    )


def _single() -> OutboxItem:
    return OutboxItem("bob@alpha.test", 1, b"\x02" * 16, os.urandom(16), None, 0, b"b", "")


def test_the_outbox_holds_both_kinds_in_order() -> None:
    store = MemoryStore()
    outbox = Outbox(store)
    items = [_single(), _shared(3), _single()]
    for item in items:
        outbox.add(item)
    assert Outbox(store).pending() == items


class Scripted:
    """Answers each request with the next scripted ``results`` tuple."""

    def __init__(self, script: list[tuple[str, ...]]) -> None:
        self.script = script
        self.calls: list[Any] = []

    async def __call__(self, frame: Any) -> SentShared:
        self.calls.append(frame)
        await trio.lowlevel.checkpoint()
        return SentShared(id=1, eid=frame.eid, results=self.script.pop(0))


async def test_a_rate_limited_recipient_resends_the_same_upload(
    autojump_clock: trio.testing.MockClock,
) -> None:
    outbox = Outbox(MemoryStore())
    item = _shared(2)
    outbox.add(item)
    node = Scripted([("", "limit.rate"), ("duplicate", "")])
    pump = OutboxPump(outbox, node)
    await pump.flush()
    assert len(node.calls) == 2
    assert node.calls[0] == node.calls[1]  # same eid, same bytes
    assert outbox.pending() == []
    assert pump.sent == {item.eid}
    assert pump.partial == {}


async def test_a_recipient_refused_for_good_is_reported() -> None:
    outbox = Outbox(MemoryStore())
    item = _shared(2)
    outbox.add(item)
    pump = OutboxPump(outbox, Scripted([("", "send.bad_token")]))
    await pump.flush()
    assert await pump.wait([item.eid]) == {}
    assert pump.partial == {item.eid: ("", "send.bad_token")}
