"""The node's selective forwarding unit for meetings (DESIGN section 9; issue 18).

    Sfu                 the pure forwarding core (``core``): participants join with a
                        connection and the sender id bound to it; receivers ask for
                        videos; each datagram's clear header in, the connections to send it
                        to out (a precomputed tuple); notices to senders out of ``tick``
    SpeakerDetector     the dominant speaker and the loudest others from RFC 6464 levels,
                        every 300 ms, with hysteresis (``speakers``)
    allocate            one receiver's simulcast layers: lowest layer for every selected
                        sender first, then the on-stage speaker's raised (``allocation``)
    LayerSpec, VideoRequest, LayerNotice, KeyframeRequest, DropReason, SfuStats, Speakers
                        the values (``model``)

    MeetingLegs         meeting legs and rooms: who binds which media connection into which
                        room, with which sender id (``rooms``, pure)
    MeetingService      the trio shell (``shell``): one core per room, fed by QUIC
                        connections (handed over by ``node.calls.shell.CallService``) and
                        the WebSocket fallback (``node.calls.clients.ClientLegs``); ticks,
                        notices, expiry
    Cascade             a room across domains (``cascade``, pure): on each side the media
                        link is one connection of the room's core, owning the far side's
                        senders and receiving what the far side asked for
    LinkRooms           its trio side (``linkrooms``): rooms anchored at other domains,
                        joined over ``node.calls.links.MediaLinks``

It never decrypts: it reads only ``wire.media`` headers. Bridging cluster replicas through
the cascade is still to come.
"""

from __future__ import annotations

from node.sfu.allocation import allocate, ceiling
from node.sfu.core import AUDIO_STREAMS, Sfu
from node.sfu.model import (
    DEFAULT_BUDGET_KBPS,
    DEFAULT_LAYERS,
    MAX_LAYERS,
    MAX_VIDEOS,
    NO_VIDEO,
    DropReason,
    KeyframeRequest,
    LayerNotice,
    LayerSpec,
    Notice,
    SfuStats,
    Speakers,
    VideoRequest,
)
from node.sfu.speakers import INTERVAL_MS, SpeakerDetector

__all__ = [
    "AUDIO_STREAMS",
    "DEFAULT_BUDGET_KBPS",
    "DEFAULT_LAYERS",
    "INTERVAL_MS",
    "MAX_LAYERS",
    "MAX_VIDEOS",
    "NO_VIDEO",
    "DropReason",
    "KeyframeRequest",
    "LayerNotice",
    "LayerSpec",
    "Notice",
    "Sfu",
    "SfuStats",
    "SpeakerDetector",
    "Speakers",
    "VideoRequest",
    "allocate",
    "ceiling",
]
