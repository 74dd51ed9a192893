"""A peer domain down for a minute while the other keeps sending (DESIGN section 6).

alpha (A) and bravo (B) run as real node processes. Four clients on A talk to two on B
(each pair first exchanges a message, so the outage traffic carries delivery tokens).
Then B stops for ``OUTAGE`` seconds; meanwhile A's clients send ``COUNT`` envelopes with
the client library, all concurrently, and A acknowledges each into its durable outbound
queue. B comes back (and says hello to A, which ends A's backoff at once): every envelope
reaches the application exactly once within ``CATCH_UP`` seconds, and A's queue drains to
zero. The second test also kills A with SIGKILL halfway through the sends and restarts it,
still during B's outage: nothing that A acknowledged before the crash is lost, and the
clients' resends after it are not duplicated.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pytest
import trio

from client.app import Client
from tests.integration.fedharness import (
    LocalFederation,
    Person,
    converse,
    metric,
    texts,
    wait_until,
)

A: Final = "alpha.test"
B: Final = "bravo.test"
SENDERS: Final = 4
RECIPIENTS: Final = 2
COUNT: Final = 1000
OUTAGE: Final = 60.0
CATCH_UP: Final = 10.0
QUEUE: Final = "sealrelay_federation_queue"
ACCEPTED: Final = "sealrelay_envelopes_accepted_total"

pytestmark = [pytest.mark.slow, pytest.mark.long]


@dataclass
class World:
    fed: LocalFederation
    senders: list[Person]
    recipients: list[Person]


async def _enroll_all(fed: LocalFederation, base: Path) -> World:
    who = {f"sender{i}": (A, base / f"s{i}") for i in range(SENDERS)}
    who |= {f"recipient{i}": (B, base / f"r{i}") for i in range(RECIPIENTS)}
    people = await fed.enroll_all(who)
    senders = [people[f"sender{i}"] for i in range(SENDERS)]
    return World(fed, senders, [people[f"recipient{i}"] for i in range(RECIPIENTS)])


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    base = tmp_path_factory.mktemp("outage")
    fed = LocalFederation(base / "fed", [A, B])
    try:
        fed.start()
        yield trio.run(_enroll_all, fed, base)
    finally:
        fed.close()


class Progress:
    """Acknowledged sends, counted across the sending tasks."""

    def __init__(self) -> None:
        self.acked = 0
        self.crashed_at: int | None = None


async def _send_all(sender: Client, to: str, batch: list[str], progress: Progress) -> None:
    for text in batch:
        result = await sender.send(to, text)
        assert not result.failed, result.failed
        progress.acked += 1


async def _crash_alpha(world: World, progress: Progress) -> None:
    """SIGKILL A once half the envelopes are acknowledged, then start it again."""
    node = world.fed.nodes[A]
    await wait_until(lambda: progress.acked >= COUNT // 2, 60, "half the sends")
    await trio.to_thread.run_sync(node.kill)
    progress.crashed_at = progress.acked
    await trio.to_thread.run_sync(node.start)


async def _queue_gauge(fed: LocalFederation, depth: int, slack: int = 0) -> str:
    """A's metrics once its queue gauge for B reads ``depth`` (0: gone) or up to ``slack``
    more; AssertionError after 10 s."""
    text = ""
    with trio.move_on_after(10):
        while True:
            text = await fed.metrics(A)
            if depth <= metric(text, QUEUE, domain=B) <= depth + slack:
                return text
            await trio.sleep(0.2)
    found = [line for line in text.splitlines() if line.startswith(QUEUE)]
    raise AssertionError(f"A's queue gauge for B is not {depth}: {found}")


@contextlib.asynccontextmanager
async def _online(*clients: Client) -> AsyncIterator[None]:
    """All ``clients`` online for the block."""
    async with contextlib.AsyncExitStack() as stack:
        for client in clients:
            await stack.enter_async_context(client.online())
        yield


async def _outage(world: World, *, crash_alpha: bool) -> None:
    fed = world.fed
    senders = [p.load() for p in world.senders]
    recipients = [p.load() for p in world.recipients]
    tag = secrets.token_hex(3)
    plan: dict[int, list[str]] = {
        i: [f"{tag} s{i} #{n}" for n in range(COUNT // SENDERS)] for i in range(SENDERS)
    }
    expected: dict[int, set[str]] = {r: set() for r in range(RECIPIENTS)}
    for i, batch in plan.items():
        expected[i % RECIPIENTS].update(batch)
    progress = Progress()

    async with _online(*senders, *recipients):
        for i, sender in enumerate(senders):
            await converse(sender, recipients[i % RECIPIENTS])
        # The recipients stay online: they reconnect (at most RECONNECT_CAP apart) when
        # B is back.
        await trio.to_thread.run_sync(fed.nodes[B].stop)
        down = time.monotonic()
        async with trio.open_nursery() as nursery:
            for i, sender in enumerate(senders):
                to = recipients[i % RECIPIENTS].device.address
                nursery.start_soon(_send_all, sender, to, plan[i], progress)
            if crash_alpha:
                nursery.start_soon(_crash_alpha, world, progress)
        sending = time.monotonic() - down
        assert progress.acked == COUNT
        assert sending < OUTAGE, f"sending took {sending:.0f} s, longer than the outage"
        if crash_alpha:
            assert progress.crashed_at is not None
            assert progress.crashed_at < COUNT, "the crash came after the last send"
        # A holds every envelope, once each, durably, and its gauge says so (an item
        # queued while the sender counts the queue may be counted twice until the next
        # count: at most one per sending client).
        assert fed.outbound_rows(A) == COUNT
        await _queue_gauge(fed, COUNT, slack=SENDERS)

        await trio.sleep(max(0.0, OUTAGE - (time.monotonic() - down)))
        await trio.to_thread.run_sync(fed.nodes[B].start)

        def arrived() -> bool:
            return all(expected[r] <= set(texts(client)) for r, client in enumerate(recipients))

        took = await wait_until(arrived, CATCH_UP, f"{COUNT} envelopes after B came back")
        print(f"sent {COUNT} in {sending:.1f} s; all arrived {took:.1f} s after B was back")
        await wait_until(lambda: fed.outbound_rows(A) == 0, 10, "A's queue draining")
        a_metrics = await _queue_gauge(fed, 0)
    b_metrics = await fed.metrics(B)

    for r, client in enumerate(recipients):
        got = [t for t in texts(client) if t.startswith(tag)]
        assert len(got) == len(expected[r]), "a duplicate reached the application"
        assert set(got) == expected[r]
    # B restarted after the warm-up: everything it stored since is the outage traffic,
    # each envelope once.
    assert metric(b_metrics, ACCEPTED) == COUNT
    assert metric(a_metrics, "sealrelay_federation_dropped_total") == 0


async def test_peer_down_for_a_minute_loses_and_duplicates_nothing(world: World) -> None:
    await _outage(world, crash_alpha=False)


async def test_sender_node_killed_during_the_outage_loses_nothing(world: World) -> None:
    await _outage(world, crash_alpha=True)
