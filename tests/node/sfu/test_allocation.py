"""Simulcast layer allocation for one receiver (issue 18; Signal's allocation the model)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from node.sfu import DEFAULT_LAYERS, LayerSpec, VideoRequest, allocate, ceiling

THREE = DEFAULT_LAYERS  # 180p 150 kbps, 360p 500 kbps, 720p 1500 kbps
TWO = (LayerSpec(180, 150), LayerSpec(540, 900))


def test_ceiling_is_the_tallest_layer_within_the_height() -> None:
    assert ceiling(THREE, 720) == 2
    assert ceiling(THREE, 719) == 1
    assert ceiling(THREE, 360) == 1
    assert ceiling(THREE, 180) == 0
    assert ceiling(THREE, 100) == 0  # asking for video at all means a picture


def test_everyone_gets_the_lowest_layer_before_anyone_a_higher_one() -> None:
    candidates = [(s, THREE) for s in range(1, 6)]
    given_ = allocate(VideoRequest(5, 720, budget_kbps=5 * 150 + 100), candidates)
    assert given_ == dict.fromkeys(range(1, 6), 0)


def test_the_on_stage_speaker_is_raised_first() -> None:
    candidates = [(7, THREE), (1, THREE), (2, THREE)]
    given_ = allocate(VideoRequest(3, 720, budget_kbps=3 * 150 + 1350), candidates)
    assert given_ == {7: 2, 1: 0, 2: 0}


def test_what_is_left_raises_the_others_in_priority_order() -> None:
    candidates = [(7, THREE), (1, THREE), (2, THREE)]
    given_ = allocate(VideoRequest(3, 720, budget_kbps=1500 + 500 + 150 + 10), candidates)
    assert given_ == {7: 2, 1: 1, 2: 0}


def test_the_others_are_raised_round_by_round() -> None:
    candidates = [(7, THREE), (1, THREE), (2, THREE)]
    budget = 3 * 150 + 1350 + 2 * 350 + 999  # not quite a third layer for anyone else
    assert allocate(VideoRequest(3, 720, budget), candidates) == {7: 2, 1: 1, 2: 1}
    assert allocate(VideoRequest(3, 720, budget + 1), candidates) == {7: 2, 1: 2, 2: 1}


def test_the_height_caps_every_layer() -> None:
    candidates = [(7, THREE), (1, TWO)]
    assert allocate(VideoRequest(2, 360, budget_kbps=10_000), candidates) == {7: 1, 1: 0}
    assert allocate(VideoRequest(2, 540, budget_kbps=10_000), candidates) == {7: 1, 1: 1}


def test_only_the_first_senders_with_video_are_selected() -> None:
    candidates = [(1, ()), (2, THREE), (3, THREE), (4, THREE)]
    assert set(allocate(VideoRequest(2, 180), candidates)) == {2, 3}


def test_no_videos_asked_no_videos_given() -> None:
    assert allocate(VideoRequest(0, 720), [(1, THREE)]) == {}


def test_a_budget_too_small_for_everyone_serves_the_first() -> None:
    candidates = [(s, THREE) for s in range(1, 5)]
    assert allocate(VideoRequest(4, 720, budget_kbps=320), candidates) == {1: 0, 2: 0}


layer_sets = st.sampled_from([THREE, TWO, (LayerSpec(90, 60),), ()])


@settings(max_examples=150, deadline=None)
@given(
    st.lists(layer_sets, max_size=12),
    st.integers(0, 8),
    st.integers(0, 1080),
    st.integers(0, 6000),
)
def test_allocation_properties(
    sets: list[tuple[LayerSpec, ...]], videos: int, height: int, budget: int
) -> None:
    candidates = list(enumerate(sets))
    request = VideoRequest(videos, height, budget_kbps=budget)
    given_ = allocate(request, candidates)
    layers = dict(candidates)
    selectable = [s for s, ls in candidates if ls][:videos]
    assert set(given_) <= set(selectable)
    assert sum(layers[s][layer].kbps for s, layer in given_.items()) <= budget
    for s, layer in given_.items():
        assert layer <= ceiling(layers[s], height)
    if any(layer > 0 for layer in given_.values()):  # raised only once all lowest fitted
        spent = sum(layers[s][0].kbps for s in given_)
        missing = [s for s in selectable if s not in given_]
        assert all(layers[s][0].kbps > budget - spent for s in missing)
