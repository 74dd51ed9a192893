"""Frame signatures in band (issue 18: "each sender signs, at intervals, a hash of its
recent frames with its identity key, and receivers drop and report a stream whose
signatures fail"): ``client.meetings.frameauth``'s signatures carried as signature
datagrams on the tracks they cover. Pure: time is an argument (ms), signing injected.

Sender (:class:`SignatureSender`): each frame sent goes to its
:class:`~client.meetings.frameauth.FrameSigner` (the SFrame ciphertext, its epoch and its
place in its stream); each ``FrameSignature`` due (every
:data:`~client.meetings.frameauth.SIGN_EVERY_FRAMES` frames or
:data:`~client.meetings.frameauth.SIGN_INTERVAL_MS`, per stream) is encoded and split, as a
frame is (``client.calls.packetizer.split``), into signature datagrams
(``wire.media.TYPE_SIGNATURE``) under the node-assigned sender id, the kind and layer of the
stream it covers, so the node's forwarding unit sends it to exactly that track's receivers;
the header's ``frame`` numbers the track's signatures.

Receiver (:class:`SignatureReceiver`): signature datagrams are reassembled per (track,
signature index) apart from frames (:class:`~client.calls.reassembly.Reassembler`, within
:data:`REASSEMBLY_TIMEOUT`), decoded (``wire.meeting.FrameSignature``) and handed to the
:class:`~client.meetings.frameauth.FrameVerifier`; every frame that authenticates under
SFrame is handed to it too (:meth:`SignatureReceiver.on_frame`, by pid from its KID, kind,
layer, epoch and frame index), and a frame of a condemned stream is refused, so it is not
played. The signer's identity key is checked against the roster's fingerprint of the pid
(:func:`roster_fingerprint`), never taken from the datagram's sender id. The sender id is
handed on with the signature all the same: it is the one thing a member cannot choose
(the node binds it to the connection), so a signature that fails is blamed on it, and
condemns the pid it names only on the sender id that pid's verified signatures arrive on
(``client.meetings.attribution``). A frame is handed on with the sender id of its datagrams
for the same reason: one that came on a sender id not its pid's is refused and reported as
that sender's forgery (:attr:`SignatureReceiver.forgeries`), and its pid's stream is left
alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from client.calls.packetizer import split
from client.calls.reassembly import Outcome, Reassembler
from client.meetings.attribution import Forgery
from client.meetings.frameauth import FrameSigner, FrameVerifier, StreamReport
from client.meetings.keys import MeetingMember
from client.meetings.roster import entry
from wire import WireError, encode
from wire.media import (
    MediaHeader,
    MediaKind,
    StreamId,
    decode_datagram,
    encode_datagram,
    metadata_track,
    signature_header,
)
from wire.meeting import FrameSignature, decode_meeting

REASSEMBLY_TIMEOUT: Final = 2.0
"""Seconds the datagrams of one signature may take to arrive."""
MAX_SIGNATURE_PACKETS: Final = 32
"""Datagrams of one signature at most (the largest ``FrameSignature``, 256 digests, a key
and a CNSA 2.0 hybrid signature, takes 10; one of 50 digests, 6 to 8)."""
_U32: Final = 0xFFFF_FFFF


def roster_fingerprint(member: MeetingMember) -> Callable[[int], bytes | None]:
    """``fingerprint(pid)`` for :class:`FrameVerifier`: the key fingerprint of ``pid`` in the
    last roster ``member`` accepted, None if it is no participant there."""

    def fingerprint(pid: int) -> bytes | None:
        roster = member.roster
        found = None if roster is None else entry(roster, pid)
        return None if found is None else found.fp

    return fingerprint


class SignatureSender:
    """One participant's frames signed, and the signatures as datagrams under ``sender``."""

    def __init__(self, signer: FrameSigner, sender: int) -> None:
        self._signer, self._sender = signer, sender
        self._next: dict[tuple[int, int], int] = {}  # (kind, layer) -> next signature index
        self.signatures = 0
        """Signatures sent."""

    def sent(self, datagrams: list[bytes], ciphertext: bytes, epoch: int, now: int) -> list[bytes]:
        """The frame of ``datagrams`` (SFrame ciphertext ``ciphertext`` under ``epoch``) is
        sent; the signature datagrams now due."""
        header, _ = decode_datagram(datagrams[0])
        s = header.stream
        due = self._signer.add(int(s.kind), s.layer, epoch, header.frame, ciphertext, now)
        return self._datagrams(due)

    def tick(self, now: int) -> list[bytes]:
        """The signature datagrams of the windows open for their interval."""
        return self._datagrams(self._signer.tick(now))

    def flush(self) -> list[bytes]:
        """The signature datagrams of every open window (the sender stops)."""
        return self._datagrams(self._signer.flush())

    def _datagrams(self, signatures: list[FrameSignature]) -> list[bytes]:
        out: list[bytes] = []
        for signature in signatures:
            body = signature.body
            track = (body.kind, body.layer)
            index = self._next.get(track, 0)
            self._next[track] = (index + 1) & _U32
            stream = StreamId(self._sender, MediaKind(body.kind), body.layer)
            parts = split(encode(signature))
            out += [
                encode_datagram(signature_header(stream, index, i, len(parts)), part)
                for i, part in enumerate(parts)
            ]
            self.signatures += 1
        return out


