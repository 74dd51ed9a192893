"""The :class:`~node.store.ports.Mailboxes` contract for fan-out: one body, many recipients
(every backend alike)."""

from __future__ import annotations

import os

from node.store import (
    Storage,
    StoredEnvelope,
)

NOW = 1_700_000_000_000
HOUR = 3_600_000


def records(mailboxes: list[bytes], eid: bytes, expires: int = NOW + HOUR) -> list[StoredEnvelope]:
    return [StoredEnvelope(m, eid, 0, NOW, expires, "a.example", None, b"") for m in mailboxes]


async def test_one_body_reaches_every_recipient_and_is_held_once(storage: Storage) -> None:
    mailboxes = [os.urandom(16) for _ in range(20)]
    body = os.urandom(2048)
    results = await storage.mailboxes.enqueue_shared(body, records(mailboxes, b"E" * 16))
    assert all(stored for stored, _ in results)
    assert len({seq for _, seq in results}) == 20
    for mailbox in mailboxes:
        (env,) = await storage.mailboxes.pending(mailbox, 0, 10, NOW)
        assert env.body == body
        assert env.eid == b"E" * 16
    stats = await storage.maintenance.stats()
    assert stats["shared_bodies"] == 1
    assert stats["envelopes"] == 20


async def test_acks_dedup_and_expiry_are_per_recipient(storage: Storage) -> None:
    a, b = os.urandom(16), os.urandom(16)
    body = b"group message"
    await storage.mailboxes.enqueue_shared(body, records([a, b], b"F" * 16))
    again = await storage.mailboxes.enqueue_shared(body, records([a, b], b"F" * 16))
    assert [stored for stored, _ in again] == [False, False]
    assert await storage.mailboxes.ack(a, [b"F" * 16]) == 1
    assert await storage.mailboxes.pending(a, 0, 10, NOW) == []
    assert [e.body for e in await storage.mailboxes.pending(b, 0, 10, NOW)] == [body]
    # acked at a: still a duplicate there; b keeps its copy until it acks
    assert (await storage.mailboxes.enqueue_shared(body, records([a], b"F" * 16)))[0][0] is False
    await storage.mailboxes.ack(b, [b"F" * 16])
    await storage.maintenance.sweep(NOW)
    assert (await storage.maintenance.stats())["shared_bodies"] == 0


async def test_an_expired_fan_out_is_never_delivered_and_is_swept(storage: Storage) -> None:
    a = os.urandom(16)
    await storage.mailboxes.enqueue_shared(
        b"short-lived", records([a], b"G" * 16, expires=NOW + 10)
    )
    assert await storage.mailboxes.pending(a, 0, 10, NOW + 10) == []
    result = await storage.maintenance.sweep(NOW + 10)
    assert result.envelopes == 1
    assert (await storage.maintenance.stats())["shared_bodies"] == 0
