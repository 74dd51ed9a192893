"""The durable outbox and its pump: order, retries with the same eid and bytes, refusals."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import pytest
import trio
import trio.lowlevel
import trio.testing

from client.errors import NetworkError, Refused
from client.outbox import Outbox, OutboxItem, OutboxPump, unattributed
from client.store.memory import MemoryStore
from wire.relay import Forward, Introduce, Send, SendBatch, SendShared, Sent, SharedRecipient


def _item(n: int, token: bytes | None = b"\x05" * 16) -> OutboxItem:
    return OutboxItem(
        address="bob@example.test",
        device=1,
        mailbox=b"\x02" * 16,
        eid=os.urandom(16),
        token=token,
        ttl=0,
        body=f"body {n}".encode() + os.urandom(64),
        domain="",
    )


def test_outbox_keeps_order_and_survives_reopen() -> None:
    store = MemoryStore()
    items = [_item(n) for n in range(5)]
    outbox = Outbox(store)
    for item in items:
        outbox.add(item)
    outbox.remove(items[1].eid)
    again = Outbox(store)  # a restarted client over the same store
    assert again.pending() == [items[0], *items[2:]]
    assert len(again) == 4
    again.add(items[1])
    assert again.pending()[-1] == items[1]


def test_outbox_write_is_part_of_the_callers_transaction() -> None:
    store = MemoryStore()
    outbox = Outbox(store)

    def crash() -> None:
        with store.transaction():
            outbox.add(_item(0))
            raise RuntimeError("crash before commit")

    with pytest.raises(RuntimeError):
        crash()
    assert outbox.pending() == []


def test_request_frames() -> None:
    with_token = _item(0)
    frame = with_token.request()
    assert isinstance(frame, Send)
    assert (frame.eid, frame.body, frame.token) == (with_token.eid, with_token.body, b"\x05" * 16)
    intro = _item(1, token=None).request()
    assert isinstance(intro, Introduce)


class ScriptedNode:
    """A request function: answers Sent, or follows ``script`` (one entry per call)."""

    def __init__(self, script: list[Any] | None = None) -> None:
        self.script = script or []
        self.calls: list[Send | Introduce] = []

    async def __call__(self, frame: Send | Introduce) -> Any:
        self.calls.append(frame)
        await trio.lowlevel.checkpoint()
        action = self.script.pop(0) if self.script else "ok"
        if isinstance(action, Exception):
            raise action
        return Sent(id=0, eid=frame.eid, duplicate=action == "dup")


async def test_pump_sends_in_order_and_empties_the_outbox() -> None:
    outbox = Outbox(MemoryStore())
    items = [_item(n) for n in range(3)]
    for item in items:
        outbox.add(item)
    node = ScriptedNode()
    pump = OutboxPump(outbox, node)
    await pump.flush()
    assert [c.eid for c in node.calls] == [i.eid for i in items]
    assert outbox.pending() == []
    assert await pump.wait(i.eid for i in items) == {}


async def test_broken_link_keeps_the_item_and_the_retry_is_identical() -> None:
    outbox = Outbox(MemoryStore())
    item = _item(0)
    outbox.add(item)
    node = ScriptedNode([NetworkError("gone")])
    pump = OutboxPump(outbox, node)
    with pytest.raises(NetworkError):
        await pump.flush()
    assert outbox.pending() == [item]  # not lost
    await pump.flush()  # after reconnecting
    first, second = node.calls
    assert (first.eid, first.body) == (second.eid, second.body) == (item.eid, item.body)
    assert outbox.pending() == []


async def test_duplicate_answer_settles_the_item() -> None:
    outbox = Outbox(MemoryStore())
    item = _item(0)
    outbox.add(item)
    pump = OutboxPump(outbox, ScriptedNode(["dup"]))
    await pump.flush()
    assert outbox.pending() == []
    assert item.eid in pump.sent


async def test_permanent_refusal_is_reported_and_dropped() -> None:
    outbox = Outbox(MemoryStore())
    bad, good = _item(0), _item(1)
    outbox.add(bad)
    outbox.add(good)
    pump = OutboxPump(outbox, ScriptedNode([Refused("send.bad_token", "no")]))
    await pump.flush()
    failed = await pump.wait([bad.eid, good.eid])
    assert list(failed) == [bad.eid]
    assert failed[bad.eid].node_code == "send.bad_token"
    assert outbox.pending() == []


async def test_rate_limit_waits_retry_after_then_resends(
    autojump_clock: trio.testing.MockClock,
) -> None:
    outbox = Outbox(MemoryStore())
    item = _item(0)
    outbox.add(item)
    node = ScriptedNode([Refused("limit.rate", "slow down", retry_after=5000)])
    pump = OutboxPump(outbox, node)
    start = trio.current_time()
    await pump.flush()
    assert trio.current_time() - start >= 5.0
    assert len(node.calls) == 2
    assert outbox.pending() == []


async def test_run_loop_delivers_items_added_later_and_survives_link_loss(
    autojump_clock: trio.testing.MockClock,
) -> None:
    outbox = Outbox(MemoryStore())
    node = ScriptedNode([NetworkError("gone"), "ok"])
    pump = OutboxPump(outbox, node)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(pump.run)
        await trio.sleep(1)
        item = _item(0)
        outbox.add(item)
        pump.notify()
        with trio.fail_after(10):
            assert await pump.wait([item.eid]) == {}
        nursery.cancel_scope.cancel()
    assert [c.eid for c in node.calls] == [item.eid, item.eid]


# --- the anonymous connection (issue 20) -----------------------------------------------


async def test_sealed_envelopes_go_anonymous_and_only_introductions_go_logged_in() -> None:
    outbox = Outbox(MemoryStore())
    sealed_item, intro, remote = _item(0), _item(1, token=None), _item(2)
    remote = dataclasses.replace(remote, domain="other.test")
    for item in (sealed_item, intro, remote):
        outbox.add(item)
    authenticated, anonymous = ScriptedNode(), ScriptedNode()
    pump = OutboxPump(outbox, authenticated, sealed=anonymous)
    await pump.flush()
    assert [type(f) for f in authenticated.calls] == [Introduce]
    assert [(type(f), f.eid) for f in anonymous.calls] == [
        (Send, sealed_item.eid),
        (Forward, remote.eid),
    ]
    assert outbox.pending() == []


async def test_a_broken_anonymous_link_never_falls_back_to_the_logged_in_one() -> None:
    outbox = Outbox(MemoryStore())
    item = _item(0)
    outbox.add(item)
    authenticated, anonymous = ScriptedNode(), ScriptedNode([NetworkError("gone")])
    pump = OutboxPump(outbox, authenticated, sealed=anonymous)
    with pytest.raises(NetworkError):
        await pump.flush()
    assert outbox.pending() == [item]
    await pump.flush()  # the anonymous link is back
    assert authenticated.calls == []
    first, second = anonymous.calls
    assert (first.eid, first.body) == (second.eid, second.body) == (item.eid, item.body)


def test_a_shared_upload_is_unattributed_only_when_every_recipient_has_a_token() -> None:
    with_tokens = (SharedRecipient(b"\x01" * 16, b"\x05" * 16),) * 2
    one_without = (*with_tokens, SharedRecipient(b"\x03" * 16, None))
    assert unattributed(SendShared(0, b"\x00" * 16, 0, with_tokens, b"body"))
    assert not unattributed(SendShared(0, b"\x00" * 16, 0, one_without, b"body"))
    assert not unattributed(Introduce(0, b"\x01" * 16, b"\x00" * 16, 0, b"body"))
    assert unattributed(SendBatch(0, (Send(1, b"\x01" * 16, b"\x00" * 16, None, 0, b"x"),)))
