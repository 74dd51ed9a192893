"""Node-to-node media links over real loopback UDP (node.calls.links; issue 17, "the media
path", "node-to-node links authenticate both ends"): two call relays of two domains, each
with real server keys and a signed version 2 key document, in one trio process. A client
leg on A is bridged to a client leg on B; the fixture's frames cross both nodes and
decrypt both ways; a link proof by a key the origin's document does not list is refused;
hang-ups cross the link both ways; a link that goes ends its legs and is opened again."""

from __future__ import annotations

import dataclasses
import secrets
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Final

import pytest
import trio

from client.calls.fixture import load_fixture, play
from client.calls.keys import CallSecret, Direction, MediaCrypto
from client.calls.packetizer import OutgoingFrame, Packetizer
from client.calls.receiver import FixtureCheck, Receiver
from federation.keyring import Keyring
from federation.policy import PeerPolicy
from node.calls import CallRelay, Ended, EndReason, Leg
from node.calls.linkauth import LinkSigner
from node.calls.links import MediaLinks
from node.calls.shell import CallService, wall_clock_ms
from node.errors import CALL_NO_LEG, CALL_UNREACHABLE, FED_AUTH, FED_POLICY, NodeError
from node.keys import ServerKeys, generate
from suites import get_suite
from transport import QuicChannel, QuicIdentity, connect_quic
from wire import encode
from wire.calls import LegRef
from wire.media import MediaKind
from wire.media_control import MediaBind, MediaBound, decode_bind_answer
from wire.media_link import LinkHello, LinkRejected, decode_link_message

LOOPBACK: Final = "127.0.0.1"
ENDPOINT: Final = "http://127.0.0.1:9"
"""The federation endpoint both documents list: only its host matters to a media link."""
STEP_TIMEOUT: Final = 5.0
DOCUMENT_LIFETIME: Final = 86_400
A, B = "a.example", "b.example"
SUITE = get_suite("xwing")
FIXTURE = load_fixture()
SECRET = CallSecret(bytes(range(32)))


@dataclass
class Node:
    domain: str
    keys: ServerKeys
    service: CallService
    links: MediaLinks
    port: int
    nursery: trio.Nursery
    links_scope: trio.CancelScope
    """Cancels :meth:`MediaLinks.run` alone (the node's links stop, its relay goes on)."""
    ended: list[Ended] = field(default_factory=list)

    @property
    def core(self) -> CallRelay:
        return self.service.core

    def document(self) -> bytes:
        now = wall_clock_ms()
        return self.keys.key_document_bytes(
            self.domain, (ENDPOINT,), now, DOCUMENT_LIFETIME, self.port
        )

    def leg(self, owner: str) -> Leg:
        return self.core.allocate(owner, wall_clock_ms())

    async def bind(self, leg: Leg) -> tuple[QuicChannel, int]:
        """A client's media connection bound to ``leg``; (connection, its sender id)."""
        with trio.fail_after(STEP_TIMEOUT):
            channel = await connect_quic(self.nursery, LOOPBACK, self.port, pin=self.service.pin)
            await channel.send_control(encode(MediaBind(leg.leg_id, leg.leg_secret)))
            answer = decode_bind_answer(await channel.receive_control())
        assert isinstance(answer, MediaBound)
        return channel, answer.sender

    def hang_up(self, owner: str, leg: Leg) -> list[Ended]:
        ended = self.core.hang_up(owner, leg.leg_id)
        self.service.close_ended(ended)
        return ended


@dataclass
class Pair:
    a: Node
    b: Node
    documents: dict[str, Callable[[], bytes]]
    """What each domain's federation endpoint serves as its key document."""


def _keyring(domain: str, peer: str, documents: dict[str, Callable[[], bytes]]) -> Keyring:
    async def fetch(name: str, urls: tuple[str, ...]) -> bytes:
        await trio.lowlevel.checkpoint()
        return documents[name]()

    policy = PeerPolicy(peer, trust="tofu", endpoints=(ENDPOINT,), min_suite="xwing")
    return Keyring(domain, {peer: policy}, fetch, clock=time.time)


