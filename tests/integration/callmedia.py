"""A 1:1 call's media exchanged by two test clients over their bound QUIC connections, for
the replicas' call tests (``test_node_calls_replicas``, ``test_node_peer_elsewhere``): raw
datagrams both ways (byte for byte but the sender id, which each hop rewrites), then the
Opus + VP8 fixture played both ways through the client's media runner; and the call's
bridge and hang-ups from either side."""

from __future__ import annotations

import os
from typing import Final

import trio

from client.app import Client
from client.calls.keys import CallSecret, Direction
from client.calls.runner import MediaRun, run_media
from tests.node.calls.helpers import datagram
from transport.base import MediaTransport
from wire.calls import LegRef
from wire.relay import LegGrant

RAW: Final = 20
SECONDS: Final = 3.0
DELAY: Final = 0.25  # jitter buffer: generous, the machine's cores are shared
STEP: Final = 30.0


def unsendered(data: bytes) -> bytes:
    """A datagram without its sender id (bytes 3-6)."""
    return data[:3] + data[7:]


async def raw(sender: MediaTransport, sid: int, receiver: MediaTransport) -> None:
    """``RAW`` datagrams from ``sender`` arrive at ``receiver`` as they were sent, but for
    the sender id; a few may be lost (datagrams are unreliable), none altered."""
    sent = [datagram(sid, os.urandom(100), frame=i) for i in range(RAW)]
    expected = {unsendered(d) for d in sent}
    received: list[bytes] = []
    with trio.move_on_after(5.0):
        for data in sent:
            await sender.send_datagram(data)
            await trio.sleep(0.01)
        while len(received) < RAW:
            received += await receiver.receive_datagram_batch()
    assert len(received) >= RAW * 3 // 4
    assert all(unsendered(d) in expected for d in received)


async def exchange(
    caller: MediaTransport, caller_sender: int, callee: MediaTransport, callee_sender: int
) -> tuple[MediaRun, MediaRun]:
    """Raw datagrams both ways, then the fixture played both ways at once; the caller's
    run and the callee's."""
    await raw(caller, caller_sender, callee)
    await raw(callee, callee_sender, caller)
    secret = CallSecret(os.urandom(32))
    runs: dict[Direction, MediaRun] = {}

    async def side(media: MediaTransport, direction: Direction, sender: int) -> None:
        runs[direction] = await run_media(
            media, secret, direction, video=True, seconds=SECONDS, delay=DELAY, sender=sender
        )

    with trio.fail_after(STEP):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(side, caller, Direction.CALLER_TO_CALLEE, caller_sender)
            nursery.start_soon(side, callee, Direction.CALLEE_TO_CALLER, callee_sender)
    return runs[Direction.CALLER_TO_CALLEE], runs[Direction.CALLEE_TO_CALLER]


def played(me: MediaRun, peer: MediaRun) -> None:
    """``me`` ran on QUIC to the end and received most of what ``peer`` sent, intact."""
    s = me.stats
    assert (me.transport, me.closed) == ("quic", False)
    assert (s.decrypt_failures, s.digest_mismatches, s.replays, s.malformed) == (0, 0, 0, 0)
    assert s.frames_received >= 0.8 * peer.stats.frames_sent > 0


async def bridge(caller: Client, callee: Client, domain: str) -> tuple[LegGrant, LegGrant]:
    """The callee's new leg (at ``domain``, its node) and the caller's leg bridged to it:
    ``(bridged, granted)``."""
    granted = await callee.leg_allocate()
    bridged = await caller.leg_bridge(LegRef(domain, granted.leg_id))
    return bridged, granted


async def hang_ups(
    caller: Client, callee: Client, domain: str, bridged: LegGrant, granted: LegGrant
) -> list[str]:
    """The caller hangs up the call ``bridged`` -> ``granted``, then the callee a new one:
    the reasons the other side's ``LegEnded`` gave, in that order."""
    reasons = []
    with trio.fail_after(STEP):
        await caller.leg_hang_up(bridged.leg_id)
        reasons.append((await callee.leg_ended(granted.leg_id)).reason)
        bridged, granted = await bridge(caller, callee, domain)
        await callee.leg_hang_up(granted.leg_id)
        reasons.append((await caller.leg_ended(bridged.leg_id)).reason)
    return reasons
