"""Two replicas of one domain over one real redis-server (issue 18, item 4; node.sfu.placement,
node.calls.relayed): the harness of the replicas' integration tests. Two real node processes
share the redis-server and the domain's keys (as replicas share the Secret in Kubernetes),
each with its own loopback UDP media port; ``xavier`` is enrolled at the first replica,
``yolanda`` at the second (each client's WebSocket stays on its replica)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import httpx
import trio

from benchmarks.replicabind import bind_at as bind_at  # shared with the benchmark
from benchmarks.replicabind import document as document
from client.app import Client
from client.enroll import enroll
from client.store.memory import MemoryStore
from tests.integration.fedharness import LocalFederation, Person, free_ports
from tests.integration.nodeproc import NodeProcess, invite
from tests.node.sfu.meetkit import Participant
from transport.base import MediaTransport
from trust.media import media_endpoint
from wire.relay import LegGrant, MeetingJoin
from wire.server import ServerKeyDocument

DOMAIN: Final = "replicas.test"
EXTRA: Final = 'udp_listen = "127.0.0.1:0"'
LOOPBACK: Final = "127.0.0.1"


@dataclass
class Cluster:
    fed: LocalFederation
    second: NodeProcess
    people: tuple[Person, Person]
    redis_url: str
    peer: Person | None = None
    """An account of the peer domain (:func:`started_cluster`'s ``peer``), if any."""

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
def started_cluster(base: Path, redis_url: str, *, peer: str | None = None) -> Iterator[Cluster]:
    """Two replicas of :data:`DOMAIN` on the redis-server at ``redis_url``, an account
    enrolled at each; stopped on exit. With ``peer``, a node of that domain too (one node,
    its own SQLite store), federated with :data:`DOMAIN` and with ``bertrand`` enrolled:
    its ``[peers]`` endpoint for :data:`DOMAIN` is the *second* replica, so it fetches the
    document that replica serves, which lists that replica's media port, and its media
    link lands there (what a UDP load balancer may do); everything else of the domain (the
    accounts' WebSockets, the document's ``public_url``) stays as without it."""
    env = {"SEALRELAY_STORE": "redis", "SEALRELAY_REDIS_URL": redis_url}
    domains = [DOMAIN] if peer is None else [DOMAIN, peer]
    fed = LocalFederation(base / "fed", domains, extra=EXTRA, env=env)
    setup = fed.setups[DOMAIN]
    second_port = free_ports(1)[0]
    second = NodeProcess(
        setup.data_dir, domain=DOMAIN, config=setup.config, port=second_port, env=env
    )
    if peer is not None:
        fed.nodes[peer].env = None  # not a replica: its own store
        config = fed.setups[peer].config
        second_url = f"http://{LOOPBACK}:{second_port}"
        text = config.read_text().replace(json.dumps(setup.url), json.dumps(second_url))
        config.write_text(text)
    try:
        fed.start()
        second.start()
        assert second.url is not None
        urls = (fed.url(DOMAIN), second.url)

        async def both() -> tuple[Person, Person]:
            x = await _enroll(setup.data_dir, env, "xavier", urls[0], base / "x")
            y = await _enroll(setup.data_dir, env, "yolanda", urls[1], base / "y")
            return x, y

        people = trio.run(both)
        bertrand = None
        if peer is not None:
            bertrand = trio.run(fed.enroll, peer, "bertrand", base / "b")
        yield Cluster(fed, second, people, redis_url, bertrand)
    finally:
        second.close()
        fed.close()


async def join(client: Client, room: bytes) -> tuple[LegGrant, Participant]:
    """A ``MeetingJoin`` of ``room`` and its media bound over QUIC to the client's replica."""
    grant = await client.link.request(MeetingJoin(0, room, ()))
    assert isinstance(grant, LegGrant), grant
    media: MediaTransport
    media, sender = await client.media_quic(grant)
    return grant, Participant(media, sender)


async def metrics(url: str) -> str:
    """``/metrics`` of the replica at ``url``."""
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(url + "/metrics")
    response.raise_for_status()
    return response.text


def media_port(doc: ServerKeyDocument) -> int:
    endpoint = media_endpoint(doc)
    assert endpoint is not None
    return endpoint.port
