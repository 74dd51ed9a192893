"""Values of the selective forwarding unit (issue 18, "a selective forwarding unit"): what a
sender publishes, what a receiver asks for, the notices the core emits, and its counters.

Plain frozen dataclasses; the decisions are :class:`node.sfu.core.Sfu`'s.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from itertools import pairwise
from typing import Final

from wire.media import MAX_LAYER

Conn = Hashable
"""An opaque local reference to a participant's media connection (a QUIC connection, a
client WebSocket, later a cascade link): where datagrams come from and go to."""

MAX_LAYERS: Final = MAX_LAYER + 1
"""Simulcast layers a sender may publish (the header's layer field has two bits)."""
MAX_VIDEOS: Final = 32
"""Most videos one receiver may ask for (a grid of 32 tiles is already past useful)."""
MAX_HEIGHT: Final = 4320
"""Largest height, in pixels, a receiver may ask for or a layer may declare."""
DEFAULT_BUDGET_KBPS: Final = 4000
"""A receiver's downstream video budget when it names none (kbit/s)."""


@dataclass(frozen=True, slots=True)
class LayerSpec:
    """One simulcast layer a sender publishes: its frame ``height`` (pixels) and its
    ``kbps`` (the sender's target bitrate, what the allocation spends of a budget)."""

    height: int
    kbps: int

    def __post_init__(self) -> None:
        if not 0 < self.height <= MAX_HEIGHT or self.kbps <= 0:
            raise ValueError("a layer has a height in 1..4320 and a positive bitrate")


DEFAULT_LAYERS: Final = (LayerSpec(180, 150), LayerSpec(360, 500), LayerSpec(720, 1500))
"""Three layers, quarter, half and full 720p, at bitrates of the order browsers use."""


def check_layers(layers: tuple[LayerSpec, ...]) -> None:
    """``ValueError`` unless ``layers`` is at most :data:`MAX_LAYERS` layers, lowest first
    (heights and bitrates strictly rising). Empty: the sender sends no video."""
    if len(layers) > MAX_LAYERS:
        raise ValueError(f"at most {MAX_LAYERS} simulcast layers")
    for low, high in pairwise(layers):
        if not (low.height < high.height and low.kbps < high.kbps):
            raise ValueError("simulcast layers go from lowest to highest")


@dataclass(frozen=True, slots=True)
class VideoRequest:
    """What a receiver asks for: up to ``max_videos`` videos, none taller than
    ``max_height`` pixels, within ``budget_kbps`` of downstream bitrate."""

    max_videos: int = 0
    max_height: int = 0
    budget_kbps: int = DEFAULT_BUDGET_KBPS

    def __post_init__(self) -> None:
        if not 0 <= self.max_videos <= MAX_VIDEOS:
            raise ValueError(f"a receiver asks for 0..{MAX_VIDEOS} videos")
        if not 0 <= self.max_height <= MAX_HEIGHT or self.budget_kbps < 0:
            raise ValueError("a height in 0..4320 and a budget not negative")


NO_VIDEO: Final = VideoRequest()
"""A receiver's request until it makes one: audio only."""


@dataclass(frozen=True, slots=True)
class LayerNotice:
    """Tell the sender on ``conn`` to stop (``active`` False) or start again (True)
    sending simulcast ``layer`` of its stream ``sender``: nobody receives it, or somebody
    does again."""

    conn: Conn
    sender: int
    layer: int
    active: bool


@dataclass(frozen=True, slots=True)
class KeyframeRequest:
    """Ask the sender on ``conn`` for a keyframe of ``layer`` of ``sender``: a receiver
    waits for one to switch to that layer (RFC 4585's picture loss indication, in spirit)."""

    conn: Conn
    sender: int
    layer: int


Notice = LayerNotice | KeyframeRequest


class DropReason(StrEnum):
    """Why a datagram went to nobody; each is counted."""

    MALFORMED = "malformed"
    """The clear header does not decode."""
    STREAM_NOT_BOUND = "stream_not_bound"
    """Its sender id is not bound to the connection it came on (another participant's, or
    a forged one)."""
    SILENCE = "silence"
    """Audio without the RFC 6464 voice-activity bit."""
    NOT_SELECTED = "not_selected"
    """Nobody receives this stream now (audio not among the loudest, a video layer nobody
    was allocated, or a layer waiting for its keyframe)."""


@dataclass(frozen=True, slots=True)
class Speakers:
    """The audio selection: the ``dominant`` speaker (None in a silent room) and the
    others ranked by smoothed level, loudest first (``ranked`` starts with the dominant)."""

    dominant: int | None
    ranked: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class SfuStats:
    """Counters for ``/metrics``: participants (connections that joined with a sender of
    their own, never a cascade link), datagrams in, copies forwarded and their bytes, drops
    by reason, layer switches done at keyframes, and the cascade links in the room."""

    participants: int
    received: int
    forwarded: int
    forwarded_bytes: int
    switches: int
    drops: Mapping[DropReason, int]
    links: int = 0
    """Cascade links in the room (:meth:`~node.sfu.core.Sfu.add_link`): another domain's
    node or another replica, not counted in ``participants``."""


@dataclass(frozen=True)
class MeetingStats:
    """The meetings' gauges and counters (``node.metrics.MeetingNumbers`` at a scrape)."""

    rooms: int
    participants: int
    legs: int
    forwarded: int
    forwarded_bytes: int
    drops: dict[str, int]
    binds: int
    refused: int
    delivered_bytes: int = 0
    """Bytes of the copies sent to this node's own participants."""
    link_bytes: dict[str, int] = field(default_factory=dict)
    """Bytes of meeting datagrams over media links, by direction (``in``, ``out``)."""
    link_datagrams: dict[str, int] = field(default_factory=dict)
    link_refused: dict[str, int] = field(default_factory=dict)
    """Cascade senders refused (``sender_taken``) and room messages ignored (``ignored``)."""
    link_ports: int = 0
    """Media links in the rooms (one per room a link joins): not in ``participants``."""
    peer_joins_placed: int = 0
    """Peer domains' room joins served after joining at the holder (``PeerRooms``)."""
