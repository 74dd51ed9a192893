"""Replicas of one domain in one trio process, for the tests of replica media links
(issue 18, item 4): each a call relay on real loopback UDP with its ``MediaLinks``, over the
domain's one set of server keys (as the shared Secret gives them in Kubernetes)."""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Final

import trio

from federation.keyring import Keyring
from node.calls import CallRelay
from node.calls.links import MediaLinks
from node.calls.peering import ReplicaPeer
from node.calls.shell import CallService, wall_clock_ms
from node.keys import ServerKeys
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

    @property
    def core(self) -> CallRelay:
        return self.service.core


@asynccontextmanager
async def replica(
    nursery: trio.Nursery, keys: ServerKeys, *, accept: bool = True
) -> AsyncIterator[Replica]:
    """A replica serving media on a loopback port; ``accept``: in cluster mode."""
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


def peer(replica: Replica) -> ReplicaPeer:
    """The replica as another one dials it (its id made of its port)."""
    return ReplicaPeer(replica_id(replica), LOOPBACK, replica.port)


def replica_id(replica: Replica) -> bytes:
    return b"replica-" + str(replica.port).encode()


async def until(check: Callable[[], bool]) -> None:
    with trio.fail_after(STEP_TIMEOUT):
        while not check():  # noqa: ASYNC110 (state of the node's tasks, polled)
            await trio.sleep(0.01)
