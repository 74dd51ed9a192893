"""Call legs over a real node process with ``udp_listen`` (issue 17: the rendezvous and the
WebSocket fallback; ``node.calls_requests``, ``client.calls.legs``).

Two accounts of one domain: Bea allocates a leg (the callee), Abe bridges to it (the
caller); each binds media to its leg, over QUIC, over its WebSocket (the fallback), or one
each way, and both play the Opus + VP8 fixture through the node: every frame that arrives
decrypts and matches its digest. A hang-up pushes ``LegEnded`` to the other side; garbage
and another stream's sender id on a WebSocket are dropped and counted while the call goes
on; bridging to an unknown leg is ``call.no_leg``, to another domain (no node-to-node
media link yet) ``call.unreachable``, and the refused bridge's leg is ended.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from typing import Final

import httpx
import pytest
import trio

from client.app import Client
from client.calls.keys import CallSecret, Direction
from client.calls.runner import MediaRun, run_media
from client.errors import Refused
from node.errors import CALL_NO_LEG, CALL_PEER_ENDED, FED_POLICY
from tests.integration.fedharness import LocalFederation, Person, metric
from transport.base import DATAGRAM_BATCH, MediaTransport, TransportKind, TransportStats
from wire.calls import LegRef
from wire.relay import LegGrant

DOMAIN: Final = "legs.test"
OTHER: Final = "elsewhere.test"
EXTRA: Final = 'udp_listen = "127.0.0.1:0"'
SECONDS: Final = 2.0
DELAY: Final = 0.25  # jitter buffer: generous, the machine's cores are shared
TIME_LIMIT: Final = 30.0
INJECT_EVERY: Final = 10  # the forger adds garbage and a forged datagram every 10th send
DROPPED: Final = "sealrelay_call_dropped_total"
FORWARD_TIME: Final = "sealrelay_call_forward_seconds_count"


@dataclass
class World:
    fed: LocalFederation
    abe: Person
    bea: Person


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    base = tmp_path_factory.mktemp("legs")
    fed = LocalFederation(base / "fed", [DOMAIN], extra=EXTRA)
    try:
        fed.start()

        async def enroll() -> tuple[Person, Person]:
            return (
                await fed.enroll(DOMAIN, "abe", base / "abe"),
                await fed.enroll(DOMAIN, "bea", base / "bea"),
            )

        abe, bea = trio.run(enroll)
        yield World(fed, abe, bea)
    finally:
        fed.close()


@contextlib.asynccontextmanager
async def online(world: World) -> AsyncIterator[tuple[Client, Client]]:
    abe, bea = world.abe.load(), world.bea.load()
    async with abe.online(), bea.online():
        yield abe, bea


async def _metrics(world: World) -> str:
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(world.fed.url(DOMAIN) + "/metrics")
    response.raise_for_status()
    return response.text


async def _media(
    client: Client, grant: LegGrant, kind: TransportKind
) -> tuple[MediaTransport, int]:
    if kind == "quic":
        return await client.media_quic(grant)
    return await client.media_websocket(grant)


class Forger:
    """A ``MediaTransport`` that, every ``INJECT_EVERY`` sends, adds a datagram that does not
    decode and a copy of a real one under another sender id (both for the node to drop)."""

    def __init__(self, inner: MediaTransport) -> None:
        self._inner = inner
        self.sends = 0
        self.injected = 0

    @property
    def kind(self) -> TransportKind:
        return self._inner.kind

    def _with_forgeries(self, payloads: list[bytes]) -> list[bytes]:
        self.sends += 1
        if self.sends % INJECT_EVERY or not payloads:
            return payloads
        self.injected += 1
        real = payloads[0]
        foreign = (int.from_bytes(real[3:7], "big") ^ 0x5A5A5A5A).to_bytes(4, "big")
        return [*payloads, b"\x11garbage", real[:3] + foreign + real[7:]]

    async def send_datagram(self, payload: bytes) -> None:
        await self.send_datagrams([payload])

    async def send_datagrams(self, payloads: Iterable[bytes]) -> None:
        await self._inner.send_datagrams(self._with_forgeries(list(payloads)))

    async def receive_datagram(self) -> bytes:
        return await self._inner.receive_datagram()

    async def receive_datagram_batch(self, limit: int = DATAGRAM_BATCH) -> list[bytes]:
        return await self._inner.receive_datagram_batch(limit)

    def datagrams(self) -> AsyncIterator[bytes]:
        return self._inner.datagrams()

    async def send_control(self, message: bytes) -> None:
        await self._inner.send_control(message)

    async def receive_control(self) -> bytes:
        return await self._inner.receive_control()

    async def aclose(self) -> None:
        await self._inner.aclose()

    def stats(self) -> TransportStats:
        return self._inner.stats()


async def _call(
    abe: Client, bea: Client, kinds: tuple[TransportKind, TransportKind], *, forge: bool = False
) -> tuple[MediaRun, MediaRun, Forger | None]:
    """Bea allocates, Abe bridges, both bind (``kinds``: Abe's, Bea's) and play the
    fixture for ``SECONDS``; (Abe's run, Bea's run, the forger on Abe's side)."""
    granted = await bea.leg_allocate()
    bridged = await abe.leg_bridge(LegRef(DOMAIN, granted.leg_id))
    bea_media, bea_sender = await _media(bea, granted, kinds[1])
    abe_media, abe_sender = await _media(abe, bridged, kinds[0])
    assert abe_sender != bea_sender
    forger = Forger(abe_media) if forge else None
    secret = CallSecret(os.urandom(32))
    runs: dict[Direction, MediaRun] = {}

    async def side(media: MediaTransport, direction: Direction, sender: int) -> None:
        runs[direction] = await run_media(
            media, secret, direction, video=True, seconds=SECONDS, delay=DELAY, sender=sender
        )

    with trio.fail_after(TIME_LIMIT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(side, forger or abe_media, Direction.CALLER_TO_CALLEE, abe_sender)
            nursery.start_soon(side, bea_media, Direction.CALLEE_TO_CALLER, bea_sender)
    await abe.leg_hang_up(bridged.leg_id)
    await abe_media.aclose()
    await bea_media.aclose()
    return runs[Direction.CALLER_TO_CALLEE], runs[Direction.CALLEE_TO_CALLER], forger


def _check(me: MediaRun, peer: MediaRun, kind: TransportKind) -> None:
    """Every frame that arrived decrypted and matched its digest; most arrived."""
    assert me.transport == kind
    assert not me.closed
    s = me.stats
    assert s.decrypt_failures == 0
    assert s.digest_mismatches == 0
    assert s.replays == 0
    assert s.malformed == 0
    assert s.frames_received >= 0.8 * peer.stats.frames_sent > 0


@pytest.mark.parametrize(
    "kinds",
    [("quic", "quic"), ("websocket", "websocket"), ("quic", "websocket"), ("websocket", "quic")],
)
def test_a_call_through_the_node_over_each_transport(
    world: World, kinds: tuple[TransportKind, TransportKind]
) -> None:
    async def main() -> tuple[MediaRun, MediaRun]:
        async with online(world) as (abe, bea):
            abe_run, bea_run, _ = await _call(abe, bea, kinds)
            return abe_run, bea_run

    abe_run, bea_run = trio.run(main)
    _check(abe_run, bea_run, kinds[0])
    _check(bea_run, abe_run, kinds[1])


def test_a_hang_up_pushes_leg_ended_to_the_other_side(world: World) -> None:
    async def main() -> None:
        async with online(world) as (abe, bea):
            granted = await bea.leg_allocate()
            bridged = await abe.leg_bridge(LegRef(DOMAIN, granted.leg_id))
            await abe.leg_hang_up(bridged.leg_id)
            with trio.fail_after(TIME_LIMIT):
                ended = await bea.leg_ended(granted.leg_id)
            assert ended.reason == CALL_PEER_ENDED
            assert bridged.leg_id not in abe.legs.ended  # the one hanging up is answered Ok
            with pytest.raises(Refused) as refused:
                await bea.leg_hang_up(granted.leg_id)
            assert refused.value.node_code == CALL_NO_LEG

    trio.run(main)


def test_garbage_and_a_foreign_sender_are_dropped_and_counted(world: World) -> None:
    async def main() -> tuple[MediaRun, MediaRun, Forger, str, str]:
        before = await _metrics(world)
        async with online(world) as (abe, bea):
            abe_run, bea_run, forger = await _call(abe, bea, ("websocket", "quic"), forge=True)
        assert forger is not None
        return abe_run, bea_run, forger, before, await _metrics(world)

    abe_run, bea_run, forger, before, after = trio.run(main)
    assert forger.injected >= 10
    for reason in ("malformed", "stream_not_bound"):
        grown = metric(after, DROPPED, reason=reason) - metric(before, DROPPED, reason=reason)
        assert grown >= forger.injected, reason
    _check(bea_run, abe_run, "quic")  # the call went on: Bea got Abe's media to the end
    _check(abe_run, bea_run, "websocket")
    batches = metric(after, FORWARD_TIME) - metric(before, FORWARD_TIME)
    assert batches > 0  # each forwarded batch was timed


def test_bridges_to_an_unknown_leg_or_another_domain_are_refused(world: World) -> None:
    async def main() -> tuple[str, str, str, str]:
        before = await _metrics(world)
        async with online(world) as (abe, _):
            with pytest.raises(Refused) as unknown:
                await abe.leg_bridge(LegRef(DOMAIN, os.urandom(16)))
            with pytest.raises(Refused) as remote:
                await abe.leg_bridge(LegRef(OTHER, os.urandom(16)))
        return unknown.value.node_code, remote.value.node_code, before, await _metrics(world)

    unknown, remote, before, after = trio.run(main)
    assert unknown == CALL_NO_LEG
    assert remote == FED_POLICY  # not a federation peer of this node: no media link is tried
    assert metric(after, "sealrelay_call_legs") == metric(before, "sealrelay_call_legs")


def test_a_forced_refresh_pins_a_fresh_home_document(world: World) -> None:
    """What ``media_quic`` does once when the held document lists no endpoint or a pin the
    node no longer serves (``DomainKeys.refresh_home(force=True)``)."""
    client = world.abe.load()
    held = client.keyring.document(DOMAIN)
    assert held is not None

    async def main() -> None:
        await client.domains.refresh_home()  # not due: nothing fetched
        assert client.keyring.document(DOMAIN) is held
        await client.domains.refresh_home(force=True)

    trio.run(main)
    fresh = client.keyring.document(DOMAIN)
    assert fresh is not held  # fetched, verified against the held one and pinned
    assert fresh is not None
    assert fresh.body.server == DOMAIN