class SignatureReceiver:
    """The signatures and frames one participant receives, checked by a
    :class:`FrameVerifier`."""

    def __init__(self, verifier: FrameVerifier) -> None:
        self.verifier = verifier
        self._reassembler = Reassembler(
            timeout=REASSEMBLY_TIMEOUT, max_packets=MAX_SIGNATURE_PACKETS
        )
        self.signatures = 0
        """Signatures received whole (verified or not)."""
        self.malformed = 0
        """Signature datagrams or signatures that did not decode."""
        self.dropped = 0
        """Frames refused: their stream was condemned."""
        self.reports: list[StreamReport] = []
        """Every stream condemned so far, in order."""
        self._told = 0  # forgeries handed out by new_forgeries()

    def on_datagram(self, header: MediaHeader, payload: bytes, now: int) -> None:
        """One signature datagram (``header.is_signature``) that arrived at ``now`` (ms)."""
        outcome, whole = self._reassembler.add(header, payload, now / 1000)
        if outcome is Outcome.MALFORMED:
            self.malformed += 1
        if whole is None:
            return
        try:
            signature = decode_meeting(whole.ciphertext)
        except WireError:
            self.malformed += 1
            return
        if not isinstance(signature, FrameSignature):
            self.malformed += 1
            return
        self.signatures += 1
        self.verifier.on_signature(signature, now, header.stream.sender)

    def on_frame(
        self,
        pid: int,
        epoch: int,
        metadata: bytes,
        ciphertext: bytes,
        now: int,
        sender: int | None = None,
    ) -> bool:
        """A frame of ``pid`` under ``epoch`` authenticated (SFrame), on node sender id
        ``sender`` (None: unknown); False: drop it, it is not its pid's or its stream is
        condemned."""
        try:
            kind, layer, frame = metadata_track(metadata)
        except WireError:
            return True  # not a frame of ours to judge: SFrame already bound its metadata
        stream = (pid, int(kind), layer)
        if self.verifier.on_frame(stream, epoch, frame, ciphertext, now, sender):
            return True
        self.dropped += 1
        return False

    def tick(self, now: int) -> list[StreamReport]:
        """Streams condemned since the last call (also for frames left unsigned)."""
        self._reassembler.expire(now / 1000)
        reports = self.verifier.tick(now)
        self.reports += reports
        return reports

    @property
    def forgeries(self) -> list[Forgery]:
        """Every sender id reported so far for signatures or frames naming a pid not its
        own (``client.meetings.attribution``), in order."""
        return self.verifier.forgeries

    def new_forgeries(self) -> list[Forgery]:
        """The :attr:`forgeries` reported since the last call."""
        out = self.verifier.forgeries[self._told :]
        self._told += len(out)
        return out
