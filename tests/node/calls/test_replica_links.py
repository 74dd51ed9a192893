"""Media links between two replicas of one domain over real loopback UDP (issue 18, item 4;
node.calls.links ``room_link(ReplicaPeer)``): both replicas hold the domain's one set of
server keys (its QUIC key and signing key, as the shared Secret gives them); a replica dials
another at its announced address, pinned to the domain's own QUIC key, and proves itself by
the domain's own server key, which the other checks against the domain's own document.
A node not in cluster mode refuses such a link; a replica presenting another QUIC key is
not linked to."""

from __future__ import annotations

import pytest
import trio

from node.errors import CALL_UNREACHABLE, NodeError
from node.keys import generate
from tests.node.calls.replicakit import DOMAIN, STEP_TIMEOUT, SUITE, peer, replica, until


async def test_a_replica_links_to_another_of_its_domain_and_reuses_the_link() -> None:
    keys = generate(SUITE)
    async with trio.open_nursery() as nursery:
        async with replica(nursery, keys) as a, replica(nursery, keys) as b:
            with trio.fail_after(STEP_TIMEOUT):
                link = await a.links.room_link(peer(b))
                again = await a.links.room_link(peer(b))
            assert again is link
            assert (link.kind, link.domain, link.outbound) == ("replica", DOMAIN, True)
            assert link.replica == peer(b).replica
            await until(lambda: b.links.kinds_up()["replica"] == 1)
            assert a.links.kinds_up() == {"domain": 0, "replica": 1}
            assert a.links.link(DOMAIN) is None  # never taken for a domain link
        nursery.cancel_scope.cancel()


async def test_a_node_not_in_cluster_mode_refuses_a_link_from_its_own_domain() -> None:
    keys = generate(SUITE)
    async with trio.open_nursery() as nursery:
        async with replica(nursery, keys) as a, replica(nursery, keys, accept=False) as b:
            with trio.fail_after(STEP_TIMEOUT), pytest.raises(NodeError) as refused:
                await a.links.room_link(peer(b))
            assert refused.value.code == CALL_UNREACHABLE
            assert b.links.counters.failures == {"inbound_fed.auth": 1}
            assert b.links.kinds_up() == {"domain": 0, "replica": 0}
        nursery.cancel_scope.cancel()


async def test_a_replica_with_another_quic_key_is_not_linked_to() -> None:
    async with trio.open_nursery() as nursery:
        async with (
            replica(nursery, generate(SUITE)) as a,
            replica(nursery, generate(SUITE)) as b,
        ):
            with trio.fail_after(STEP_TIMEOUT), pytest.raises(NodeError) as refused:
                await a.links.room_link(peer(b))
            assert refused.value.code == CALL_UNREACHABLE
            assert a.links.counters.failures == {"outbound_call.unreachable": 1}
        nursery.cancel_scope.cancel()