@asynccontextmanager
async def _node(
    nursery: trio.Nursery,
    domain: str,
    peer: str,
    documents: dict[str, Callable[[], bytes]],
    signer: Callable[[ServerKeys], LinkSigner],
) -> AsyncIterator[Node]:
    keys = generate(SUITE)
    ended: list[Ended] = []
    service = CallService(CallRelay(secrets.token_bytes), keys.quic, on_ended=ended.append)
    address = await nursery.start(service.serve, LOOPBACK, 0)
    links = MediaLinks(
        service,
        domain,
        _keyring(domain, peer, documents),
        lambda: signer(keys),
        random=secrets.token_bytes,
        join_timeout=STEP_TIMEOUT,
    )
    service.accept_links(links)
    scope = trio.CancelScope()

    async def run_links(*, task_status: trio.TaskStatus[None]) -> None:
        with scope:
            await links.run(task_status=task_status)

    await nursery.start(run_links)
    node = Node(domain, keys, service, links, address[1], nursery, scope, ended)
    documents[domain] = node.document
    yield node


def _own_keys(keys: ServerKeys) -> LinkSigner:
    return keys


@asynccontextmanager
async def two_nodes(
    signer_a: Callable[[ServerKeys], LinkSigner] = _own_keys,
) -> AsyncIterator[Pair]:
    documents: dict[str, Callable[[], bytes]] = {}
    async with trio.open_nursery() as nursery:
        async with (
            _node(nursery, A, B, documents, signer_a) as a,
            _node(nursery, B, A, documents, _own_keys) as b,
        ):
            yield Pair(a, b, documents)
        nursery.cancel_scope.cancel()


async def _call(pair: Pair) -> tuple[Leg, Leg]:
    """Alice's leg on A bridged to Bob's leg on B, as the rendezvous does it."""
    callee = pair.b.leg("bob")
    caller = pair.a.leg("alice")
    with trio.fail_after(STEP_TIMEOUT):
        await pair.a.links.bridge(caller.leg_id, LegRef(B, callee.leg_id))
    return caller, callee


async def _receive(channel: QuicChannel, count: int) -> list[bytes]:
    received: list[bytes] = []
    with trio.fail_after(STEP_TIMEOUT):
        while len(received) < count:
            received += await channel.receive_datagram_batch()
    return received


async def _until(condition: Callable[[], bool]) -> None:
    with trio.fail_after(STEP_TIMEOUT):
        while not condition():  # noqa: ASYNC110 - polled state, no event to wait on
            await trio.sleep(0.005)


async def test_media_crosses_both_nodes_and_decrypts_both_ways() -> None:
    async with two_nodes() as pair:
        caller_leg, callee_leg = await _call(pair)
        (caller, caller_id), (callee, callee_id) = (
            await pair.a.bind(caller_leg),
            await pair.b.bind(callee_leg),
        )
        up = Packetizer(MediaCrypto(SECRET, Direction.CALLER_TO_CALLEE, now=0.0), caller_id)
        down = Packetizer(MediaCrypto(SECRET, Direction.CALLEE_TO_CALLER, now=0.0), callee_id)
        at_callee = Receiver(
            MediaCrypto(SECRET, Direction.CALLEE_TO_CALLER, now=0.0), check=FixtureCheck(FIXTURE)
        )
        at_caller = Receiver(
            MediaCrypto(SECRET, Direction.CALLER_TO_CALLEE, now=0.0), check=FixtureCheck(FIXTURE)
        )
        for s in play(FIXTURE, (MediaKind.AUDIO, MediaKind.VIDEO), 500_000):
            now = s.at_us / 1e6
            outgoing = OutgoingFrame.from_fixture(s.frame)
            sent = up.packetize(outgoing, now=now)
            await caller.send_datagrams(sent)
            for d in await _receive(callee, len(sent)):
                at_callee.receive(d, now=now + 0.01)
            back = down.packetize(outgoing, now=now)
            await callee.send_datagrams(back)
            for d in await _receive(caller, len(back)):
                at_caller.receive(d, now=now + 0.01)
        at_callee.finish()
        at_caller.finish()

        assert at_callee.counters.frames_received == up.frames_sent == 25 + 15
        assert at_caller.counters.frames_received == down.frames_sent == 25 + 15
        for counters in (at_callee.counters, at_caller.counters):
            assert (counters.decrypt_failures, counters.digest_mismatches) == (0, 0)
        for node in (pair.a, pair.b):
            stats = node.core.stats()
            assert (stats.legs, stats.remote_legs, stats.bridges) == (1, 1, 1)
            assert sum(stats.drops.values()) == 0
            assert node.links.links_up == 1
        assert pair.a.links.counters.connects == {"outbound": 1}
        assert pair.b.links.counters.connects == {"inbound": 1}


