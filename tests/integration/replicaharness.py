"""Two replicas of one domain as real node processes (issue 18, item 4; docs/kubernetes.md
"The leg's replica"): they share one real redis-server (``store = "redis"``) and the
domain's keys and data directory (as replicas share the Secret in Kubernetes), each with its
own loopback UDP media port, announced to the other through Redis. Two accounts are
enrolled, ``xavier`` at the first replica and ``yolanda`` at the second: each one's
WebSocket and QUIC media go to its own replica."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import httpx
import trio

from client.enroll import enroll
from client.store.memory import MemoryStore
from tests.integration.fedharness import LocalFederation, Person
from tests.integration.nodeproc import NodeProcess, invite
from tests.redisproc import RedisServer

DOMAIN: Final = "replicas.test"
EXTRA: Final = 'udp_listen = "127.0.0.1:0"'


@dataclass
class Cluster:
    fed: LocalFederation
    second: NodeProcess
    redis: RedisServer
    people: tuple[Person, Person]

    def url(self, replica: int) -> str:
        if replica == 0:
            return self.fed.url(DOMAIN)
        assert self.second.url is not None
        return self.second.url


async def _enroll(data_dir: Path, env: dict[str, str], name: str, url: str, home: Path) -> Person:
    code = await trio.to_thread.run_sync(lambda: invite(data_dir, name, env=env))
    store = MemoryStore()
    address = f"{name}@{DOMAIN}"
    await enroll(store, address, url, code, "cnsa2")
    return Person(address, store, home)


@contextmanager
def two_replicas(base: Path) -> Iterator[Cluster]:
    """A redis-server and two replicas serving ``DOMAIN``, with xavier and yolanda."""
    with RedisServer(base / "redis") as redis:
        env = {"SEALRELAY_STORE": "redis", "SEALRELAY_REDIS_URL": redis.url}
        fed = LocalFederation(base / "fed", [DOMAIN], extra=EXTRA, env=env)
        setup = fed.setups[DOMAIN]
        second = NodeProcess(setup.data_dir, domain=DOMAIN, config=setup.config, env=env)
        try:
            fed.start()
            second.start()
            assert second.url is not None
            urls = (fed.url(DOMAIN), second.url)

            async def both() -> tuple[Person, Person]:
                x = await _enroll(setup.data_dir, env, "xavier", urls[0], base / "x")
                y = await _enroll(setup.data_dir, env, "yolanda", urls[1], base / "y")
                return x, y

            yield Cluster(fed, second, redis, trio.run(both))
        finally:
            second.close()
            fed.close()


async def replica_metrics(url: str) -> str:
    """``/metrics`` of the replica at ``url``."""
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(url + "/metrics")
    response.raise_for_status()
    return response.text
