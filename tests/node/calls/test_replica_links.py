"""Media links between two replicas of one domain over real loopback UDP (issue 18, item 4;
node.calls.links ``room_link(ReplicaPeer)``): both replicas hold the domain's one set of
server keys (its QUIC key and signing key, as the shared Secret gives them); a replica dials
another at its announced address, pinned to the domain's own QUIC key, and proves itself by
the domain's own server key, which the other checks against the domain's own document.
A node not in cluster mode refuses such a link; a replica presenting another QUIC key is
not linked to."""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Final

import pytest
import trio

from federation.keyring import Keyring
from node.calls import CallRelay
from node.calls.links import MediaLinks
from node.calls.peering import ReplicaPeer
from node.calls.shell import CallService, wall_clock_ms
from node.errors import CALL_UNREACHABLE, NodeError
from node.keys import ServerKeys, generate
from suites import get_suite

LOOPBACK: Final = "127.0.0.1"
ENDPOINT: Final = "http://127.0.0.1:9"
DOMAIN: Final = "r.example"
STEP_TIMEOUT: Final = 5.0
SUITE = get_suite("xwing")


@dataclass
class Replica:
    service: CallService
    links: MediaLinks
    port: int


@asynccontextmanager
async def _replica(
    nursery: trio.Nursery, keys: ServerKeys, *, accept: bool = True
) -> AsyncIterator[Replica]:
    service = CallService(CallRelay(secrets.token_bytes), keys.quic)
    address = await nursery.start(service.serve, LOOPBACK, 0)
    port = int(address[1])

    def document() -> bytes:
        return keys.key_document_bytes(DOMAIN, (ENDPOINT,), wall_clock_ms(), 86_400, port)

    async def no_fetch(name: str, urls: tuple[str, ...]) -> bytes:
        raise AssertionError("a replica link fetches no document")

    keyring = Keyring(DOMAIN, {}, no_fetch, clock=time.time)
    keyring.set_local(document)
    links = MediaLinks(service, DOMAIN, keyring, lambda: keys, random=secrets.token_bytes)
    links.accept_replicas = accept
    service.accept_links(links)
    await nursery.start(links.run)
    yield Replica(service, links, port)


def _peer(replica: Replica) -> ReplicaPeer:
    return ReplicaPeer(b"replica-" + str(replica.port).encode(), LOOPBACK, replica.port)


async def _until(check: Callable[[], bool]) -> None:
    with trio.fail_after(STEP_TIMEOUT):
        while not check():  # noqa: ASYNC110 (state of the node's tasks, polled)
            await trio.sleep(0.01)


async def test_a_replica_links_to_another_of_its_domain_and_reuses_the_link() -> None:
    keys = generate(SUITE)
    async with trio.open_nursery() as nursery:
        async with _replica(nursery, keys) as a, _replica(nursery, keys) as b:
            with trio.fail_after(STEP_TIMEOUT):
                link = await a.links.room_link(_peer(b))
                again = await a.links.room_link(_peer(b))
            assert again is link
            assert (link.kind, link.domain, link.outbound) == ("replica", DOMAIN, True)
            assert link.replica == _peer(b).replica
            await _until(lambda: b.links.kinds_up()["replica"] == 1)
            assert a.links.kinds_up() == {"domain": 0, "replica": 1}
            assert a.links.link(DOMAIN) is None  # never taken for a domain link
        nursery.cancel_scope.cancel()


async def test_a_node_not_in_cluster_mode_refuses_a_link_from_its_own_domain() -> None:
    keys = generate(SUITE)
    async with trio.open_nursery() as nursery:
        async with _replica(nursery, keys) as a, _replica(nursery, keys, accept=False) as b:
            with trio.fail_after(STEP_TIMEOUT), pytest.raises(NodeError) as refused:
                await a.links.room_link(_peer(b))
            assert refused.value.code == CALL_UNREACHABLE
            assert b.links.counters.failures == {"inbound_fed.auth": 1}
            assert b.links.kinds_up() == {"domain": 0, "replica": 0}
        nursery.cancel_scope.cancel()


async def test_a_replica_with_another_quic_key_is_not_linked_to() -> None:
    async with trio.open_nursery() as nursery:
        async with (
            _replica(nursery, generate(SUITE)) as a,
            _replica(nursery, generate(SUITE)) as b,
        ):
            with trio.fail_after(STEP_TIMEOUT), pytest.raises(NodeError) as refused:
                await a.links.room_link(_peer(b))
            assert refused.value.code == CALL_UNREACHABLE
            assert a.links.counters.failures == {"outbound_call.unreachable": 1}
        nursery.cancel_scope.cancel()
