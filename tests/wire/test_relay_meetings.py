"""Meeting requests on /v1/client (wire.relay_meetings) and meeting notices on the media
control stream (wire.media_control): round trips, field rules, and where they are listed."""

from __future__ import annotations

import pytest

from wire import WireError, decode, encode
from wire.media_control import (
    MediaKeyframe,
    MediaLayer,
    MediaVideo,
    decode_meeting_control,
    decode_notice,
)
from wire.relay import (
    PUSHES,
    REQUESTS,
    RESPONSES,
    LegGrant,
    MeetingJoin,
    MeetingKeyframe,
    MeetingLayer,
    MeetingLayerSpec,
    MeetingLeave,
    MeetingVideo,
)

ROOM = bytes(range(16))
LEG = b"\x0b" * 16
LAYERS = (MeetingLayerSpec(180, 150), MeetingLayerSpec(360, 500), MeetingLayerSpec(720, 1500))


@pytest.mark.parametrize(
    "frame",
    [
        MeetingJoin(1, ROOM, LAYERS),
        MeetingJoin(2, ROOM, ()),
        MeetingVideo(3, LEG, 9, 360, 2000),
        MeetingLeave(4, LEG),
        MeetingLayer(LEG, 7, 2, False),
        MeetingKeyframe(LEG, 7, 1),
    ],
)
def test_relay_frames_round_trip(frame: object) -> None:
    assert decode(encode(frame), REQUESTS + RESPONSES + PUSHES) == frame


def test_directions() -> None:
    assert {MeetingJoin, MeetingVideo, MeetingLeave} <= set(REQUESTS)
    assert {MeetingLayer, MeetingKeyframe} <= set(PUSHES)
    assert LegGrant in RESPONSES  # a join is answered with the call leg's grant


@pytest.mark.parametrize(
    "build",
    [
        lambda: MeetingJoin(1, ROOM, (LAYERS[1], LAYERS[0])),
        lambda: MeetingJoin(1, ROOM, (*LAYERS, MeetingLayerSpec(1080, 3000))),
        lambda: MeetingJoin(1, b"short", ()),
        lambda: MeetingLayerSpec(0, 100),
        lambda: MeetingLayerSpec(180, 0),
        lambda: MeetingVideo(1, LEG, 33, 360, 0),
        lambda: MeetingVideo(1, LEG, 3, 5000, 0),
    ],
)
def test_bad_frames_are_refused(build: object) -> None:
    with pytest.raises((ValueError, WireError)):
        build()  # type: ignore[operator]


def test_control_messages_round_trip() -> None:
    assert decode_meeting_control(encode(MediaVideo(4, 720, 3000))) == MediaVideo(4, 720, 3000)
    for notice in (MediaLayer(9, 2, True), MediaKeyframe(9, 0)):
        assert decode_notice(encode(notice)) == notice
    with pytest.raises(WireError):
        decode_meeting_control(encode(MediaLayer(9, 2, True)))
    with pytest.raises(WireError):
        decode_notice(b"\x93garbage")
