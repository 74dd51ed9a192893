"""Frame signatures through a real node process (issue 18, "Done when": "a member forging
frames under another's stream id is detected by every receiver"): four participants in one
room, three honest (``client.meetings.mediarun.MeetingMedia``, signing their frames with
their identity keys; one of them over the WebSocket fallback) and a forger. The forger holds
the epoch secret like every member, so it makes SFrame frames under its victim's pid, loud,
and sends them on its own (node-bound) stream: the node forwards them and every receiver
decrypts them, but the victim's verified signatures, which came through the node as
signature datagrams on its track, tie the victim's pid to the victim's own sender id. Every
receiver but the victim (which has no key for its own pid) drops every forged frame,
reports the forger's sender id once, naming the victim's stream it claimed, and goes on
playing the victim's own frames: the victim's stream is not condemned anywhere, nor any
other; the node dropped no signature datagram as malformed or silent.

The key schedule runs in this process (``tests.client.meetings.kit.Net``): the node never
sees it, and the test is about what travels through the node."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any, Final

import pytest
import trio

from client.app import Client
from client.calls.fixture import load_fixture
from client.calls.packetizer import OutgoingFrame, Packetizer
from client.meetings.keys import SUITE, kid
from client.meetings.mediarun import MeetingMedia
from suites import sframe
from tests.client.meetings.kit import Net
from tests.integration.fedharness import LocalFederation, Person, metric
from transport.base import MediaTransport
from wire.media import MediaKind
from wire.relay import LegGrant, MeetingJoin, MeetingLeave, Ok

pytestmark = pytest.mark.slow

DOMAIN: Final = "meet-sigs.test"
EXTRA: Final = 'udp_listen = "127.0.0.1:0"'
SECONDS: Final = 7.0
FORGE_AFTER: Final = 2.0  # seconds of honest media first
FORGE_FOR: Final = 3.0
FRAME_SECONDS: Final = 0.02
FORGED_CTR: Final = 1 << 20  # the forger's SFrame counters, far ahead of its victim's
VICTIM, FORGER = 1, 3
TIME_LIMIT: Final = 60.0
PLAYED_AT_LEAST: Final = 0.8
"""Share of the victim's frames each receiver must play (those forged meanwhile do not
count): its stream goes on playing through the forgery."""
FIXTURE = load_fixture()


@dataclass
class World:
    fed: LocalFederation
    people: list[Person]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    base = tmp_path_factory.mktemp("meetsigs")
    fed = LocalFederation(base / "fed", [DOMAIN], extra=EXTRA)
    try:
        fed.start()
        homes = {f"s{i}": (DOMAIN, base / f"s{i}") for i in range(2)}
        enrolled = trio.run(fed.enroll_all, homes)
        yield World(fed, [enrolled[name] for name in sorted(enrolled)])
    finally:
        fed.close()


class ForgedCrypto:
    """SFrame under the victim's KID, from the epoch secret the forger holds as a member."""

    def __init__(self, net: Net, forger: int, victim: int) -> None:
        member = net.members[forger]
        epoch = member.send_epoch
        assert epoch is not None
        self._kid = kid(epoch, victim)
        base_key = member.recv_key(self._kid)
        assert base_key is not None
        self._ctx = sframe.SFrameContext(SUITE)
        self._ctx.add_send_key(self._kid, base_key, next_ctr=FORGED_CTR)

    def protect(self, metadata: bytes, plaintext: bytes, *, now: float) -> bytes:
        return self._ctx.protect(self._kid, metadata, plaintext)

    def unprotect(self, frame: bytes, metadata: bytes, *, now: float) -> bytes:
        raise AssertionError("the forger only sends")


async def _join(
    client: Client, room: bytes, websocket: bool
) -> tuple[LegGrant, MediaTransport, int]:
    grant = await client.link.request(MeetingJoin(0, room, ()))
    assert isinstance(grant, LegGrant)
    bind = client.media_websocket if websocket else client.media_quic
    media, sender = await bind(grant)
    return grant, media, sender


async def _forge(media: MediaTransport, packetizer: Packetizer) -> None:
    """Loud Opus frames under the victim's pid, every 20 ms for :data:`FORGE_FOR` s."""
    await trio.sleep(FORGE_AFTER)
    for index in range(round(FORGE_FOR / FRAME_SECONDS)):
        frame = FIXTURE.frame_at(MediaKind.AUDIO, index)
        out = OutgoingFrame(MediaKind.AUDIO, frame.data, True, 3, True)
        await media.send_datagrams(packetizer.packetize(out, now=time.time()))
        await trio.sleep(FRAME_SECONDS)


