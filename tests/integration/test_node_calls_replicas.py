"""1:1 calls across two replicas of one domain (issue 18, item 4; node.calls.replicas,
docs/kubernetes.md "The leg's replica"), with the replicas of
``tests.integration.replicakit``: two real node processes on one real redis-server.
Yolanda (the callee) is served by the second replica, WebSocket and QUIC; Xavier (the
caller) by the first. Her leg is allocated on the second, his ``LegBridge`` to it is served
by the first, which bridges it there over a replica media link. Checked:

- media flows both ways: raw datagrams arrive byte for byte but the sender id (rewritten per
  hop, as across domains), and the Opus + VP8 fixture played both ways decrypts and matches
  its digests; each replica's ``/metrics`` shows one ``replica`` link and one bridge, and
  the first one bridge to another replica;
- a second bridge to the same leg is ``call.leg_taken``; a leg nobody holds ``call.no_leg``;
- a hang-up on either side pushes ``LegEnded{call.peer_ended}`` to the other;
- the callee's replica killed (SIGKILL): the caller's leg ends with
  ``LegEnded{call.peer_ended}`` once the dead replica's media address has expired in Redis
  (``MEDIA_TTL_MS``), well before the QUIC idle timeout.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Final

import pytest
import trio

from client.app import Client
from client.calls.runner import MediaRun
from client.errors import Refused
from node.errors import CALL_LEG_TAKEN, CALL_NO_LEG, CALL_PEER_ENDED
from node.sfu.placement import ANNOUNCE_INTERVAL, MEDIA_TTL_MS
from tests.integration.callmedia import bridge, exchange, hang_ups, played, raw
from tests.integration.fedharness import metric
from tests.integration.replicakit import DOMAIN, Cluster, metrics, started_cluster
from tests.redisproc import RedisServer
from wire.calls import LegRef

GONE_WITHIN: Final = MEDIA_TTL_MS / 1000 + ANNOUNCE_INTERVAL + 5.0
"""Seconds from the kill to the caller's ``LegEnded``: the address's TTL after its last
renewal, rounds of the watch, and room for a loaded machine; under the QUIC idle timeout
(``QuicSettings.idle_timeout``, 30 s), which would end the link otherwise."""

pytestmark = pytest.mark.slow


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    with RedisServer(tmp_path / "redis") as redis, started_cluster(tmp_path, redis.url) as running:
        yield running


@asynccontextmanager
async def _online(cluster: Cluster) -> AsyncIterator[tuple[Client, Client]]:
    xavier, yolanda = (p.load() for p in cluster.people)
    async with xavier.online(), yolanda.online():
        yield xavier, yolanda


def test_a_call_across_two_replicas(cluster: Cluster) -> None:
    async def main() -> tuple[MediaRun, MediaRun, tuple[str, str], list[str]]:
        async with _online(cluster) as (xavier, yolanda):
            bridged, granted = await bridge(xavier, yolanda, DOMAIN)
            x_media, x_sender = await xavier.media_quic(bridged)
            y_media, y_sender = await yolanda.media_quic(granted)
            x_run, y_run = await exchange(x_media, x_sender, y_media, y_sender)
            during = (
                await metrics(cluster.url(0)),
                await metrics(cluster.url(1)),
            )
            codes = []
            with pytest.raises(Refused) as taken:
                await xavier.leg_bridge(LegRef(DOMAIN, granted.leg_id))
            codes.append(taken.value.node_code)
            with pytest.raises(Refused) as unknown:
                await xavier.leg_bridge(LegRef(DOMAIN, os.urandom(16)))
            codes.append(unknown.value.node_code)
            codes += await hang_ups(xavier, yolanda, DOMAIN, bridged, granted)
            await x_media.aclose()
            await y_media.aclose()
            return x_run, y_run, during, codes

    x_run, y_run, during, codes = trio.run(main)
    played(x_run, y_run)
    played(y_run, x_run)
    for text in during:
        assert metric(text, "sealrelay_call_links_open", kind="replica") == 1
        assert metric(text, "sealrelay_call_links_open", kind="domain") == 0
        assert metric(text, "sealrelay_call_bridges") == 1
    assert metric(during[0], "sealrelay_call_legs") == 1  # Xavier's; Yolanda's is remote
    assert metric(during[1], "sealrelay_call_legs") == 1
    assert metric(during[0], "sealrelay_call_replica_bridges_total") == 1
    assert metric(during[1], "sealrelay_call_replica_bridges_total") == 0
    assert codes == [CALL_LEG_TAKEN, CALL_NO_LEG, CALL_PEER_ENDED, CALL_PEER_ENDED]


def test_the_callees_replica_killed_ends_the_callers_leg(cluster: Cluster) -> None:
    async def main() -> tuple[str, float]:
        async with _online(cluster) as (xavier, yolanda):
            bridged, granted = await bridge(xavier, yolanda, DOMAIN)
            x_media, x_sender = await xavier.media_quic(bridged)
            y_media, _ = await yolanda.media_quic(granted)
            await raw(x_media, x_sender, y_media)
            await trio.to_thread.run_sync(cluster.second.kill)
            start = trio.current_time()
            with trio.fail_after(GONE_WITHIN):
                ended = await xavier.leg_ended(bridged.leg_id)
            took = trio.current_time() - start
            await x_media.aclose()
        return ended.reason, took

    reason, took = trio.run(main)
    assert reason == CALL_PEER_ENDED, took
