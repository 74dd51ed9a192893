"""Shared pieces of the call relay core's tests: injected randomness and datagrams."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Final

from node.calls import CallRelay
from wire.media import MediaHeader, MediaKind, StreamId, encode_datagram

T0: Final = 1_700_000_000_000
PAYLOAD: Final = b"sframe ciphertext, never read by the node"


class Draws:
    """Injected randomness: distinct, reproducible bytes (SHA-256 of a counter), with the
    draws recorded so a test can see which bytes became what."""

    def __init__(self, scripted: Iterable[bytes] = ()) -> None:
        self._scripted = list(scripted)
        self._count = 0
        self.drawn: list[bytes] = []

    def __call__(self, n: int) -> bytes:
        if self._scripted:
            value = self._scripted.pop(0)
            assert len(value) == n
        else:
            self._count += 1
            value = hashlib.sha256(self._count.to_bytes(8, "big")).digest()[:n]
        self.drawn.append(value)
        return value


def relay(draws: Draws | None = None) -> CallRelay:
    return CallRelay(draws or Draws())


def datagram(
    sender: int, payload: bytes = PAYLOAD, *, kind: MediaKind = MediaKind.AUDIO, frame: int = 0
) -> bytes:
    header = MediaHeader(
        StreamId(sender, kind), group=frame, object=0, frame=frame, packet=0, packets=1,
        keyframe=True,
    )  # fmt: skip
    return encode_datagram(header, payload)


def sender_of(data: bytes) -> int:
    return int.from_bytes(data[3:7], "big")
