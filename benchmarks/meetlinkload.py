"""The load process's parts for a cascaded meeting (``benchmarks.meetlink``; used by
``benchmarks.meetload``): joining the anchor's room with ``MeetingJoinAt`` (again while the
anchor has no room yet), one simulcast layer of video from a participant and the requests
of the participants who watch it, and the bytes received per speaker.

A video datagram is a ``wire.media`` video header (one layer, every frame a one-packet
keyframe, :data:`VIDEO_FPS` a second) and :data:`VIDEO_BYTES` of payload that starts with
the same probe stamp as an audio frame (``benchmarks.meetload.STAMP``): the node never
reads a payload, and the receivers count it as the sender's bytes."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Final

import trio

from client.app import Client
from client.errors import Refused
from transport import MediaTransport, TransportError
from wire.media import MediaHeader, MediaKind, StreamId
from wire.relay import MeetingJoinAt, MeetingLayerSpec, MeetingVideo, Ok

NO_ROOM: Final = "meeting.no_room"
NO_ROOM_RETRY: Final = 0.2
"""Seconds between two ``MeetingJoinAt`` while the anchor has no room yet."""
VIDEO_LAYER: Final = MeetingLayerSpec(180, 150)
VIDEO_FPS: Final = 20
VIDEO_BYTES: Final = 900
"""Payload of a video frame: 20 a second, 144 kbit/s (the layer's 150)."""
WATCH: Final = (1, 180, 1000)
"""A watcher's ``MeetingVideo``: one video, up to 180 lines, 1000 kbit/s."""


async def join_at(client: Client, room: bytes, anchor: str, video: bool) -> object:
    """``MeetingJoinAt`` ``anchor``'s ``room`` (with :data:`VIDEO_LAYER` when ``video``),
    asked again every :data:`NO_ROOM_RETRY` s while the anchor answers ``meeting.no_room``
    (the anchor's own participants create the room with their first join)."""
    layers = (VIDEO_LAYER,) if video else ()
    while True:
        try:
            return await client.link.request(MeetingJoinAt(0, room, layers, anchor))
        except Refused as refused:
            if refused.node_code != NO_ROOM:
                raise
        await trio.sleep(NO_ROOM_RETRY)


async def watch(client: Client, leg_id: int) -> None:
    """Leg ``leg_id`` asks for one video (:data:`WATCH`)."""
    answer = await client.link.request(MeetingVideo(0, leg_id, *WATCH))
    if not isinstance(answer, Ok):
        raise RuntimeError(f"MeetingVideo answered {answer!r}")


def video_datagram(sender: int, seq: int, stamp: bytes) -> bytes:
    """The ``seq``-th video frame of sender id ``sender``, its payload led by ``stamp``."""
    header = MediaHeader(
        StreamId(sender, MediaKind.VIDEO, 0), group=seq, object=0, frame=seq, packet=0,
        packets=1, keyframe=True,
    )  # fmt: skip
    return header.encode() + stamp + bytes(VIDEO_BYTES - len(stamp))


async def send_video(media: MediaTransport, frame: Callable[[int], bytes]) -> None:
    """Send ``frame(seq)`` :data:`VIDEO_FPS` times a second until the connection closes."""
    seq, next_at = 0, trio.current_time()
    while True:
        try:
            await media.send_datagrams([frame(seq)])
        except TransportError:
            return
        seq += 1
        next_at += 1 / VIDEO_FPS
        await trio.sleep_until(next_at)


def heard_from(heard: Counter[tuple[int, int]]) -> dict[str, list[int]]:
    """``{speaker: [bytes all participants received, most one participant received]}``
    from bytes per (participant, speaker)."""
    found: dict[str, list[int]] = {}
    for (_participant, speaker), count in heard.items():
        total, most = found.get(str(speaker), [0, 0])
        found[str(speaker)] = [total + count, max(most, count)]
    return found
