"""Sender authentication inside a meeting (issue 18: "RFC 9605 gives no sender
authentication inside a group ... each sender signs, at intervals, a hash of its recent
frames with its identity key, and receivers drop and report a stream whose signatures fail").

Every participant holds the epoch secret, so any of them can make SFrame frames under
another's pid (RFC 9605 section 9.5 says as much). Here each sender also signs, per stream
(pid, kind, simulcast layer), the digests of its frames in order::

    digest(frame)  = SHA-384(MEETING_FRAME_DIGEST_INFO || SFrame ciphertext)[:16]
    FrameDigestBody(meeting, pid, kind, layer, epoch, first frame index, digests...)
    FrameSignature = body, signed with the sender's identity key under CTX_MEETING_FRAMES

A signature goes out every :data:`SIGN_EVERY_FRAMES` frames or :data:`SIGN_INTERVAL_MS`,
whichever comes first (and when the epoch changes or the frame indices jump). Signing
each digest, not one hash over the window, keeps it checkable under loss: a receiver checks
the frames it got and ignores those it lost. The signer's identity signing key rides along
in the first :data:`KEY_FIRST` signatures and every :data:`KEY_EVERY`-th; a receiver takes
it only if its fingerprint is the roster's entry for that pid (``client.meetings.roster``),
or is given it (:meth:`FrameVerifier.add_key`, from a pairwise session), and checks the
signatures that came before it (up to :data:`MAX_KEYLESS`) once it has it.

A receiver (:class:`FrameVerifier`) plays frames as they come (waiting a second for each
would ruin a call) and condemns a stream afterwards, reporting it once, when

* a signature claiming it does not verify with the pid's key (``bad_signature``), and it
  came on the node sender id the pid's verified signatures arrive on: one that fails on
  another sender id is that sender's forgery, reported apart and not held against the pid
  it names (``client.meetings.attribution``);
* a verified signature gives another digest for a frame index it received
  (``forged_frame``), the frame having come on the pid's own sender id (or one not yet
  told apart from it);
* more than :data:`MAX_UNVERIFIED` of its frames went :data:`VERIFY_BOUND_MS` without any
  signature covering them, within :data:`UNSIGNED_WINDOW_MS` (``unsigned``): signatures
  withheld, or frames nobody signed.

Not every frame left without a signature is suspect. A frame whose index lies between two
verified signatures of its stream (in its epoch), where the later one came after the frame,
was in a window whose signature this receiver lost (or was not sent: the node forwards a
signature to whoever gets the track when it goes). A frame at an index a verified
signature covers, but that came after the digests were let go, is suspect; so is one
beyond them. While signatures of a pid wait for its key (a receiver that came
late, or was not sent that pid's stream when its key rode along), its frames that pass
the bound are not suspect either, for at most :data:`KEY_WAIT_MS` from the first such
signature: the key comes within :data:`KEY_EVERY` signatures (a signature offering a key
whose fingerprint is not the roster's buys no such wait).

Layer switches. The budget of suspect frames is per stream, so per simulcast layer; and a
receiver the node moves to another layer of a sender gets the frames of the layer it left
up to the switch, but not their signature, which goes when their window closes, to that
layer's receivers then. Those frames are not suspect either: when a frame of another layer
of the same pid and kind comes, the frames of the layer left that wait for a signature,
at most one window's worth (:data:`SIGN_EVERY_FRAMES`) and one frame per index, are the
switch's tail if they lie just past that layer's last verified signature (at most
:data:`SIGN_EVERY_FRAMES` indices beyond it) and none of that layer beyond them came. A
forger gains little from it: while the receiver still gets the layer, the pid's next
signatures cover those very indices (and a forged frame there is ``forged_frame``); once it
does not, the indices past the last verified signature it excuses stay the same, so at most
one window's worth of frames in all per key epoch, until that layer is verified further.

Frames are told apart by node sender id too (``client.meetings.attribution``): a frame of a
pid that came on a sender id that is not the pid's (the pid's verified signatures arrive on
another, or that sender id's own verified signatures name another pid) is dropped on
arrival and never touches the pid's stream: no digest compared, nothing counted. It is
that sender id's forgery, reported as a :class:`~client.meetings.attribution.Forgery`
(``forged_frame``) in :attr:`FrameVerifier.forgeries`, and the pid's genuine frames keep
playing. Frames held before the pid was tied to a sender id are sorted out when it is.

A condemned stream is dropped: :meth:`FrameVerifier.on_frame` answers False for every
later frame of it. Pure: time and signing are injected.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from client.meetings.attribution import Failure as Failure
from client.meetings.attribution import Forgery, FrameClaims, SenderTies, signature_id
from client.meetings.attribution import Stream as Stream
from client.meetings.roster import Signer, Verify, key_fingerprint
from suites import labels
from wire import encode
from wire.meeting import FRAME_DIGEST_LEN, MAX_SIGNED_FRAMES, FrameDigestBody, FrameSignature

SIGN_EVERY_FRAMES: Final = 50
"""Frames per signature at most (one second of 20 ms audio)."""
SIGN_INTERVAL_MS: Final = 1000
"""A window is signed at most this long after its first frame."""
KEY_FIRST: Final = 3
"""The signer's key rides in the first this many signatures of a stream (one may be lost) ..."""
KEY_EVERY: Final = 5
"""... and in every this many after (a receiver that lacks it waits at most this many)."""
MAX_KEYLESS: Final = 16
"""Signatures per pid a receiver keeps while it lacks that pid's key."""
VERIFY_BOUND_MS: Final = 3000
"""A received frame must be covered by a verified signature within this long."""
MAX_UNVERIFIED: Final = 2 * SIGN_EVERY_FRAMES
"""Suspect frames of a stream (past the bound, unsigned, outside its verified signatures)
that may come within :data:`UNSIGNED_WINDOW_MS` (the edges of a selection that came and
went, a lost signature or two) before it is condemned as unsigned."""
UNSIGNED_WINDOW_MS: Final = 10_000
"""How far back suspect frames count."""
KEY_WAIT_MS: Final = (KEY_EVERY + 2) * SIGN_INTERVAL_MS
"""How long signatures of a pid may wait for its key before its frames are suspect again."""
MAX_WINDOWS: Final = 64
"""Verified signature windows kept per stream and epoch (a minute of audio), to tell a lost
signature's frames from frames nobody signed."""
MAX_PENDING: Final = 4 * MAX_SIGNED_FRAMES
"""Frames awaiting a signature kept per stream; older ones count as unverified."""

