"""Two in-process nodes of two domains with ``udp_listen`` and each other in ``[peers]``
(issue 17; node.server wires ``node.calls.links``): ``relay.media_links.bridge`` on one
node fetches the other's key document over federation HTTP, opens and proves a QUIC link
to the port it lists, joins the far leg, and media datagrams cross both nodes; the link
shows on ``/metrics``."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import Final

import httpx
import pytest
import trio

from node.calls import Leg
from node.config import Config
from node.server import NodeHandle, run_node
from tests.node.calls.helpers import datagram
from transport import QuicChannel, connect_quic
from wire import encode
from wire.calls import LegRef
from wire.media_control import MediaBind, MediaBound, decode_bind_answer

LOOPBACK: Final = "127.0.0.1"
A, B = "alpha.test", "bravo.test"
STEP_TIMEOUT: Final = 10.0


def _free_ports(count: int) -> list[int]:
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind((LOOPBACK, 0))
        return [int(sock.getsockname()[1]) for sock in socks]


def _config(tmp_path: Path, domain: str, port: int, peer: str, peer_port: int) -> Config:
    return Config(
        domain=domain,
        data_dir=str(tmp_path / domain),
        listen_port=port,
        udp_listen=f"{LOOPBACK}:0",
        store="memory",
        suite="xwing",
        shutdown_timeout=2.0,
        peers={
            peer: {
                "trust": "tofu",
                "min_suite": "xwing",
                "endpoints": [f"http://{LOOPBACK}:{peer_port}"],
            }
        },
    )


@pytest.fixture
async def nodes(tmp_path: Path) -> AsyncIterator[tuple[NodeHandle, NodeHandle]]:
    port_a, port_b = _free_ports(2)
    async with trio.open_nursery() as nursery:
        a: NodeHandle = await nursery.start(
            partial(run_node, _config(tmp_path, A, port_a, B, port_b), handle_signals=False)
        )
        b: NodeHandle = await nursery.start(
            partial(run_node, _config(tmp_path, B, port_b, A, port_a), handle_signals=False)
        )
        yield a, b
        a.shutdown()
        b.shutdown()


async def _bind(node: NodeHandle, leg: Leg, nursery: trio.Nursery) -> tuple[QuicChannel, int]:
    assert node.calls is not None
    with trio.fail_after(STEP_TIMEOUT):
        channel = await connect_quic(nursery, LOOPBACK, _port(node), pin=node.calls.pin)
        await channel.send_control(encode(MediaBind(leg.leg_id, leg.leg_secret)))
        answer = decode_bind_answer(await channel.receive_control())
    assert isinstance(answer, MediaBound)
    return channel, answer.sender


def _port(node: NodeHandle) -> int:
    assert node.relay.media_port is not None
    return node.relay.media_port


async def test_a_bridge_between_two_nodes_over_federation_and_a_quic_link(
    nodes: tuple[NodeHandle, NodeHandle],
) -> None:
    a, b = nodes
    assert a.calls is not None
    assert b.calls is not None
    links = a.relay.media_links
    assert links is not None
    assert a.links is links
    callee = b.calls.core.allocate("bob", b.relay.now_ms())
    caller = a.calls.core.allocate("alice", a.relay.now_ms())
    with trio.fail_after(STEP_TIMEOUT):
        await links.bridge(caller.leg_id, LegRef(B, callee.leg_id))
    async with trio.open_nursery() as nursery:
        (alice, alice_id), (bob, bob_id) = (
            await _bind(a, caller, nursery),
            await _bind(b, callee, nursery),
        )
        await alice.send_datagram(datagram(alice_id, b"to bob"))
        with trio.fail_after(STEP_TIMEOUT):
            (at_bob,) = await bob.receive_datagram_batch()
        assert at_bob[7:] == datagram(alice_id, b"to bob")[7:]  # the sender is the link's
        await bob.send_datagram(datagram(bob_id, b"to alice"))
        with trio.fail_after(STEP_TIMEOUT):
            (at_alice,) = await alice.receive_datagram_batch()
        assert at_alice[7:] == datagram(bob_id, b"to alice")[7:]
        nursery.cancel_scope.cancel()
    async with httpx.AsyncClient() as http:
        metrics_a = (await http.get(a.url + "/metrics")).text.splitlines()
        metrics_b = (await http.get(b.url + "/metrics")).text.splitlines()
    assert "sealrelay_call_links 1.0" in metrics_a
    assert 'sealrelay_call_link_connects_total{direction="outbound"} 1.0' in metrics_a
    assert 'sealrelay_call_link_connects_total{direction="inbound"} 1.0' in metrics_b
    assert "sealrelay_call_bridges 1.0" in metrics_b
