"""Layer switches and the unsigned budget (``client.meetings.frameauth``): a receiver the
node moves between a sender's video layers gets the frames of the layer it leaves up to the
switch but not their signature; those frames are no forgery, however often it switches. A
forger still gains nothing that lasts: frames beyond one window past the layer's last
verified signature, or more than one frame at an index, are suspect as before."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from client.meetings import Failure, FrameSigner, FrameVerifier, StreamReport
from client.meetings.frameauth import SIGN_EVERY_FRAMES, VERIFY_BOUND_MS
from tests.client.meetings.kit import MID, T0, Person, verify
from wire.meeting import FrameSignature

VIDEO = 1
LAYERS = 3
SIGNER = Person("simulcast")
AFTER_MS = 1500


def frame(layer: int, i: int) -> bytes:
    return b"vp8 layer %d frame %d" % (layer, i)


def watch(v: FrameVerifier, frame_ms: int, switches: list[tuple[int, int]]) -> list[StreamReport]:
    """Pid 1 sends every layer (a window signed every 50 frames or second); the receiver
    gets the frames of its current layer, and the signatures that go while it is on it
    (the node forwards a signature to whoever gets the track then). ``switches``: (time
    from the start in ms, layer) after the first, layer 0. The sender stops
    :data:`AFTER_MS` after the last switch."""
    signer = FrameSigner(MID, 1, SIGNER.key, SIGNER)
    reports, now, current = [], T0, 0

    def deliver(signatures: list[FrameSignature]) -> None:
        for sig in signatures:
            if sig.body.layer == current:
                v.on_signature(sig, now + 5, 500)

    for index in range((switches[-1][0] + AFTER_MS) // frame_ms):
        current = max([(0, 0)] + [s for s in switches if s[0] <= now - T0])[1]
        for layer in range(LAYERS):
            ct = frame(layer, index)
            if layer == current:
                v.on_frame((1, VIDEO, layer), 0, index, ct, now)
            deliver(signer.add(VIDEO, layer, 0, index, ct, now))
        deliver(signer.tick(now))
        now += frame_ms
        reports += v.tick(now)
    deliver(signer.flush())
    return reports + v.tick(now + VERIFY_BOUND_MS)


@settings(max_examples=8, deadline=None)
@given(
    st.sampled_from([20, 33]),  # 50 or 30 frames a second
    st.integers(1100, 2500),  # the first switch
    st.lists(st.integers(1100, 3500), min_size=2, max_size=2),  # the gaps to the next two
    st.lists(st.integers(1, LAYERS - 1), min_size=3, max_size=3),  # layer steps
)
def test_three_layer_switches_within_ten_seconds_raise_no_alarm(
    frame_ms: int, first: int, gaps: list[int], steps: list[int]
) -> None:
    """Not even with no budget for suspect frames at all: the tails of the layers left are
    not suspect."""
    times = [first, first + gaps[0], first + gaps[0] + gaps[1]]
    assert times[-1] - times[0] < 10_000
    layers, layer = [], 0
    for step in steps:
        layer = (layer + step) % LAYERS  # always another layer
        layers.append(layer)
    v = FrameVerifier(MID, verify, {1: SIGNER.fp}.get, max_unverified=0)
    assert watch(v, frame_ms, list(zip(times, layers, strict=True))) == []
    assert sum(v.counts((1, VIDEO, n))[1] for n in range(LAYERS)) > 0  # tails unsigned


def test_back_and_forth_every_two_seconds_raises_no_alarm() -> None:
    """Five switches in ten seconds, three of them away from layer 0."""
    switches = [(t, n % 2) for n, t in enumerate(range(1500, 11500, 2000), start=1)]
    v = FrameVerifier(MID, verify, {1: SIGNER.fp}.get, max_unverified=0)
    assert watch(v, 20, switches) == []


def forged(v: FrameVerifier, layer: int, indices: range, now: int) -> None:
    for i in indices:
        v.on_frame((1, VIDEO, layer), 0, i, b"forged %d" % i, now)


def left_layer_zero(budget: int) -> tuple[FrameVerifier, int, int]:
    """A receiver verified layer 0 up to index 49, then was moved to layer 1."""
    v = FrameVerifier(MID, verify, {1: SIGNER.fp}.get, max_unverified=budget)
    signer = FrameSigner(MID, 1, SIGNER.key, SIGNER)
    for i in range(SIGN_EVERY_FRAMES):
        v.on_frame((1, VIDEO, 0), 0, i, frame(0, i), T0)
        for sig in signer.add(VIDEO, 0, 0, i, frame(0, i), T0):
            v.on_signature(sig, T0, 500)
    assert v.counts((1, VIDEO, 0)) == (SIGN_EVERY_FRAMES, 0)
    return v, SIGN_EVERY_FRAMES - 1, T0 + 100


def test_switches_a_forger_fakes_excuse_one_window_at_most() -> None:
    """Frames under the victim's layer 0 past its last verified index, each followed by a
    frame "of" layer 1: the first window's worth is taken for a tail, no more."""
    v, top, now = left_layer_zero(budget=0)
    for i in range(top + 1, top + 1 + 3 * SIGN_EVERY_FRAMES):
        forged(v, 0, range(i, i + 1), now)
        forged(v, 1, range(i, i + 1), now)
    reports = v.tick(now + VERIFY_BOUND_MS)
    assert StreamReport((1, VIDEO, 0), Failure.UNSIGNED) in reports