_NEVER: Final = 1 << 64


@dataclass(frozen=True, slots=True)
class StreamReport:
    """The stream ``stream`` failed sender authentication for ``reason``: it is dropped."""

    stream: Stream
    reason: Failure


def frame_digest(ciphertext: bytes) -> bytes:
    """One frame's digest in a signed list (:data:`FRAME_DIGEST_LEN` bytes)."""
    digest = hashlib.sha384(labels.MEETING_FRAME_DIGEST_INFO + ciphertext).digest()
    return digest[:FRAME_DIGEST_LEN]


# --- the sender --------------------------------------------------------------------------------
@dataclass(slots=True)
class _Window:
    epoch: int
    first: int
    started: int
    digests: list[bytes] = field(default_factory=list)


class FrameSigner:
    """Signs the digests of one participant's frames, per stream."""

    def __init__(self, meeting: bytes, pid: int, key: bytes, signer: Signer) -> None:
        self.meeting, self.pid = meeting, pid
        self._key, self._signer = key, signer
        self._windows: dict[Stream, _Window] = {}
        self._signed: dict[Stream, int] = {}

    def add(
        self, kind: int, layer: int, epoch: int, frame: int, ciphertext: bytes, now: int
    ) -> list[FrameSignature]:
        """Note a frame just sent; the signatures now due."""
        stream = (self.pid, kind, layer)
        out: list[FrameSignature] = []
        window = self._windows.get(stream)
        if window is not None and (
            window.epoch != epoch or window.first + len(window.digests) != frame
        ):
            out.append(self._flush(stream))
            window = None
        if window is None:
            window = self._windows[stream] = _Window(epoch, frame, now)
        window.digests.append(frame_digest(ciphertext))
        if len(window.digests) >= SIGN_EVERY_FRAMES:
            out.append(self._flush(stream))
        return out

    def tick(self, now: int) -> list[FrameSignature]:
        """The signatures of windows open for :data:`SIGN_INTERVAL_MS`."""
        due = [s for s, w in self._windows.items() if now - w.started >= SIGN_INTERVAL_MS]
        return [self._flush(stream) for stream in due]

    def flush(self) -> list[FrameSignature]:
        """The signatures of every open window (the sender stops sending)."""
        return [self._flush(stream) for stream in list(self._windows)]

    def _flush(self, stream: Stream) -> FrameSignature:
        window = self._windows.pop(stream)
        pid, kind, layer = stream
        body = FrameDigestBody(
            self.meeting, pid, kind, layer, window.epoch, window.first, tuple(window.digests)
        )
        count = self._signed.get(stream, 0)
        self._signed[stream] = count + 1
        key = self._key if count < KEY_FIRST or count % KEY_EVERY == 0 else None
        return FrameSignature(body, key, self._signer.sign(encode(body), labels.CTX_MEETING_FRAMES))


