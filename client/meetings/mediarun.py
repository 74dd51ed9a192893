"""One participant's media in a meeting room: the trio shell around the calls' packetizer and
receiver with the meeting's keys (issue 18; ``client.calls.runner`` is the 1:1 model).

Tasks, over one media connection bound to this participant's meeting leg:

send
    paces the fixture (``client.calls.fixture``) as the microphone and, with ``video``, the
    camera: Opus every 20 ms with the speaking pattern's RFC 6464 level
    (:func:`client.meetings.framing.audio_level`), VP8 on each simulcast layer of
    :data:`~client.meetings.framing.VIDEO_LAYERS` the node has not paused. A layer starts,
    and starts again after a pause, on a keyframe. Every frame is SFrame-encrypted under
    the KID of (send epoch, pid) (:class:`~client.meetings.framing.PidCrypto`).
receive / play-out
    the calls' :class:`~client.calls.receiver.Receiver`: reassembly, decryption with the
    sender's pid key, the fixture digest check (any frame of the clip: a paused layer
    skips frames), the jitter buffer. Each frame that decrypts
    names its pid, so the run knows whose audio (``speakers_heard``) and video
    (``videos_received``) reached it.
frame signatures
    with this participant's identity key (``identity``), each stream's frames are signed
    at intervals and the signatures go out as signature datagrams on the stream's track
    (``client.meetings.signatures``); received signature datagrams are reassembled and
    checked, with every frame that decrypts, by a
    :class:`~client.meetings.frameauth.FrameVerifier`, each frame with the node sender id
    its datagrams came on. A frame that came on a sender id that is not its pid's (a member
    made frames under another's pid) is not played, and that sender id is reported, not
    the pid it claimed, whose own frames keep playing; a stream whose own signatures fail
    or are missing is no longer played, and reported. Each report is a ``forged_stream``
    JSON line (``emit``; for a sender id's forgery it also names the ``sender`` id, the
    ``claimed_pid`` and ``claimed_address``, and ``pid`` is the forger's, when its own
    verified signatures tie it to that sender id, else null) and counts in
    ``forged_streams`` in the summary (``forged_senders``: those that are forgeries).
notices
    the node's ``MediaLayer`` (pause or resume a layer of this stream) and
    ``MediaKeyframe``: on QUIC from the control stream, on the WebSocket fallback from the
    pushes ``MeetingLayer`` / ``MeetingKeyframe`` that ``client.calls.ws_media`` hands out
    the same way. The fixture cannot make a keyframe on demand: a request is counted
    (``keyframe_requests``) and the next keyframe of the clip (one every 2 s) serves it.

Loss: in a meeting a receiver starts a stream in the middle (it joined later, the node
switched it to that sender or layer), so ``frames_lost`` counts the gaps after the first
frame received of each stream, not from frame 0; frames the node chose not to forward
(silence, a speaker not among the loudest) are gaps too. Frames under an epoch not held are
``no_key``, not ``decrypt_failures``.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Final

import trio

from client.calls.fixture import Fixture, ScheduledFrame, load_fixture, play
from client.calls.packetizer import OutgoingFrame, Packetizer
from client.calls.receiver import DEFAULT_DELAY, Receiver
from client.calls.runner import DRAIN, PLAYOUT_TICK
from client.meetings.attribution import Forgery
from client.meetings.errors import MeetingError
from client.meetings.frameauth import FrameSigner, FrameVerifier, StreamReport
from client.meetings.framing import VIDEO_LAYERS, FixtureFrames, PidCrypto, audio_level
from client.meetings.keys import MeetingMember
from client.meetings.media import MeetingCrypto
from client.meetings.roster import Signer, entry
from client.meetings.signatures import SignatureReceiver, SignatureSender, roster_fingerprint
from transport.base import DATAGRAM_BATCH, MediaTransport
from transport.errors import TransportClosed, TransportError
from wire import WireError
from wire.media import (
    TYPE_SIGNATURE,
    VERSION,
    MediaKind,
    StreamId,
    decode_datagram,
    peek_route,
)
from wire.media_control import MediaKeyframe, MediaLayer, decode_notice

Clock = Callable[[], float]
Emit = Callable[[dict[str, object]], None]
AUTH_TICK: Final = 0.2
"""Seconds between checks of the signing windows due and the streams left unsigned."""
_US: Final = 1_000_000
_MS: Final = 1000
_SIGNATURE_BYTE: Final = VERSION << 4 | TYPE_SIGNATURE


def _ms(seconds: float) -> int:
    return round(seconds * _MS)


class MeetingMedia:
    """The media of one participant in one room (module docstring)."""

    def __init__(
        self,
        transport: MediaTransport,
        sender: int,
        member: MeetingMember,
        *,
        video: bool,
        clock: Clock = time.time,
        fixture: Fixture | None = None,
        identity: tuple[bytes, Signer] | None = None,
        emit: Emit | None = None,
    ) -> None:
        self._transport, self._sender, self._member = transport, sender, member
        self._video, self._clock, self._emit = video, clock, emit
        self._fixture = load_fixture() if fixture is None else fixture
        verifier = FrameVerifier(member.meeting, member.verify, roster_fingerprint(member))
        self._checks = SignatureReceiver(verifier)
        self._signing: SignatureSender | None = None
        if identity is not None:
            signer = FrameSigner(member.meeting, member.pid, *identity)
            self._signing = SignatureSender(signer, sender)
        self._crypto = PidCrypto(MeetingCrypto(member), gate=self._gate)
        self._packetizer = Packetizer(self._crypto, sender)
        self._receiver = Receiver(self._crypto, check=FixtureFrames(self._fixture))
        self._paused: set[int] = set()
        self._waiting_key: set[int] = set(range(len(VIDEO_LAYERS)))
        self._first: dict[StreamId, int] = {}
        self.speakers: set[int] = set()
        self.videos: set[int] = set()
        self.played: Counter[tuple[int, int]] = Counter()
        """Frames that decrypted and passed the checks, per (pid, node sender id)."""
        self.keyframe_requests = 0
        self.layer_notices = 0
        self.unsent = 0
        """Frames not sent: no send epoch yet (none after the room is entered)."""
        self.seconds = 0.0

    async def run(self, seconds: float, stop: trio.Event) -> None:
        """Send for ``seconds`` (or until ``stop``), drain, return; a closed transport ends
        it early."""
        start = self._clock()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._guard, self._receive, nursery.cancel_scope)
            nursery.start_soon(self._play_out)
            nursery.start_soon(self._check_streams)
            nursery.start_soon(self._guard, self._notices, None)
            nursery.start_soon(self._stop_on, stop, nursery.cancel_scope)
            await self._guard(lambda: self._send(start, seconds), nursery.cancel_scope)
            nursery.cancel_scope.cancel()
        self._receiver.finish()
        self._report(self._checks.tick(_ms(self._clock())))
        self._report_forgeries(self._checks.new_forgeries())
        self.seconds = round(self._clock() - start, 3)

    def summary(self) -> dict[str, object]:
        """``client call``'s summary keys and the meeting's counters."""
        stats = self._receiver.stats(frames_sent=self._packetizer.frames_sent)
        out: dict[str, object] = dict(stats.as_dict())
        out["frames_lost"] = max(0, stats.frames_lost - sum(self._first.values()))
        out["decrypt_failures"] = (
            stats.decrypt_failures - self._crypto.no_key - self._crypto.dropped
        )
        out.update(
            no_key=self._crypto.no_key,
            forged_streams=len(self._checks.reports) + len(self._checks.forgeries),
            forged_senders=len(self._checks.forgeries),
            forged_frames_dropped=self._crypto.dropped,
            signatures_sent=0 if self._signing is None else self._signing.signatures,
            signatures_received=self._checks.signatures,
            keyframe_requests=self.keyframe_requests,
            layer_notices=self.layer_notices,
            transport=self._transport.kind,
            seconds=self.seconds,
        )
        return out

    # --- tasks -----------------------------------------------------------------------------
    async def _guard(
        self, task: Callable[[], Awaitable[None]], scope: trio.CancelScope | None
    ) -> None:
        try:
            await task()
        except (TransportClosed, TransportError):
            if scope is not None:
                scope.cancel()

    @staticmethod
    async def _stop_on(stop: trio.Event, scope: trio.CancelScope) -> None:
        await stop.wait()
        scope.cancel()

    async def _send(self, start: float, seconds: float) -> None:
        kinds = (MediaKind.AUDIO, MediaKind.VIDEO) if self._video else (MediaKind.AUDIO,)
        pending: list[bytes] = []
        for item in play(self._fixture, kinds, round(seconds * _US)):
            wait = start + item.at_us / _US - self._clock()
            if wait > 0:
                if self._signing is not None:
                    pending += self._signing.tick(_ms(self._clock()))
                await self._flush(pending)
                await trio.sleep(wait)
            pending += self._packetize(item)
        if self._signing is not None:  # the last frames signed too
            pending += self._signing.flush()
        await self._flush(pending)
        await trio.sleep(DEFAULT_DELAY + DRAIN)

    def _packetize(self, item: ScheduledFrame) -> list[bytes]:
        frame = item.frame
        if frame.kind is MediaKind.AUDIO:
            level, voice = audio_level(self._member.pid, item.index)
            outgoing = [OutgoingFrame(MediaKind.AUDIO, frame.data, True, level, voice)]
        else:
            outgoing = [
                OutgoingFrame(MediaKind.VIDEO, frame.data, frame.keyframe, layer=layer)
                for layer in range(len(VIDEO_LAYERS))
                if self._may_send(layer, frame.keyframe)
            ]
        out: list[bytes] = []
        for one in outgoing:
            now = self._clock()
            try:
                datagrams = self._packetizer.packetize(one, now=now)
            except MeetingError:
                self.unsent += 1
                continue
            out += datagrams
            epoch = self._crypto.send_epoch
            if self._signing is not None and epoch is not None:
                sealed = self._crypto.last_sealed
                out += self._signing.sent(datagrams, sealed, epoch, _ms(now))
        return out

    def _may_send(self, layer: int, keyframe: bool) -> bool:
        """Whether to send this video frame on ``layer``: not paused, and a keyframe first."""
        if layer in self._paused:
            return False
        if layer in self._waiting_key:
            if not keyframe:
                return False
            self._waiting_key.discard(layer)
        return True

    async def _flush(self, pending: list[bytes]) -> None:
        if pending:
            await self._transport.send_datagrams(pending)
            pending.clear()

    async def _receive(self) -> None:
        while True:
            batch = await self._transport.receive_datagram_batch(DATAGRAM_BATCH)
            now = self._clock()
            for datagram in batch:
                if not datagram or datagram[0] != _SIGNATURE_BYTE:
                    opened = self._crypto.opened
                    route = peek_route(datagram)
                    self._crypto.arriving = None if route is None else route[0]
                    self._receiver.receive(datagram, now=now)
                    if self._crypto.opened != opened:
                        self._note_frame(datagram)
                else:
                    self._signature(datagram, now)

    def _signature(self, datagram: bytes, now: float) -> None:
        """A signature datagram (``wire.media.TYPE_SIGNATURE``): to its reassembly."""
        try:
            header, payload = decode_datagram(datagram)
        except WireError:
            self._checks.malformed += 1
            return
        self._checks.on_datagram(header, payload, _ms(now))

    def _gate(
        self,
        pid: int,
        epoch: int,
        metadata: bytes,
        ciphertext: bytes,
        now: float,
        sender: int | None,
    ) -> bool:
        """:data:`~client.meetings.framing.FrameGate`: a frame that decrypted, to the
        verifier; False if it is not its pid's or its stream is condemned (not played)."""
        return self._checks.on_frame(pid, epoch, metadata, ciphertext, _ms(now), sender)

    async def _check_streams(self) -> None:
        """Every :data:`AUTH_TICK`: the streams condemned since, as ``forged_stream`` lines."""
        while True:
            await trio.sleep(AUTH_TICK)
            self._report(self._checks.tick(_ms(self._clock())))
            self._report_forgeries(self._checks.new_forgeries())

    def _address(self, pid: int | None) -> str | None:
        roster = self._member.roster
        found = None if roster is None or pid is None else entry(roster, pid)
        return None if found is None else found.address

    def _report_forgeries(self, forgeries: list[Forgery]) -> None:
        """A ``forged_stream`` JSON line for each sender id reported as a forger: the
        forger's pid and address if known, its sender id, and the stream it claimed."""
        if self._emit is None:
            return
        for forgery in forgeries:
            pid, kind, layer = forgery.stream
            self._emit(
                {
                    "event": "forged_stream",
                    "pid": forgery.pid,
                    "address": self._address(forgery.pid),
                    "sender": forgery.sender,
                    "claimed_pid": pid,
                    "claimed_address": self._address(pid),
                    "kind": MediaKind(kind).name.lower(),
                    "layer": layer,
                    "reason": str(forgery.reason),
                }
            )

    def _report(self, reports: list[StreamReport]) -> None:
        """A ``forged_stream`` JSON line for each stream condemned."""
        if self._emit is None:
            return
        for report in reports:
            pid, kind, layer = report.stream
            self._emit(
                {
                    "event": "forged_stream",
                    "pid": pid,
                    "address": self._address(pid),
                    "kind": MediaKind(kind).name.lower(),
                    "layer": layer,
                    "reason": str(report.reason),
                }
            )

    def _note_frame(self, datagram: bytes) -> None:
        """A frame decrypted with this datagram: whose, and where its stream started."""
        pid = self._crypto.last_pid
        header, _ = decode_datagram(datagram)
        self._first.setdefault(header.stream, header.frame)
        if pid is not None:
            self.played[(pid, header.stream.sender)] += 1
            kinds = self.speakers if header.stream.kind is MediaKind.AUDIO else self.videos
            kinds.add(pid)

    async def _play_out(self) -> None:
        while True:
            self._receiver.due(now=self._clock())
            await trio.sleep(PLAYOUT_TICK)

    async def _notices(self) -> None:
        while True:
            data = await self._transport.receive_control()
            try:
                notice = decode_notice(data)
            except WireError:
                continue
            if notice.sender != self._sender:
                continue
            if isinstance(notice, MediaLayer):
                self.layer_notices += 1
                if notice.active:
                    self._paused.discard(notice.layer)
                    self._waiting_key.add(notice.layer)
                else:
                    self._paused.add(notice.layer)
            elif isinstance(notice, MediaKeyframe):
                self.keyframe_requests += 1