def test_a_forged_stream_is_reported_by_every_receiver(world: World) -> None:
    net = Net(4)
    room = os.urandom(16)
    lines: dict[int, list[dict[str, Any]]] = {pid: [] for pid in range(4)}

    async def main() -> tuple[dict[int, dict[str, object]], str, list[int]]:
        async with AsyncExitStack() as stack:
            clients = [p.load() for p in world.people]
            for client in clients:
                await stack.enter_async_context(client.online())
            joined = [await _join(clients[pid % 2], room, websocket=pid == 2) for pid in range(4)]
            runs: dict[int, MeetingMedia] = {}
            for pid, (_, transport, sender) in enumerate(joined):
                if pid == FORGER:
                    continue
                person = net.people[pid]
                runs[pid] = MeetingMedia(
                    transport,
                    sender,
                    net.members[pid],
                    video=False,
                    identity=(person.key, person),
                    emit=lines[pid].append,
                )
            _, forger_media, forger_sender = joined[FORGER]
            forged = Packetizer(ForgedCrypto(net, FORGER, VICTIM), forger_sender)
            with trio.fail_after(TIME_LIMIT):
                async with trio.open_nursery() as nursery:
                    for media in runs.values():
                        nursery.start_soon(media.run, SECONDS, trio.Event())
                    nursery.start_soon(_forge, forger_media, forged)
                metrics = await world.fed.metrics(DOMAIN)
                for client, (grant, transport, _) in zip(
                    [clients[pid % 2] for pid in range(4)], joined, strict=True
                ):
                    assert isinstance(await client.link.request(MeetingLeave(0, grant.leg_id)), Ok)
                    await transport.aclose()
            summaries = {pid: media.summary() for pid, media in runs.items()}
            senders = [sender for _, _, sender in joined]
            for pid, media in runs.items():
                summaries[pid]["speakers"] = sorted(media.speakers)
                summaries[pid]["played_victim"] = media.played[(VICTIM, senders[VICTIM])]
                summaries[pid]["played_forged"] = media.played[(VICTIM, senders[FORGER])]
            return summaries, metrics, senders

    summaries, metrics, senders = trio.run(main)
    report = "\n".join(f"{pid}: {summaries.get(pid)} {lines[pid]}" for pid in range(4))
    for pid in (0, 2):  # every receiver but the victim and the forger
        forged = [line for line in lines[pid] if line.get("event") == "forged_stream"]
        assert len(forged) == 1, report  # the forger's, and no stream condemned
        assert forged[0]["sender"] == senders[FORGER], report  # the forger's connection
        assert forged[0]["pid"] is None, report  # (it signs nothing of its own)
        assert forged[0]["claimed_pid"] == VICTIM, report
        assert forged[0]["claimed_address"] == net.people[VICTIM].entry(VICTIM).address
        assert (forged[0]["kind"], forged[0]["layer"]) == ("audio", 0)
        assert forged[0]["reason"] == "forged_frame", report
        summary = summaries[pid]
        assert summary["forged_streams"] == 1, report
        assert summary["forged_senders"] == 1, report
        assert isinstance(summary["forged_frames_dropped"], int)
        assert summary["forged_frames_dropped"] > 0, report  # the forged frames not played
        assert summary["played_forged"] == 0, report  # none of them
        assert isinstance(summary["played_victim"], int)
        assert isinstance(summaries[VICTIM]["frames_sent"], int)
        played_enough = PLAYED_AT_LEAST * summaries[VICTIM]["frames_sent"]
        assert summary["played_victim"] >= played_enough, report  # still opening, all along
        assert summary["decrypt_failures"] == 0, report
        assert summary["speakers"] == sorted({0, 2, VICTIM} - {pid}), report  # pids heard
    victim = summaries[VICTIM]
    assert victim["forged_streams"] == 0, report  # it cannot open frames under its own pid
    assert isinstance(victim["no_key"], int)
    assert victim["no_key"] > 0, report
    for summary in summaries.values():
        assert isinstance(summary["signatures_sent"], int)
        assert isinstance(summary["signatures_received"], int)
        assert summary["signatures_sent"] >= SECONDS - 1, report  # one a second per stream
        assert summary["signatures_received"] >= SECONDS - 1, report
        assert summary["frames_received"] > 0, report
    assert metric(metrics, "sealrelay_meeting_dropped_total", reason="malformed") == 0
    assert metric(metrics, "sealrelay_meeting_dropped_total", reason="stream_not_bound") == 0
