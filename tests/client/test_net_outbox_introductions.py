"""The outbox pump's IntroduceMany (issue 20): consecutive introductions (a new group's
welcomes) go in one upload, each settled by its own result; a rate limit for the whole
upload waits its ``retry_after``; a node without the frame gets single Introduce frames."""

from __future__ import annotations

import os
from typing import Any

import trio
import trio.lowlevel

from client.errors import Refused
from client.outbox import INTRODUCTION_BYTES, Outbox, OutboxItem, OutboxPump
from client.store.memory import MemoryStore
from trust.errors import PROTO_MALFORMED
from wire.relay import Error, Introduce, IntroduceMany, Send, Sent, SentBatch


def _item(token: bytes | None = None, size: int = 64, domain: str = "") -> OutboxItem:
    return OutboxItem(
        address="bob@example.test",
        device=1,
        mailbox=os.urandom(16),
        eid=os.urandom(16),
        token=token,
        ttl=0,
        body=os.urandom(size),
        domain=domain,
    )


class IntroNode:
    """Answers IntroduceMany per introduction by ``codes`` (None: Sent); ``refuse`` codes
    refuse whole uploads, one per upload, first."""

    def __init__(self, codes: list[str | None] | None = None, refuse: list[str] | None = None):
        self.codes = codes or []
        self.refuse = refuse or []
        self.calls: list[Any] = []

    async def __call__(self, frame: Any) -> Any:
        self.calls.append(frame)
        await trio.lowlevel.checkpoint()
        if not isinstance(frame, IntroduceMany):
            return Sent(id=0, eid=frame.eid, duplicate=False)
        if self.refuse:
            raise Refused(self.refuse.pop(0), "no", 10)
        results: list[Sent | Error] = []
        for intro in frame.intros:
            code = self.codes.pop(0) if self.codes else None
            results.append(
                Sent(intro.id, intro.eid, False) if code is None else Error(intro.id, code, "", 1)
            )
        return SentBatch(id=0, results=tuple(results))


def _pump(node: IntroNode, items: list[OutboxItem]) -> tuple[Outbox, OutboxPump]:
    outbox = Outbox(MemoryStore())
    for item in items:
        outbox.add(item)
    return outbox, OutboxPump(outbox, node, batch=256)


async def test_consecutive_introductions_go_in_one_upload() -> None:
    intros = [_item() for _ in range(5)]
    items = [*intros, _item(token=b"\x01" * 16), _item(domain="other.test")]
    node = IntroNode()
    outbox, pump = _pump(node, items)
    await pump.flush()
    assert len(outbox) == 0
    (upload, *rest) = node.calls
    assert isinstance(upload, IntroduceMany)
    assert [i.eid for i in upload.intros] == [i.eid for i in intros]
    assert not any(isinstance(c, IntroduceMany) for c in rest)
    assert pump.sent == {i.eid for i in items}


async def test_uploads_stay_under_the_frame_budget() -> None:
    big = INTRODUCTION_BYTES // 3 + 1
    node = IntroNode()
    _, pump = _pump(node, [_item(size=big) for _ in range(4)])
    await pump.flush()
    assert [len(c.intros) for c in node.calls] == [2, 2]


async def test_a_refused_introduction_is_settled_and_a_retryable_one_sent_again() -> None:
    items = [_item() for _ in range(3)]
    node = IntroNode(codes=[None, "send.introductions_closed", "limit.rate"])
    _, pump = _pump(node, items)
    await pump.flush()
    assert pump.failed[items[1].eid].node_code == "send.introductions_closed"
    assert pump.sent == {items[0].eid, items[2].eid}
    assert len(node.calls) == 2  # the second upload carries the rate-limited one only
    assert [i.eid for i in node.calls[1].intros] == [items[2].eid]


async def test_a_rate_limited_upload_waits_and_an_old_node_gets_single_frames() -> None:
    items = [_item() for _ in range(3)]
    node = IntroNode(refuse=["limit.rate"])
    _, pump = _pump(node, items)
    await pump.flush()
    assert [type(c) for c in node.calls] == [IntroduceMany, IntroduceMany]
    assert pump.sent == {i.eid for i in items}
    old = IntroNode(refuse=[PROTO_MALFORMED])
    _, pump = _pump(old, items)
    await pump.flush()
    assert [type(c) for c in old.calls] == [IntroduceMany, Introduce, Introduce, Introduce]
    assert not isinstance(old.calls[1], Send)