async def test_calls_in_both_directions_reuse_the_one_link() -> None:
    async with two_nodes() as pair:
        await _call(pair)
        await _call(pair)
        back_caller, back_callee = pair.b.leg("carol"), pair.a.leg("dave")
        with trio.fail_after(STEP_TIMEOUT):
            await pair.b.links.bridge(back_caller.leg_id, LegRef(A, back_callee.leg_id))
        assert pair.a.links.counters.connects == {"outbound": 1}
        assert pair.b.links.counters.connects == {"inbound": 1}
        assert pair.a.core.stats().bridges == pair.b.core.stats().bridges == 3


async def test_a_proof_by_a_key_the_document_does_not_list_is_refused() -> None:
    stranger = generate(SUITE)
    async with two_nodes(signer_a=lambda _: stranger) as pair:
        caller, callee = pair.a.leg("alice"), pair.b.leg("bob")
        with pytest.raises(NodeError) as refused, trio.fail_after(STEP_TIMEOUT):
            await pair.a.links.bridge(caller.leg_id, LegRef(B, callee.leg_id))
        assert refused.value.code == CALL_UNREACHABLE
        assert pair.b.links.counters.failures == {f"inbound_{FED_AUTH}": 1}
        assert pair.a.links.counters.failures == {f"outbound_{CALL_UNREACHABLE}": 1}
        assert pair.a.links.links_up == pair.b.links.links_up == 0
        assert pair.b.core.stats().remote_legs == 0
        a_stats = pair.a.core.stats()  # the caller's leg stays, unbridged
        assert (a_stats.legs, a_stats.remote_legs, a_stats.bridges) == (1, 0, 0)


async def test_a_refused_join_leaves_the_callers_leg_for_another_try() -> None:
    async with two_nodes() as pair:
        caller, callee = pair.a.leg("alice"), pair.b.leg("bob")
        with pytest.raises(NodeError) as refused, trio.fail_after(STEP_TIMEOUT):
            await pair.a.links.bridge(caller.leg_id, LegRef(B, bytes(16)))
        assert refused.value.code == CALL_NO_LEG
        assert pair.a.core.stats().bridges == 0
        with trio.fail_after(STEP_TIMEOUT):
            await pair.a.links.bridge(caller.leg_id, LegRef(B, callee.leg_id))
        assert pair.a.core.stats().bridges == pair.b.core.stats().bridges == 1


async def test_a_domain_that_is_not_a_peer_is_refused_by_policy() -> None:
    async with two_nodes() as pair:
        caller = pair.a.leg("alice")
        with pytest.raises(NodeError) as refused:
            await pair.a.links.bridge(caller.leg_id, LegRef("c.example", bytes(16)))
        assert refused.value.code == FED_POLICY


@pytest.mark.parametrize("side", ["caller", "callee"])
async def test_a_hang_up_on_either_node_ends_the_far_leg(side: str) -> None:
    async with two_nodes() as pair:
        caller, callee = await _call(pair)
        (_, _), (callee_conn, _) = await pair.a.bind(caller), await pair.b.bind(callee)
        if side == "caller":
            pair.a.hang_up("alice", caller)
            far, far_leg = pair.b, callee
        else:
            pair.b.hang_up("bob", callee)
            far, far_leg = pair.a, caller
        await _until(lambda: far.core.stats().legs == 0)
        assert [(e.leg_id, e.reason) for e in far.ended if not e.remote] == [
            (far_leg.leg_id, EndReason.PEER_ENDED)
        ]
        for node in (pair.a, pair.b):
            assert node.core.stats().remote_legs == node.core.stats().bridges == 0
            assert node.links.links_up == 1  # the link outlives its calls
        if side == "caller":
            with trio.fail_after(STEP_TIMEOUT):
                await callee_conn.terminated.wait()  # B closed Bob's media connection


