"""The outbox pump's SendBatch: queued Sends go together, each settled by its own result."""

from __future__ import annotations

import os
from typing import Any

import pytest
import trio
import trio.lowlevel
import trio.testing

from client.entropy import SYSTEM_ENTROPY
from client.errors import Refused
from client.identity import Identity
from client.net import AuthLogin, Connection, Link
from client.outbox import BATCH_BYTES, Outbox, OutboxItem, OutboxPump
from client.store.memory import MemoryStore
from suites import get_suite
from tests.client.netfakes import FakeNode
from wire.relay import Error, Send, SendBatch, Sent, SentBatch


def _item(n: int, token: bytes | None = b"\x05" * 16, size: int = 64) -> OutboxItem:
    return OutboxItem(
        address="bob@example.test",
        device=1,
        mailbox=b"\x02" * 16,
        eid=os.urandom(16),
        token=token,
        ttl=0,
        body=f"body {n}".encode() + os.urandom(size),
        domain="",
    )


class BatchNode:
    """A request function: answers each Send of a batch by ``codes`` (an Error code, or
    None for Sent), in order; single requests get Sent."""

    def __init__(self, codes: list[str | None] | None = None, refuse: str | None = None) -> None:
        self.codes = codes or []
        self.refuse = refuse
        self.calls: list[Any] = []

    async def __call__(self, frame: Any) -> Any:
        self.calls.append(frame)
        await trio.lowlevel.checkpoint()
        if not isinstance(frame, SendBatch):
            return Sent(id=0, eid=frame.eid, duplicate=False)
        if self.refuse is not None:
            raise Refused(self.refuse, "what is this")
        results: list[Sent | Error] = []
        for send in frame.sends:
            code = self.codes.pop(0) if self.codes else None
            if code is None:
                results.append(Sent(send.id, send.eid, False))
            else:
                results.append(Error(send.id, code, "no", 1000))
        return SentBatch(id=0, results=tuple(results))


def _outbox(items: list[OutboxItem]) -> Outbox:
    outbox = Outbox(MemoryStore())
    for item in items:
        outbox.add(item)
    return outbox


async def test_queued_sends_go_in_one_batch_in_order() -> None:
    items = [_item(n) for n in range(5)]
    outbox = _outbox(items)
    node = BatchNode()
    pump = OutboxPump(outbox, node, batch=8)
    await pump.flush()
    (batch,) = node.calls
    assert isinstance(batch, SendBatch)
    assert [s.eid for s in batch.sends] == [i.eid for i in items]
    assert len({s.id for s in batch.sends}) == 5
    assert outbox.pending() == []
    assert await pump.wait(i.eid for i in items) == {}


async def test_each_result_settles_its_own_item(autojump_clock: trio.testing.MockClock) -> None:
    items = [_item(n) for n in range(4)]
    outbox = _outbox(items)
    node = BatchNode([None, "send.bad_token", "limit.rate", None])
    pump = OutboxPump(outbox, node, batch=8)
    await pump.flush()
    failed = await pump.wait(i.eid for i in items)
    assert list(failed) == [items[1].eid]
    assert failed[items[1].eid].node_code == "send.bad_token"
    # the rate-limited one went again, alone, and was stored
    assert [type(c) for c in node.calls] == [SendBatch, Send]
    assert node.calls[1].eid == items[2].eid
    assert outbox.pending() == []


async def test_introductions_large_bodies_and_the_limit_split_batches() -> None:
    items = [
        _item(0),
        _item(1),
        _item(2, token=None),  # an Introduce goes alone
        _item(3),
        _item(4, size=BATCH_BYTES),  # too large to join
        _item(5),
        _item(6),
        _item(7),
    ]
    node = BatchNode()
    await OutboxPump(_outbox(items), node, batch=2).flush()
    shapes = [[s.eid for s in c.sends] if isinstance(c, SendBatch) else [c.eid] for c in node.calls]
    e = [i.eid for i in items]
    assert shapes == [[e[0], e[1]], [e[2]], [e[3]], [e[4]], [e[5], e[6]], [e[7]]]


async def test_a_node_without_batches_gets_single_sends() -> None:
    items = [_item(n) for n in range(3)]
    outbox = _outbox(items)
    node = BatchNode(refuse="proto.malformed")
    pump = OutboxPump(outbox, node, batch=8)
    await pump.flush()
    assert [type(c) for c in node.calls] == [SendBatch, Send, Send, Send]
    assert outbox.pending() == []
    more = [_item(n) for n in range(3, 5)]
    for item in more:
        outbox.add(item)
    await pump.flush()
    assert [type(c) for c in node.calls[4:]] == [Send, Send]  # no batch tried again


async def test_without_batch_every_item_goes_alone() -> None:
    items = [_item(n) for n in range(3)]
    node = BatchNode()
    await OutboxPump(_outbox(items), node).flush()
    assert [type(c) for c in node.calls] == [Send, Send, Send]


# --- over a Link, against the fake node --------------------------------------------------------


@pytest.mark.parametrize("node_batches", [True, False])
async def test_a_link_delivers_a_batch_or_falls_back(
    node_batches: bool, autojump_clock: trio.testing.MockClock
) -> None:
    """A node that knows SendBatch gets one; one that does not answers ``Error{id = 0}``,
    and the same envelopes then go one by one."""
    node = FakeNode(batches=node_batches)
    outbox = Outbox(MemoryStore())
    items = [_item(n) for n in range(4)]
    for item in items:
        outbox.add(item)
    identity = Identity.generate(get_suite("xwing"), SYSTEM_ENTROPY)

    async def on_connect(conn: Connection, response: object) -> None:
        pump.notify()

    link = Link(node.connector, AuthLogin(identity, "alice@example.test", 1), on_connect)
    pump = OutboxPump(outbox, link.request, batch=8)
    async with trio.open_nursery() as nursery:
        await nursery.start(link.run)
        nursery.start_soon(pump.run)
        with trio.fail_after(60):
            assert await pump.wait(i.eid for i in items) == {}
        nursery.cancel_scope.cancel()
    assert set(node.stored) == {i.eid for i in items}
    kinds = [type(f) for f in node.received if isinstance(f, Send | SendBatch)]
    assert kinds == ([SendBatch] if node_batches else [SendBatch, Send, Send, Send, Send])
