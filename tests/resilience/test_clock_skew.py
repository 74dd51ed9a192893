"""A node's clock ahead of its peer's, inside and outside the federation request window
(``federation.requestsig.WINDOW_MS``, ±5 minutes; DESIGN section 6).

alpha (A) and bravo (B) run as real node processes; A's wall clock is moved while it runs
(libfaketime: ``tests.resilience.fakeclock``). alice on A and bob on B write to each other.

- 4 minutes ahead: federation works both ways and nothing is refused.
- 6 minutes ahead: each side refuses the other's transactions loudly: the refusing node
  logs a warning naming the skew and counts it (``federation_clock_skew_refused_total``),
  the sending node logs that its requests are refused for clock skew and counts that
  (``federation_clock_skew_refusals_total``). Both nodes acknowledged every send and hold
  it in their durable outbound queues; nothing is delivered, nothing dropped.
- Clock right again: every envelope arrives, exactly once, without anyone's help.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Final

import httpx
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
from tests.resilience.fakeclock import SETTLE, FakeClock

A: Final = "alpha.test"
B: Final = "bravo.test"
INSIDE: Final = 4 * 60
OUTSIDE: Final = 6 * 60
COUNT: Final = 10
SKEWED_FOR: Final = 6.0
"""Seconds A's clock stays outside the window after the first refusal: a few retries."""
RECOVER_WITHIN: Final = 30.0
REFUSED: Final = "sealrelay_federation_clock_skew_refused_total"
REFUSALS: Final = "sealrelay_federation_clock_skew_refusals_total"

pytestmark = pytest.mark.slow


@dataclass
class World:
    fed: LocalFederation
    clock: FakeClock
    alice: Person
    bob: Person


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    base = tmp_path_factory.mktemp("skew")
    fed = LocalFederation(base / "fed", [A, B])
    clock = FakeClock(base / "alpha.clock")
    fed.nodes[A].env = clock.env()
    try:
        fed.start()
        people = trio.run(fed.enroll_all, {"alice": (A, base / "alice"), "bob": (B, base / "bob")})
        yield World(fed, clock, people["alice"], people["bob"])
    finally:
        fed.close()


@contextlib.asynccontextmanager
async def _online(*clients: Client) -> AsyncIterator[None]:
    async with contextlib.AsyncExitStack() as stack:
        for client in clients:
            await stack.enter_async_context(client.online())
        yield


def _warnings(log_text: str, message: str) -> list[dict[str, Any]]:
    """The node's JSON log records at warning level whose message starts with ``message``."""
    found = []
    for line in log_text.splitlines():
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            if record.get("level") == "warning" and record.get("msg", "").startswith(message):
                found.append(record)
    return found


async def _metric(fed: LocalFederation, node: str, name: str, **labels: str) -> float:
    return metric(await fed.metrics(node), name, **labels)


async def _until_clock(fed: LocalFederation, domain: str, ahead: int) -> None:
    """Until ``domain``'s node reads its clock ``ahead`` seconds off (its HTTP ``Date``,
    whole seconds): libfaketime re-reads the offset lazily, and a transaction signed
    before that would be on time."""
    with trio.fail_after(20):
        while True:
            async with httpx.AsyncClient(timeout=5) as http:
                answer = await http.get(fed.url(domain) + "/healthz")
            node_time = parsedate_to_datetime(answer.headers["date"]).timestamp()
            if abs(node_time - time.time() - ahead) < 3:
                return
            await trio.sleep(0.2)


async def _send(client: Client, to: str, batch: list[str]) -> None:
    for text in batch:
        result = await client.send(to, text)
        assert not result.failed, result.failed  # acknowledged: the node holds it


async def _until_refused_both_ways(fed: LocalFederation) -> None:
    """Until each node has refused the other's requests for skew and each knows its own
    requests were refused for skew."""
    expected = [(B, REFUSED, {"origin": A}), (A, REFUSED, {"origin": B})]
    expected += [(A, REFUSALS, {"domain": B}), (B, REFUSALS, {"domain": A})]
    with trio.fail_after(20):
        while True:
            found = [await _metric(fed, d, name, **labels) for d, name, labels in expected]
            if all(found):
                return
            await trio.sleep(0.2)


def _check_loud(fed: LocalFederation) -> None:
    """Both logs name the skew (A is 360 s ahead: B sees A's requests ahead, A sees B's
    behind) and say on the sending side why the requests are refused."""
    for domain, sign in ((B, 1), (A, -1)):
        log_text = fed.nodes[domain].log_text()
        refused = _warnings(log_text, "refused a federation request for clock skew")
        assert refused, f"{domain} did not log its refusals"
        assert all(abs(r["skew_s"] - sign * OUTSIDE) < 30 for r in refused), refused
        told = _warnings(log_text, "federation requests refused for clock skew")
        assert told, f"{domain} did not log that its requests are refused"
        assert all(abs(r["skew_s"] + sign * OUTSIDE) < 30 for r in told), told


async def test_clock_four_minutes_ahead_federates(world: World) -> None:
    fed, tag = world.fed, secrets.token_hex(3)
    alice, bob = world.alice.load(), world.bob.load()
    async with _online(alice, bob):
        await converse(alice, bob)
        world.clock.set(INSIDE)
        await trio.sleep(SETTLE)
        await _until_clock(fed, A, INSIDE)
        await _send(alice, bob.device.address, [f"{tag} to bob"])
        await _send(bob, alice.device.address, [f"{tag} to alice"])
        await wait_until(lambda: f"{tag} to bob" in texts(bob), 20, "alice's message")
        await wait_until(lambda: f"{tag} to alice" in texts(alice), 20, "bob's message")
    assert await _metric(fed, B, REFUSED) == 0
    assert await _metric(fed, A, REFUSED) == 0
    world.clock.set(0)


async def test_clock_six_minutes_ahead_is_refused_loudly_and_recovers(world: World) -> None:
    fed, tag = world.fed, secrets.token_hex(3)
    alice, bob = world.alice.load(), world.bob.load()
    to_bob = [f"{tag} a->b #{n}" for n in range(COUNT)]
    to_alice = [f"{tag} b->a #{n}" for n in range(COUNT)]
    async with _online(alice, bob):
        await converse(alice, bob)
        world.clock.set(OUTSIDE)
        await trio.sleep(SETTLE)
        await _until_clock(fed, A, OUTSIDE)
        await _send(alice, bob.device.address, to_bob)
        await _send(bob, alice.device.address, to_alice)
        await _until_refused_both_ways(fed)
        await trio.sleep(SKEWED_FOR)
        assert not set(to_bob) & set(texts(bob)), "delivered outside the window"
        assert fed.outbound_rows(A) == COUNT
        assert fed.outbound_rows(B) == COUNT
        _check_loud(fed)

        world.clock.set(0)
        fixed = time.monotonic()
        await wait_until(lambda: set(to_bob) <= set(texts(bob)), RECOVER_WITHIN, "A -> B")
        await wait_until(lambda: set(to_alice) <= set(texts(alice)), RECOVER_WITHIN, "B -> A")
        took = time.monotonic() - fixed
        print(f"clock right again: all {2 * COUNT} delivered {took:.1f} s later")
        await wait_until(lambda: fed.outbound_rows(A) + fed.outbound_rows(B) == 0, 10, "queues")
    assert sorted(t for t in texts(bob) if t.startswith(tag)) == sorted(to_bob)
    assert sorted(t for t in texts(alice) if t.startswith(tag)) == sorted(to_alice)
    for domain in (A, B):
        assert await _metric(fed, domain, "sealrelay_federation_dropped_total") == 0
