"""What a meeting participant sends and how it tells its received frames apart (issue 18).
Pure.

:class:`PidCrypto` gives :class:`~client.meetings.media.MeetingCrypto` the frame interface of
the calls' packetizer and receiver (``client.calls.keys.FrameCrypto``), so one media path
packetizes, reassembles, jitter-buffers and measures calls and meetings. Frames go out under
the KID of (send epoch, this participant's pid), never under the node-assigned datagram
sender id; a received frame's KID names the pid that sent it, which :class:`PidCrypto`
keeps for the caller (:attr:`PidCrypto.last_pid`). A frame under an epoch this participant
does not hold (sent before it joined, or after it was removed) is not an authentication
failure: it is counted in :attr:`PidCrypto.no_key`, apart from ``decrypt_failures``. A frame
that decrypts but whose stream failed sender authentication, or that came on a node sender
id that is not its pid's (``client.meetings.signatures``, the gate), is refused as well,
counted in :attr:`PidCrypto.dropped`. The calls' receiver hands the frame cipher only the
frame and its metadata, so the caller names the sender id of the datagram it is about to
hand the receiver (:attr:`PidCrypto.arriving`): a frame is completed by one of its own
datagrams, all on one sender id (the reassembly keys frames by stream).

:func:`audio_level` is the microphone's RFC 6464 level of the fixture's audio in a meeting: a
talker's pattern, two-second phrases rising and falling between about -15 and -55 dBov, each
participant at its own pitch of loudness (by pid), always with voice activity, so that the
node's speaker selection has levels to rank and a small meeting hears everyone.

:class:`FixtureFrames` checks a received frame against the fixture: in a meeting a layer
skips the frames sent while the node paused it, so a stream's ``n``-th frame is not the
clip's ``n``-th (``client.calls.receiver.FixtureCheck``); it must be *a* frame of the clip,
of its kind.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from client.calls.fixture import Fixture
from client.meetings.keys import kid_parts
from client.meetings.media import MeetingCrypto
from suites.sframe import SFrameError, UnknownKidError
from wire.media import MAX_AUDIO_LEVEL, MediaKind, StreamId

PHRASE_FRAMES: Final = 100
"""Audio frames (20 ms each) in one phrase of the speaking pattern: two seconds."""
LOUDEST: Final = 15
"""The loudest level of the pattern (-dBov)."""
SWING: Final = 40
"""How far the level falls within a phrase (dB)."""
PID_SPREAD: Final = 7
"""Participants differ by up to this many dB at the same point of a phrase."""


FrameGate = Callable[[int, int, bytes, bytes, float, int | None], bool]
"""``gate(pid, epoch, metadata, ciphertext, now, sender)``: whether a frame that decrypted,
whose datagrams came on node sender id ``sender`` (None: unknown), may play
(``client.meetings.signatures.SignatureReceiver.on_frame``: not if it came on a sender id
that is not its pid's, nor if its stream is condemned)."""


class StreamDropped(SFrameError):
    """The frame decrypted, but it is not its pid's or its stream failed sender
    authentication: it is not played."""

    code = "meeting.stream_dropped"


class PidCrypto:
    """:class:`MeetingCrypto` behind the calls' frame interface (module docstring). With a
    ``gate``, a frame that decrypts is played only if the gate lets it through (else
    :class:`StreamDropped`, counted in :attr:`dropped`)."""

    def __init__(self, crypto: MeetingCrypto, gate: FrameGate | None = None) -> None:
        self._crypto = crypto
        self._gate = gate
        self.opened = 0
        """Frames that decrypted."""
        self.last_pid: int | None = None
        """The pid of the last frame that decrypted."""
        self.no_key = 0
        """Frames under an epoch not held (not counted as authentication failures)."""
        self.dropped = 0
        """Frames that decrypted but that the gate refused (a condemned stream)."""
        self.last_sealed = b""
        """The SFrame ciphertext of the last frame protected (what its sender signs)."""
        self.arriving: int | None = None
        """The node sender id of the datagram being received (set by the caller before it
        hands one to the receiver; None: unknown), handed to the gate."""

    @property
    def send_epoch(self) -> int | None:
        """The epoch of the last frame protected."""
        kid = self._crypto.send_kid
        return None if kid is None else kid_parts(kid)[0]

    def protect(self, metadata: bytes, plaintext: bytes, *, now: float) -> bytes:
        self.last_sealed = self._crypto.protect(metadata, plaintext)
        return self.last_sealed

    def unprotect(self, frame: bytes, metadata: bytes, *, now: float) -> bytes:
        gate = self._gate

        def admit(pid: int, epoch: int) -> bool:
            return gate is None or gate(pid, epoch, metadata, frame, now, self.arriving)

        try:
            opened = self._crypto.open(frame, metadata, admit)
        except UnknownKidError:
            self.no_key += 1
            raise
        if opened is None:  # (it counts in no anti-replay window: client.meetings.media)
            self.dropped += 1
            raise StreamDropped("the frame failed sender authentication")
        pid, _, plaintext = opened
        self.opened += 1
        self.last_pid = pid
        return plaintext


def audio_level(pid: int, index: int) -> tuple[int, bool]:
    """``(level, voice)`` of audio frame ``index`` of participant ``pid`` (module docstring)."""
    step = index % PHRASE_FRAMES
    fall = SWING * step // PHRASE_FRAMES  # loud at the start of a phrase, trailing off
    level = LOUDEST + (pid * 3) % PID_SPREAD + fall
    return min(level, MAX_AUDIO_LEVEL - 1), True


@dataclass(frozen=True)
class Layer:
    """One simulcast layer this participant publishes: what it tells the node."""

    height: int
    kbps: int


VIDEO_LAYERS: Final = (Layer(180, 150), Layer(360, 500))
"""The simulcast layers of ``--video``: both carry the fixture's one VP8 encoding (there
is no encoder here), labelled as two layers, so the node's allocation, pausing and
resuming work as with a real simulcast sender."""


@dataclass(frozen=True)
class FixtureFrames:
    """``client.calls.receiver.FrameCheck``: the frame is one of ``fixture``'s, of its kind."""

    fixture: Fixture
    _digests: dict[MediaKind, frozenset[bytes]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        digests = {k: frozenset(f.sha256 for f in self.fixture.of_kind(k)) for k in MediaKind}
        object.__setattr__(self, "_digests", digests)

    def matches(self, stream: StreamId, frame: int, data: bytes) -> bool:
        return hashlib.sha256(data).digest() in self._digests[stream.kind]
