"""The meeting forwarding core: bindings, audio selection, layer switches at keyframes,
pause notices (issue 18, "a selective forwarding unit")."""

from __future__ import annotations

import pytest

from node.sfu import (
    INTERVAL_MS,
    DropReason,
    KeyframeRequest,
    LayerNotice,
    LayerSpec,
    Sfu,
    VideoRequest,
)
from tests.node.sfu.kit import T0, audio, conn, meeting, speak, video


def test_a_stream_not_bound_to_its_connection_is_dropped_and_counted() -> None:
    sfu = meeting(3)
    speak(sfu, {1: 10})
    assert sfu.on_datagram(conn(1), audio(1)) == (conn(2), conn(3))
    assert sfu.on_datagram(conn(2), audio(1)) == ()  # 2 forges 1's stream
    assert sfu.on_datagram("stranger", audio(1)) == ()
    assert sfu.on_datagram(conn(1), audio(99)) == ()  # an id nobody holds
    assert sfu.stats().drops[DropReason.STREAM_NOT_BOUND] == 3


def test_malformed_datagrams_are_dropped_and_counted() -> None:
    sfu = meeting(2)
    for junk in (b"", b"\x11" * 10, b"\x22" + audio(1)[1:], bytearray(audio(1)[:21])):
        assert sfu.on_datagram(conn(1), junk) == ()
    assert sfu.stats().drops[DropReason.MALFORMED] == 4


def test_a_sender_id_is_bound_once() -> None:
    sfu = meeting(2)
    with pytest.raises(ValueError, match="bound already"):
        sfu.join("other", 1)
    with pytest.raises(ValueError, match="lowest to highest"):
        sfu.join("other", 7, (LayerSpec(720, 1500), LayerSpec(180, 150)))


def test_silence_is_dropped() -> None:
    sfu = meeting(3)
    speak(sfu, {1: 10})
    assert sfu.on_datagram(conn(1), audio(1, voice=False)) == ()
    assert sfu.stats().drops[DropReason.SILENCE] == 1


def test_every_receiver_gets_the_dominant_and_the_three_loudest_others_never_its_own() -> None:
    sfu = meeting(8)
    speak(sfu, {1: 5, 2: 10, 3: 20, 4: 30, 5: 40, 6: 50}, intervals=4)
    assert sfu.speakers.dominant == 1
    assert sfu.speakers.ranked[:6] == (1, 2, 3, 4, 5, 6)
    for s in range(1, 9):
        got = sfu.receiving(conn(s))[0]
        assert s not in got
        assert got == frozenset([x for x in (1, 2, 3, 4, 5) if x != s][:4])
    listeners = {s: set(sfu.on_datagram(conn(s), audio(s, 30))) for s in range(1, 7)}
    everyone = {conn(s) for s in range(1, 9)}
    for s in (1, 2, 3, 4):
        assert listeners[s] == everyone - {conn(s)}
    assert listeners[5] == {conn(s) for s in (1, 2, 3, 4)}  # those in the top 4 hear the 5th
    assert listeners[6] == set()
    assert sfu.stats().drops[DropReason.NOT_SELECTED] >= 1


def test_audio_goes_nowhere_before_the_first_recompute() -> None:
    sfu = meeting(3)
    assert sfu.on_datagram(conn(1), audio(1)) == ()
    sfu.tick(T0 + INTERVAL_MS - 1)
    assert sfu.on_datagram(conn(1), audio(1)) == ()
    sfu.tick(T0 + INTERVAL_MS)
    assert set(sfu.on_datagram(conn(1), audio(1))) == {conn(2), conn(3)}


def test_a_new_video_waits_for_its_keyframe_and_asks_for_one() -> None:
    sfu = Sfu(T0)
    assert LayerNotice("a", 1, 0, False) in sfu.join("a", 1)  # nobody receives video yet
    sfu.join("b", 2)
    notices = sfu.request("b", VideoRequest(1, 720))
    assert KeyframeRequest("a", 1, 2) in notices
    assert LayerNotice("a", 1, 2, True) in notices
    assert sfu.receiving("b")[1:] == ({}, {1: 2})
    assert sfu.on_datagram("a", video(1, 2)) == ()  # a delta frame: b has no keyframe
    assert sfu.on_datagram("a", video(1, 2, keyframe=True, packet=1, packets=2)) == ()
    assert sfu.on_datagram("a", video(1, 2, keyframe=True, packet=0, packets=2)) == ("b",)
    assert sfu.on_datagram("a", video(1, 2, keyframe=True, packet=1, packets=2)) == ("b",)
    assert sfu.on_datagram("a", video(1, 2, frame=2)) == ("b",)
    assert sfu.receiving("b")[1:] == ({1: 2}, {})
    assert sfu.stats().switches == 1