async def test_a_link_that_goes_ends_its_legs_and_the_next_bridge_opens_a_new_one() -> None:
    async with two_nodes() as pair:
        caller, callee = await _call(pair)
        link = pair.a.links.link(B)
        assert link is not None
        await link.channel.aclose()
        for node, leg in ((pair.a, caller), (pair.b, callee)):
            await _until(lambda node=node: node.core.stats().legs == 0)
            assert [(e.leg_id, e.reason) for e in node.ended if not e.remote] == [
                (leg.leg_id, EndReason.PEER_ENDED)
            ]
            assert [e.reason for e in node.ended if e.remote] == [EndReason.OWNER_GONE]
        await _until(lambda: pair.a.links.links_up == pair.b.links.links_up == 0)
        await _call(pair)
        assert pair.a.links.counters.connects == {"outbound": 2}
        assert pair.a.core.stats().bridges == pair.b.core.stats().bridges == 1


async def test_a_pin_the_peer_rotated_away_from_is_fetched_again_once() -> None:
    """The first document A gets of B names a QUIC key B no longer serves: A's dial meets
    another key, fetches B's document again and links with the pin it lists now."""
    async with two_nodes() as pair:
        current = pair.documents[B]
        old_keys = dataclasses.replace(pair.b.keys, quic=QuicIdentity.generate())
        served: list[bytes] = []

        def document() -> bytes:
            if not served:
                now = wall_clock_ms() - 1_000
                old = old_keys.sign_document(B, (ENDPOINT,), now, DOCUMENT_LIFETIME, pair.b.port)
                served.append(encode(old))
            else:
                served.append(current())
            return served[-1]

        pair.documents[B] = document
        await _call(pair)
        assert len(served) == 2
        assert pair.a.links.counters.connects == {"outbound": 1}
        assert pair.a.core.stats().bridges == 1


async def test_a_node_whose_links_stop_closes_them_and_the_peer_ends_its_legs_at_once() -> None:
    """Well within QUIC's idle timeout (30 s): the stopping node sends CONNECTION_CLOSE."""
    async with two_nodes() as pair:
        _, callee = await _call(pair)
        pair.a.links_scope.cancel()
        await _until(lambda: pair.b.core.stats().legs == 0)
        assert [(e.leg_id, e.reason) for e in pair.b.ended if not e.remote] == [
            (callee.leg_id, EndReason.PEER_ENDED)
        ]
        assert pair.b.links.links_up == 0


async def test_a_hello_for_another_domain_is_refused() -> None:
    async with two_nodes() as pair:
        with trio.fail_after(STEP_TIMEOUT):
            b = pair.b
            channel = await connect_quic(b.nursery, LOOPBACK, b.port, pin=b.service.pin)
            await channel.send_control(encode(LinkHello(A, "c.example")))
            answer = decode_link_message(await channel.receive_control())
            await channel.terminated.wait()
        assert isinstance(answer, LinkRejected)
        assert answer.code == FED_AUTH
        assert pair.b.links.counters.failures == {f"inbound_{FED_AUTH}": 1}


async def test_a_malformed_message_on_a_link_closes_it_and_ends_its_legs() -> None:
    async with two_nodes() as pair:
        await _call(pair)
        link = pair.a.links.link(B)
        assert link is not None
        await link.channel.send_control(b"\x93 not a bridge message")
        for node in (pair.a, pair.b):
            await _until(lambda node=node: node.core.stats().legs == 0)
        assert pair.a.links.links_up == pair.b.links.links_up == 0


async def test_bridges_started_together_share_one_new_link() -> None:
    async with two_nodes() as pair:
        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(_call, pair)
        assert pair.a.links.counters.connects == {"outbound": 1}
        assert pair.a.core.stats().bridges == pair.b.core.stats().bridges == 3