# --- the receiver ------------------------------------------------------------------------------
@dataclass(slots=True)
class _Received:
    pending: dict[tuple[int, int], list[tuple[bytes, int, int | None]]] = field(
        default_factory=dict
    )
    """(epoch, index) -> the frames awaiting a signature: (digest, arrival, sender id)."""
    signed: dict[tuple[int, int], tuple[bytes, int]] = field(default_factory=dict)
    windows: dict[int, list[tuple[int, int, int]]] = field(default_factory=dict)
    """epoch -> verified signatures as (first, last, when verified), by first."""
    suspect: list[tuple[int, int]] = field(default_factory=list)  # (when, frames)
    unverified: int = 0
    verified: int = 0
    high: dict[int, int] = field(default_factory=dict)
    """epoch -> the highest frame index received."""
    tail: set[tuple[int, int]] = field(default_factory=set)
    """Frames waiting for a signature that a layer switch left behind (module docstring)."""
    excused: dict[int, tuple[int, int]] = field(default_factory=dict)
    """epoch -> (last verified index, frames excused as a switch's tail beyond it)."""

    def signed_window(self, epoch: int, first: int, last: int, now: int) -> None:
        windows = self.windows.setdefault(epoch, [])
        bisect.insort(windows, (first, last, now))
        del windows[:-MAX_WINDOWS]

    def lost_window(self, at: tuple[int, int], arrived: int) -> bool:
        """Whether frame ``at`` (epoch, index), received at ``arrived``, lies between two
        verified signatures, the later one verified after it came (module docstring)."""
        windows = self.windows.get(at[0])
        if not windows:
            return False
        i = bisect.bisect_right(windows, (at[1], _NEVER, _NEVER))  # the first beyond it
        if i in (0, len(windows)):
            return False
        return windows[i - 1][1] < at[1] and arrived <= windows[i][2]

    def left(self) -> None:
        """The receiver switched away from this layer: its switch's tail, if it has one, is
        excused (module docstring)."""
        for epoch, windows in self.windows.items():
            if not windows:
                continue
            top = windows[-1][1]  # the last verified index (sorted by first, disjoint)
            if self.high.get(epoch, top) > top + SIGN_EVERY_FRAMES:
                continue
            since, count = self.excused.get(epoch, (top, 0))
            count = count if since == top else 0
            for at, seen in self.pending.items():
                if count >= SIGN_EVERY_FRAMES:
                    break
                tail = at[0] == epoch and top < at[1] and len(seen) == 1
                if tail and at not in self.tail:
                    self.tail.add(at)
                    count += 1
            self.excused[epoch] = (top, count)


