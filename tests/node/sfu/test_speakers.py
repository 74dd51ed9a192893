"""The dominant speaker and the loudest others, with hysteresis (issue 18)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from node.sfu import INTERVAL_MS, SpeakerDetector
from node.sfu.speakers import HOLD
from tests.node.sfu.kit import T0


def feed(det: SpeakerDetector, levels: dict[int, int], now: int, frames: int = 15) -> None:
    for s in levels:
        det.add(s)
    for s, level in levels.items():
        for _ in range(frames):
            det.add(s).add(level, level < 127)
    det.recompute(now)


def test_the_loudest_takes_the_stage_in_a_quiet_room() -> None:
    det = SpeakerDetector()
    feed(det, {1: 40, 2: 10, 3: 90}, T0)
    assert det.speakers.dominant == 2
    assert det.speakers.ranked == (2, 1, 3)


def test_a_silent_room_has_no_speakers() -> None:
    det = SpeakerDetector()
    feed(det, {1: 127, 2: 127}, T0)
    assert det.speakers.dominant is None
    assert det.speakers.ranked == ()


def test_a_slightly_louder_voice_does_not_take_the_stage() -> None:
    det = SpeakerDetector()
    now = T0
    for _ in range(5):
        feed(det, {1: 30}, now)
        now += INTERVAL_MS
    for _ in range(20):
        feed(det, {1: 30, 2: 27}, now)  # louder, within the margin
        now += INTERVAL_MS
        assert det.speakers.dominant == 1
    assert det.speakers.ranked[0] == 1


def test_a_clearly_louder_voice_takes_the_stage_after_the_hold() -> None:
    det = SpeakerDetector()
    now = T0
    for _ in range(5):
        feed(det, {1: 90, 2: 127}, now)
        now += INTERVAL_MS
    assert det.speakers.dominant == 1
    dominants = []
    for _ in range(HOLD + 3):
        feed(det, {1: 90, 2: 5}, now)
        now += INTERVAL_MS
        dominants.append(det.speakers.dominant)
    assert dominants[0] == 1  # one interval is not enough
    assert dominants[-1] == 2
    assert dominants.index(2) >= HOLD - 1


def test_a_short_burst_does_not_flap_the_stage() -> None:
    det = SpeakerDetector()
    now = T0
    for _ in range(5):
        feed(det, {1: 40, 2: 127}, now)
        now += INTERVAL_MS
    for i in range(30):  # 2 coughs every other interval
        feed(det, {1: 40, 2: 0 if i % 2 else 127}, now)
        now += INTERVAL_MS
        assert det.speakers.dominant == 1


def test_a_dominant_who_leaves_is_replaced_at_once() -> None:
    det = SpeakerDetector()
    feed(det, {1: 10, 2: 50}, T0)
    assert det.speakers.dominant == 1
    det.remove(1)
    feed(det, {2: 50}, T0 + INTERVAL_MS)
    assert det.speakers.dominant == 2
    assert det.speakers.ranked == (2,)


def test_last_spoke_follows_the_intervals() -> None:
    det = SpeakerDetector()
    feed(det, {1: 10, 2: 127}, T0)
    assert det.last_spoke(1) == T0
    assert det.last_spoke(2) == -1
    assert det.last_spoke(99) == -1


levels = st.dictionaries(st.integers(1, 8), st.integers(0, 127), max_size=8)


@settings(max_examples=60, deadline=None)
@given(st.lists(levels, min_size=1, max_size=12))
def test_the_selection_is_always_well_formed(rounds: list[dict[int, int]]) -> None:
    det = SpeakerDetector()
    for i, round_levels in enumerate(rounds):
        feed(det, round_levels, T0 + i * INTERVAL_MS)
        speakers = det.speakers
        assert len(set(speakers.ranked)) == len(speakers.ranked)
        if speakers.dominant is None:
            assert speakers.ranked == ()
        elif speakers.ranked:
            assert speakers.ranked[0] == speakers.dominant
