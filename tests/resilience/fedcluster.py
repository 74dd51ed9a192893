"""The two domains of ``tests.resilience.fedchaos`` in cluster mode, for the soak
(``--replicas N``): each domain is ``N`` node processes sharing one redis-server, which
they reach through a proxy of their own (so the schedule can cut a domain off its Redis),
and each replica is one of the domain's federation endpoints, behind a proxy of its own.
Redis runs without Sentinel here (``tests.resilience.chaos`` covers failover), so the
nodes store with ``durability = "primary"``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Final

import trio

from node.devfed import prepare
from tests.integration.fedharness import free_ports
from tests.redisproc import RedisServer
from tests.resilience.chaos import Cluster, invite_codes, redis_env
from tests.resilience.faultproxy import LOOPBACK, TcpProxy
from tests.resilience.fedchaos import SUITE, A, B, Net, World, point

REDIS_FAULT_SECONDS: Final = 10.0


def redis_faults() -> tuple[tuple[str, float], ...]:
    """The faults between each domain's nodes and its Redis."""
    return tuple((f"redis cut {domain}", REDIS_FAULT_SECONDS) for domain in (A, B))


@contextlib.asynccontextmanager
async def two_clusters(base: Path, replicas: int) -> AsyncIterator[World]:
    setups = {s.domain: s for s in prepare(base / "fed", [A, B], free_ports(2), suite=SUITE)}
    with contextlib.ExitStack() as stack:
        redis = {d: stack.enter_context(RedisServer(base / f"redis-{d}")) for d in (A, B)}
        async with trio.open_nursery() as nursery:
            to_redis = {
                d: await nursery.start(TcpProxy(LOOPBACK, redis[d].port).run) for d in (A, B)
            }
            # the proxies in front of each domain's replicas (targets set once they listen)
            fronts = {
                d: [await nursery.start(TcpProxy(LOOPBACK, 0).run) for _ in range(replicas)]
                for d in (A, B)
            }
            point(setups[A].config, [setups[B].url], [p.port for p in fronts[B]])
            point(setups[B].config, [setups[A].url], [p.port for p in fronts[A]])
            clusters = {
                d: Cluster(
                    base / f"{d}-nodes",
                    replicas,
                    redis_env(url=f"redis://{LOOPBACK}:{to_redis[d].port}/0"),
                    domain=d,
                    config=setups[d].config,
                    keys_from=setups[d].data_dir,
                )
                for d in (A, B)
            }

            async def invite(domain: str, names: Sequence[str]) -> list[str]:
                return await invite_codes(redis_env(url=redis[domain].url), names)

            try:
                async with trio.open_nursery() as starting:
                    for cluster in clusters.values():
                        starting.start_soon(cluster.start)
                for d in (A, B):
                    for proxy, node in zip(fronts[d], clusters[d].nodes, strict=True):
                        proxy.target = (LOOPBACK, node.port)
                urls = {d: clusters[d].urls for d in (A, B)}
                yield World(urls, invite, Net(fronts[B], fronts[A], to_redis))
            finally:
                for cluster in clusters.values():
                    await trio.to_thread.run_sync(cluster.close)
            nursery.cancel_scope.cancel()