def test_a_tail_is_one_window_past_the_last_verified_index() -> None:
    v, top, now = left_layer_zero(budget=SIGN_EVERY_FRAMES)
    forged(v, 0, range(top + 1, top + 1 + 2 * SIGN_EVERY_FRAMES), now)  # two windows
    forged(v, 1, range(1), now)  # "switched"
    assert v.tick(now + VERIFY_BOUND_MS) == [StreamReport((1, VIDEO, 0), Failure.UNSIGNED)]


def test_a_second_frame_at_an_index_of_a_tail_is_suspect() -> None:
    v, top, now = left_layer_zero(budget=SIGN_EVERY_FRAMES // 2)
    forged(v, 0, range(top + 1, top + 1 + SIGN_EVERY_FRAMES), now)
    forged(v, 0, range(top + 1, top + 1 + SIGN_EVERY_FRAMES), now + 1)  # again
    forged(v, 1, range(1), now)
    assert v.tick(now + VERIFY_BOUND_MS) == [StreamReport((1, VIDEO, 0), Failure.UNSIGNED)]


def test_a_copy_of_a_tail_frame_after_the_switch_is_suspect() -> None:
    v, top, now = left_layer_zero(budget=SIGN_EVERY_FRAMES // 2)
    forged(v, 0, range(top + 1, top + 1 + SIGN_EVERY_FRAMES), now)
    forged(v, 1, range(1), now)  # the tail, then copies of it
    forged(v, 0, range(top + 1, top + 1 + SIGN_EVERY_FRAMES), now + 1)
    assert StreamReport((1, VIDEO, 0), Failure.UNSIGNED) in v.tick(now + VERIFY_BOUND_MS)


def test_one_tail_is_excused_and_the_same_indices_again_are_not() -> None:
    v, top, now = left_layer_zero(budget=0)
    forged(v, 0, range(top + 1, top + 1 + SIGN_EVERY_FRAMES), now)
    forged(v, 1, range(1), now)
    v.tick(now + VERIFY_BOUND_MS)
    assert v.condemned((1, VIDEO, 0)) is None  # (what an honest tail looks like)
    later = now + VERIFY_BOUND_MS + 10
    forged(v, 0, range(top + 1, top + 1 + SIGN_EVERY_FRAMES), later)
    forged(v, 2, range(1), later)
    assert StreamReport((1, VIDEO, 0), Failure.UNSIGNED) in v.tick(later + VERIFY_BOUND_MS)
