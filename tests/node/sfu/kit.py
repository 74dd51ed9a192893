"""Shared pieces of the forwarding core's tests: datagrams and a meeting set up in a line."""

from __future__ import annotations

from typing import Final

from node.sfu import INTERVAL_MS, Sfu, VideoRequest
from wire.media import SILENCE, MediaHeader, MediaKind, StreamId, encode_datagram

T0: Final = 1_700_000_000_000
PAYLOAD: Final = b"sframe ciphertext, never read by the node"


def audio(sender: int, level: int = 20, *, voice: bool = True, frame: int = 0) -> bytes:
    header = MediaHeader(
        StreamId(sender, MediaKind.AUDIO), group=frame, object=0, frame=frame, packet=0,
        packets=1, keyframe=True, audio_level=level if voice else SILENCE, voice=voice,
    )  # fmt: skip
    return encode_datagram(header, PAYLOAD)


def video(
    sender: int, layer: int, *, keyframe: bool = False, frame: int = 1, packet: int = 0,
    packets: int = 1,
) -> bytes:  # fmt: skip
    header = MediaHeader(
        StreamId(sender, MediaKind.VIDEO, layer), group=frame, object=0 if keyframe else 1,
        frame=frame, packet=packet, packets=packets, keyframe=keyframe,
    )  # fmt: skip
    return encode_datagram(header, PAYLOAD)


def conn(sender: int) -> str:
    return f"conn-{sender}"


def meeting(senders: int, *, videos: int = 0, height: int = 720, budget: int = 4000) -> Sfu:
    """``senders`` participants (sender ids 1..n on ``conn-<id>``), each asking for
    ``videos`` videos up to ``height``."""
    sfu = Sfu(T0)
    for s in range(1, senders + 1):
        sfu.join(conn(s), s)
    for s in range(1, senders + 1):
        sfu.request(conn(s), VideoRequest(videos, height, budget))
    return sfu


def speak(sfu: Sfu, levels: dict[int, int], *, intervals: int = 1, start: int = T0) -> int:
    """Each sender in ``levels`` sends 15 voiced audio datagrams per interval at its level
    (others are silent); ``intervals`` recomputes. The time after the last."""
    now = start
    for _ in range(intervals):
        for _ in range(15):
            for s, level in levels.items():
                sfu.on_datagram(conn(s), audio(s, level))
        now += INTERVAL_MS
        sfu.tick(now)
    return now
