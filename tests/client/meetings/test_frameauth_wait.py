"""The frame verifier over a long meeting (``client.meetings.frameauth``): frames left
unsigned by a lost signature inside a stream, by a selection that came and went, or while
the signer's key is still on its way, are no forgery; a forger still is, also one that
sends keyless signatures under a silent victim's pid to buy time."""

from __future__ import annotations

from client.meetings import Failure, FrameSigner, FrameVerifier, StreamReport
from client.meetings.frameauth import (
    KEY_EVERY,
    KEY_FIRST,
    KEY_WAIT_MS,
    MAX_UNVERIFIED,
    SIGN_EVERY_FRAMES,
    UNSIGNED_WINDOW_MS,
    VERIFY_BOUND_MS,
)
from tests.client.meetings.kit import MID, T0, Person, verify
from wire.meeting import FrameSignature

AUDIO = (1, 0, 0)  # pid 1's audio
FRAME_MS = 20
SIGNER = Person("long")


def frame(i: int) -> bytes:
    return b"opus frame %d" % i


class Stream:
    """Pid 1's audio: a frame every 20 ms, a signature every 50 frames."""

    def __init__(self) -> None:
        self.signer = FrameSigner(MID, 1, SIGNER.key, SIGNER)
        self.sent = 0

    def next(self, now: int) -> tuple[int, list[FrameSignature]]:
        index = self.sent
        self.sent += 1
        return index, self.signer.add(0, 0, 0, index, frame(index), now)


def verifier() -> FrameVerifier:
    return FrameVerifier(MID, verify, {1: SIGNER.fp}.get)


def test_lost_signatures_inside_a_long_stream_are_no_forgery() -> None:
    v, stream, now = verifier(), Stream(), T0
    lost = 0
    for _ in range(60 * 50):  # a minute; two signatures in five lost on the way
        index, sigs = stream.next(now)
        v.on_frame(AUDIO, 0, index, frame(index), now)
        for sig in sigs:
            if (sig.body.first // SIGN_EVERY_FRAMES) % 5 in (1, 3):
                lost += 1
            else:
                v.on_signature(sig, now + 30)
        now += FRAME_MS
        assert v.tick(now) == []
    verified, unverified = v.counts(AUDIO)
    assert lost == 24
    assert unverified > MAX_UNVERIFIED  # more than the bound in all, none of them suspect
    assert verified + unverified >= 60 * 50 - SIGN_EVERY_FRAMES


def test_a_selection_that_comes_and_goes_is_no_forgery() -> None:
    """Every 3 s the receiver gets the stream for 2 s, but not the signature of the last
    of those (the node chose others by the time it went)."""
    v, stream, now = verifier(), Stream(), T0
    for second in range(48):
        phase = second % 3
        for _ in range(50):
            index, sigs = stream.next(now)
            if phase < 2:
                v.on_frame(AUDIO, 0, index, frame(index), now)
            for sig in sigs:
                if phase == 0:
                    v.on_signature(sig, now + 30)
            now += FRAME_MS
            assert v.tick(now) == []
    assert v.counts(AUDIO)[1] >= 15 * SIGN_EVERY_FRAMES  # a window in three, never signed to it


def test_a_late_receiver_waits_for_the_key() -> None:
    # (a bound of one window: what passes it before the key would condemn the stream)
    v = FrameVerifier(MID, verify, {1: SIGNER.fp}.get, max_unverified=SIGN_EVERY_FRAMES)
    stream, now = Stream(), T0
    assert KEY_FIRST <= KEY_EVERY
    for _ in range((KEY_EVERY + 1) * SIGN_EVERY_FRAMES):  # not there for the keyed ones
        stream.next(now)
        now += FRAME_MS
    keyed = []
    for _ in range(KEY_EVERY * SIGN_EVERY_FRAMES + 10):
        index, sigs = stream.next(now)
        v.on_frame(AUDIO, 0, index, frame(index), now)
        for sig in sigs:
            keyed.append(sig.key is not None)
            v.on_signature(sig, now + 30)
        now += FRAME_MS
        assert v.tick(now) == [], keyed
    assert keyed.count(True) == 1
    assert keyed[-1]  # the key came with the last of them
    verified, unverified = v.counts(AUDIO)
    assert verified >= 2 * SIGN_EVERY_FRAMES
    assert unverified > SIGN_EVERY_FRAMES  # frames past the bound before the key: not suspect
    assert v.tick(now + VERIFY_BOUND_MS) == []


def test_keyless_signatures_under_a_silent_pid_buy_the_forger_a_few_seconds_only() -> None:
    forger = FrameSigner(MID, 1, SIGNER.key, Person("forger"))  # signs as itself, no key
    v, now = verifier(), T0
    reports: list[StreamReport] = []
    for index in range(1000):
        v.on_frame(AUDIO, 0, index, b"forged %d" % index, now)
        for sig in forger.add(0, 0, 0, index, b"forged %d" % index, now):
            v.on_signature(FrameSignature(sig.body, None, sig.sig), now)
        now += FRAME_MS
        reports += v.tick(now)
        if reports:
            break
    assert reports == [StreamReport(AUDIO, Failure.UNSIGNED)]
    assert KEY_WAIT_MS < now - T0 < KEY_WAIT_MS + VERIFY_BOUND_MS + UNSIGNED_WINDOW_MS


def test_unsigned_frames_spread_thin_over_a_long_time_are_forgotten() -> None:
    v, now = verifier(), T0
    for burst in range(5):  # 60 frames nobody signs, every 12 s: never 100 in 10 s
        for i in range(60):
            v.on_frame(AUDIO, 0, burst * 1000 + i, b"x", now)
        now += 12_000
        assert v.tick(now) == []
    assert v.counts(AUDIO) == (0, 300)
    for i in range(MAX_UNVERIFIED + 1):  # but more than the bound at once is condemned
        v.on_frame(AUDIO, 0, 9000 + i, b"x", now)
    assert v.tick(now + VERIFY_BOUND_MS) == [StreamReport(AUDIO, Failure.UNSIGNED)]


def test_frames_at_indices_signed_long_ago_are_suspect() -> None:
    """A forger that sends under its victim's pid at indices the victim signed seconds ago
    (their digests let go) gets no benefit from the victim's signatures around them."""
    v, stream, now = verifier(), Stream(), T0
    reports: list[StreamReport] = []
    for tick in range(12 * 50):
        index, sigs = stream.next(now)
        v.on_frame(AUDIO, 0, index, frame(index), now)
        for sig in sigs:
            v.on_signature(sig, now + 30)
        if tick >= 6 * 50:  # from 6 s on, old indices again, 50 a second
            old = tick - 5 * 50
            v.on_frame(AUDIO, 0, old, b"forged %d" % old, now)
        now += FRAME_MS
        reports += v.tick(now)
    assert reports == [StreamReport(AUDIO, Failure.UNSIGNED)]
