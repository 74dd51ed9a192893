"""The core of 1:1 encrypted calls (issue 17, DESIGN section 9): signalling and media, pure,
no I/O, and the one trio shell that plays media over a transport (``runner``).

    keys          call secret -> per-direction SFrame key chains (HKDF-SHA512), rekeying
    packetizer    encoded frame -> SFrame (RFC 9605) -> datagrams of <= 1,200 bytes
    reassembly    datagrams -> whole frames (bounded), delivered-frame window
    receiver      decrypt, replay and digest checks, jitter buffer, loss/late/jitter/latency
    stats         RFC 3550 jitter, latency percentiles, the call summary (``CallStats``)
    fixture       the shipped Opus + VP8 clip (``fixture.bin``) and a looping schedule
    make_fixture  regenerates ``fixture.bin`` with PyAV (the ``media`` extra)
    errors        ``CallError`` and its subclasses
    signal        one call's signalling state machine (offer, ringing, answer, reject, busy,
                  hang-up, key update; ring timeout), time injected
    signal_table  its transitions as data; signal_events: end codes, events, timeouts
    signal_registry  the calls of one device by id; automatic Busy; glare
    runner        the trio shell (not re-exported here): plays one side of a call's media,
                  paced from the fixture, over a ``transport.MediaTransport``; its summary
    callnet       the trio shell of signalling (not re-exported): call notes in, signals out
                  over the client's send path, timers, events to subscribers
    control       one call from dial or ring to summary: legs, media binding (QUIC, falling
                  back to the WebSocket), the runner; what ``sealrelay client call|answer`` run
    primed        the callee waits for the caller's first datagram before sending

The clear datagram header is :mod:`wire.media`; QUIC (RFC 9000, RFC 9221 datagrams) and the
WebSocket fallback (:mod:`transport`) carry the datagrams and are not part of this package.
"""

from client.calls.errors import CallError, FixtureError, MediaKeyError
from client.calls.fixture import Fixture, FixtureFrame, load_fixture, play, schedule
from client.calls.keys import CallSecret, Direction, MediaCrypto
from client.calls.packetizer import OutgoingFrame, Packetizer
from client.calls.receiver import FixtureCheck, ReceivedFrame, Receiver
from client.calls.stats import CallStats

__all__ = [
    "CallError",
    "CallSecret",
    "CallStats",
    "Direction",
    "Fixture",
    "FixtureCheck",
    "FixtureError",
    "FixtureFrame",
    "MediaCrypto",
    "MediaKeyError",
    "OutgoingFrame",
    "Packetizer",
    "ReceivedFrame",
    "Receiver",
    "load_fixture",
    "play",
    "schedule",
]