def test_a_layer_switch_keeps_the_old_layer_until_the_new_keyframe() -> None:
    sfu = Sfu(T0)
    sfu.join("a", 1)
    sfu.join("b", 2)
    sfu.request("b", VideoRequest(1, 180))
    sfu.on_datagram("a", video(1, 0, keyframe=True))
    assert sfu.on_datagram("a", video(1, 0)) == ("b",)
    notices = sfu.request("b", VideoRequest(1, 720))
    assert KeyframeRequest("a", 1, 2) in notices
    assert sfu.on_datagram("a", video(1, 0, frame=3)) == ("b",)  # still the old layer
    assert sfu.on_datagram("a", video(1, 2, frame=3)) == ()
    assert sfu.on_datagram("a", video(1, 2, keyframe=True, frame=4)) == ("b",)
    assert sfu.on_datagram("a", video(1, 0, frame=4)) == ()  # the old layer stops
    assert LayerNotice("a", 1, 0, False) in sfu.tick(T0 + 1)  # and is paused


def test_a_switch_down_also_waits_for_a_keyframe() -> None:
    sfu = Sfu(T0)
    sfu.join("a", 1)
    sfu.join("b", 2)
    sfu.request("b", VideoRequest(1, 720))
    sfu.on_datagram("a", video(1, 2, keyframe=True))
    sfu.request("b", VideoRequest(1, 360))
    assert sfu.on_datagram("a", video(1, 2)) == ("b",)
    assert sfu.on_datagram("a", video(1, 1)) == ()
    assert sfu.on_datagram("a", video(1, 1, keyframe=True)) == ("b",)
    assert sfu.on_datagram("a", video(1, 2)) == ()


def test_the_on_stage_speaker_gets_the_high_layer() -> None:
    sfu = meeting(4, videos=3, height=720, budget=2000)
    speak(sfu, {3: 5}, intervals=3)
    assert sfu.speakers.dominant == 3
    assert sfu.receiving(conn(1))[2] == {3: 2, 2: 0, 4: 0}
    assert sfu.receiving(conn(3))[2] == {1: 2, 2: 0, 4: 0}  # its stage: the next in line


def test_a_video_nobody_selects_is_paused_and_resumed_when_wanted() -> None:
    sfu = Sfu(T0)
    notices = sfu.join("a", 1)
    sfu.join("b", 2, ())
    assert {n for n in notices if isinstance(n, LayerNotice)} == {
        LayerNotice("a", 1, layer, False) for layer in range(3)
    }
    notices = sfu.request("b", VideoRequest(2, 180))
    assert LayerNotice("a", 1, 0, True) in notices
    notices = sfu.request("b", VideoRequest(0, 0))
    assert LayerNotice("a", 1, 0, False) in notices


def test_a_leaver_is_out_of_every_fan_out() -> None:
    sfu = meeting(3, videos=2, height=180)
    speak(sfu, {1: 10, 2: 20})
    for s in (1, 2, 3):
        sfu.on_datagram(conn(s), video(s, 0, keyframe=True))
    assert set(sfu.on_datagram(conn(1), video(1, 0))) == {conn(2), conn(3)}
    sfu.leave(conn(2))
    assert sfu.on_datagram(conn(1), video(1, 0)) == (conn(3),)
    assert set(sfu.on_datagram(conn(1), audio(1))) == {conn(3)}
    assert sfu.on_datagram(conn(2), audio(2)) == ()
    assert sfu.leave(conn(2)) == []
    assert sfu.stats().participants == 2


def test_a_decision_returns_a_shared_tuple() -> None:
    sfu = meeting(3)
    speak(sfu, {1: 10})
    data = audio(1)
    assert sfu.on_datagram(conn(1), data) is sfu.on_datagram(conn(1), data)


def test_counters_add_up() -> None:
    sfu = meeting(3)
    speak(sfu, {1: 10})
    before = sfu.stats()
    data = audio(1)
    sfu.on_datagram(conn(1), data)
    after = sfu.stats()
    assert after.received == before.received + 1
    assert after.forwarded == before.forwarded + 2
    assert after.forwarded_bytes == before.forwarded_bytes + 2 * len(data)
    assert set(after.drops) == set(DropReason)