class FrameVerifier:
    """Checks the frames one participant receives against their senders' signatures.

    ``fingerprint(pid)`` is the roster's key fingerprint of ``pid`` (None if it is no
    participant); ``verify`` is the suite's signature check. Up to ``max_unverified``
    suspect frames of a stream (module docstring) may come within
    :data:`UNSIGNED_WINDOW_MS` before it is condemned: a forger that makes fewer frames
    than that, at indices its victim never signs, goes unseen (0 trades that for a false
    alarm on every lost signature at a stream's edge)."""

    def __init__(
        self,
        meeting: bytes,
        verify: Verify,
        fingerprint: Callable[[int], bytes | None],
        *,
        max_unverified: int = MAX_UNVERIFIED,
    ) -> None:
        self.meeting = meeting
        self._verify, self._fingerprint = verify, fingerprint
        self._max_unverified = max_unverified
        self._keys: dict[int, bytes] = {}
        self._keyless: dict[int, list[tuple[FrameSignature, int | None]]] = {}
        self._keyless_since: dict[int, int] = {}  # pid -> first signature held without key
        self._streams: dict[Stream, _Received] = {}
        self._layers: dict[tuple[int, int], int] = {}  # (pid, kind) -> layer of its last frame
        self._condemned: dict[Stream, Failure] = {}
        self._reports: list[StreamReport] = []
        self.ties = SenderTies()
        """Which node sender id speaks for each pid (``client.meetings.attribution``)."""
        self.claims = FrameClaims(self.ties)
        """Frames that came on a sender id not their pid's, by sender id."""
        self.forgeries: list[Forgery] = []
        """Sender ids that sent a failing signature, or frames, naming a pid not theirs, in
        order."""

    def condemned(self, stream: Stream) -> Failure | None:
        """Why ``stream`` was condemned, or None if it was not."""
        return self._condemned.get(stream)

    def counts(self, stream: Stream) -> tuple[int, int]:
        """``(verified, unverified)`` frames of ``stream`` so far."""
        got = self._streams.get(stream)
        return (0, 0) if got is None else (got.verified, got.unverified)

    def on_frame(
        self,
        stream: Stream,
        epoch: int,
        frame: int,
        ciphertext: bytes,
        now: int,
        sender: int | None = None,
    ) -> bool:
        """Note a frame that decrypted, that came on node sender id ``sender`` (None:
        unknown, taken as its pid's own); False if it is not its pid's (module docstring)
        or its stream is condemned (drop it)."""
        if sender is not None and self.ties.foreign(stream[0], sender):
            self._forged(self.claims.claim(stream, sender, now))
            return False
        if stream in self._condemned:
            return False
        self._switch(stream)
        got = self._streams.setdefault(stream, _Received())
        got.high[epoch] = max(frame, got.high.get(epoch, frame))
        digest = frame_digest(ciphertext)
        signed = got.signed.get((epoch, frame))
        if signed is not None:
            if signed[0] != digest:
                self._condemn(stream, Failure.FORGED_FRAME)
                return False
            got.verified += 1
            return True
        got.pending.setdefault((epoch, frame), []).append((digest, now, sender))
        if len(got.pending) > MAX_PENDING:
            oldest = next(iter(got.pending))
            dropped = len(got.pending.pop(oldest))
            got.tail.discard(oldest)
            got.unverified += dropped
            got.suspect.append((now, dropped))
        return True

    def on_signature(self, msg: FrameSignature, now: int, sender: int | None = None) -> None:
        """A signature over some frames of a stream, that came on node sender id ``sender``
        (the datagram header's; None: unknown, and taken as the named pid's own)."""
        body = msg.body
        stream = (body.pid, body.kind, body.layer)
        if body.meeting != self.meeting or stream in self._condemned:
            return
        key = self._key_for(body.pid, msg.key)
        if key is None:  # no key yet: kept for when one comes; its frames stay pending
            waiting = self._keyless.setdefault(body.pid, [])
            waiting.append((msg, sender))
            del waiting[:-MAX_KEYLESS]
            if msg.key is None:  # (one offering a key that is not the roster's is a lie)
                self._keyless_since.setdefault(body.pid, now)
            return
        self._keyless_since.pop(body.pid, None)
        for earlier, came_on in self._keyless.pop(body.pid, ()):
            self._check(earlier, key, now, came_on)
        self._check(msg, key, now, sender)

    def add_key(self, pid: int, key: bytes, now: int) -> bool:
        """Learn ``pid``'s identity signing key from elsewhere (a pairwise session); taken
        only if its fingerprint is the roster's. Whether it was."""
        if self._key_for(pid, key) is None:
            return False
        self._keyless_since.pop(pid, None)
        for earlier, came_on in self._keyless.pop(pid, ()):
            self._check(earlier, key, now, came_on)
        return True

    def _check(self, msg: FrameSignature, key: bytes, now: int, sender: int | None) -> None:
        body = msg.body
        stream = (body.pid, body.kind, body.layer)
        signed = encode(body)
        ident = signature_id(signed, msg.sig)
        if stream in self._condemned or not self.ties.admits(body.pid, sender, ident):
            return
        try:
            self._verify(key, signed, msg.sig, labels.CTX_MEETING_FRAMES)
        except Exception:
            self._failed(stream, sender)
            return
        if self.ties.verified(body.pid, sender, ident, now):
            self._sort_out()
        got = self._streams.setdefault(stream, _Received())
        got.signed_window(body.epoch, body.first, body.first + len(body.digests) - 1, now)
        for index, digest in enumerate(body.digests):
            at = (body.epoch, body.first + index)
            got.signed[at] = (digest, now)
            got.tail.discard(at)
            for seen, _, _ in got.pending.pop(at, ()):
                if seen != digest:
                    self._condemn(stream, Failure.FORGED_FRAME)
                    return
                got.verified += 1

    def tick(self, now: int) -> list[StreamReport]:
        """Count frames past the bound without a signature; the reports since last time."""
        for stream, got in list(self._streams.items()):
            if stream in self._condemned:
                continue
            waiting = now - self._keyless_since.get(stream[0], now - KEY_WAIT_MS) < KEY_WAIT_MS
            for at, seen in list(got.pending.items()):
                if now - seen[0][1] >= VERIFY_BOUND_MS:
                    del got.pending[at]
                    got.unverified += len(seen)
                    tail = at in got.tail and len(seen) == 1  # (a second copy is no tail)
                    got.tail.discard(at)
                    if not (waiting or tail or got.lost_window(at, seen[0][1])):
                        got.suspect.append((now, len(seen)))
            got.signed = {at: s for at, s in got.signed.items() if now - s[1] < VERIFY_BOUND_MS}
            got.suspect = [(t, n) for t, n in got.suspect if now - t < UNSIGNED_WINDOW_MS]
            if sum(n for _, n in got.suspect) > self._max_unverified:
                self._condemn(stream, Failure.UNSIGNED)
        for forgery in self.claims.due(now):
            self._forged(forgery)
        reports, self._reports = self._reports, []
        return reports

    def _switch(self, stream: Stream) -> None:
        """A frame of ``stream`` came: if the last frame of its pid and kind was of another
        layer, the receiver was switched away from that one (module docstring)."""
        pid, kind, layer = stream
        before = self._layers.get((pid, kind))
        self._layers[(pid, kind)] = layer
        if before is not None and before != layer:
            left = self._streams.get((pid, kind, before))
            if left is not None:
                left.left()

    def _sort_out(self) -> None:
        """A pid was just tied to a sender id: the frames held so far that came on a sender
        id now foreign to their pid (the pid's tie is another, or the sender id is tied to
        another pid), and that never carried its verified signatures, are that sender's
        (``client.meetings.attribution``), no longer their stream's."""
        for stream, got in self._streams.items():
            pid = stream[0]
            for at, seen in list(got.pending.items()):
                own = [f for f in seen if not self._foreign(pid, f[2])]
                if len(own) == len(seen):
                    continue
                for _, arrived, sender in seen:
                    if sender is not None and self._foreign(pid, sender):
                        self._forged(self.claims.claim(stream, sender, arrived))
                if own:
                    got.pending[at] = own
                else:
                    del got.pending[at]
                    got.tail.discard(at)

    def _foreign(self, pid: int, sender: int | None) -> bool:
        return sender is not None and (
            self.ties.foreign(pid, sender) and not self.ties.carried(pid, sender)
        )

    def _forged(self, forgery: Forgery | None) -> None:
        if forgery is not None:
            self.forgeries.append(forgery)

    def _failed(self, stream: Stream, sender: int | None) -> None:
        """A signature claiming ``stream`` did not verify: the stream's fault if it came on
        its pid's own sender id, else that sender's (``client.meetings.attribution``)."""
        if sender is None or self.ties.speaks_for(stream[0], sender):
            self._condemn(stream, Failure.BAD_SIGNATURE)
            return
        self._forged(self.ties.blame(stream, sender))

    def _key_for(self, pid: int, offered: bytes | None) -> bytes | None:
        key = self._keys.get(pid)
        if key is not None:
            return key
        expected = self._fingerprint(pid)
        if offered is None or expected is None or key_fingerprint(offered) != expected:
            return None
        self._keys[pid] = offered
        return offered

    def _condemn(self, stream: Stream, reason: Failure) -> None:
        if stream not in self._condemned:
            self._condemned[stream] = reason
            self._streams.pop(stream, None)
            self._reports.append(StreamReport(stream, reason))
