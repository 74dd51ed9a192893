"""The shipped Opus + VP8 fixture: real bitstreams, digests, the file format, looping."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
from importlib import resources

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from client.calls import fixture as fx
from client.calls.errors import FixtureError
from wire.media import MediaKind

FIXTURE = fx.load_fixture()
AUDIO = FIXTURE.of_kind(MediaKind.AUDIO)
VIDEO = FIXTURE.of_kind(MediaKind.VIDEO)
RAW = resources.files("client.calls").joinpath(fx.FIXTURE_RESOURCE).read_bytes()

# RFC 6716 section 3.1: TOC configs whose frames last 20 ms (SILK 1/5/9, hybrid 13/15,
# CELT 19/23/27/31).
OPUS_20MS_CONFIGS = {1, 5, 9, 13, 15, 19, 23, 27, 31}
# RFC 6386 section 9.1: a VP8 keyframe has frame-type bit 0 clear and this start code.
VP8_START_CODE = b"\x9d\x01\x2a"


def test_shape_size_and_digests() -> None:
    assert len(RAW) < 300_000
    assert FIXTURE.period_us == 5_000_000
    assert len(AUDIO) == 250
    assert len(VIDEO) == 150
    assert [f.timestamp_us for f in AUDIO] == [i * 20_000 for i in range(250)]
    assert [f.timestamp_us for f in VIDEO] == [i * 1_000_000 // 30 for i in range(150)]
    assert all(hashlib.sha256(f.data).digest() == f.sha256 for f in FIXTURE.frames)


def test_video_is_vp8_with_a_keyframe_every_two_seconds() -> None:
    keyframes = [i for i, f in enumerate(VIDEO) if f.keyframe]
    assert keyframes == [0, 60, 120]
    for f in VIDEO:
        assert (f.data[0] & 1 == 0) == f.keyframe
        if f.keyframe:
            assert f.data[3:6] == VP8_START_CODE
            width = int.from_bytes(f.data[6:8], "little") & 0x3FFF
            height = int.from_bytes(f.data[8:10], "little") & 0x3FFF
            assert (width, height) == (320, 180)


def test_audio_is_20ms_opus_with_rfc6464_levels() -> None:
    assert all(f.data[0] >> 3 in OPUS_20MS_CONFIGS for f in AUDIO)
    assert all(f.keyframe for f in AUDIO)
    tone = [f for f in AUDIO if (f.timestamp_us // 20_000) % 50 < 24]
    silence = [f for f in AUDIO if (f.timestamp_us // 20_000) % 50 > 25]
    assert {f.audio_level for f in tone} == {9}  # 0.5 full scale sine: -9 dBov
    assert all(f.voice for f in tone)
    assert {f.audio_level for f in silence} == {127}
    assert not any(f.voice for f in silence)


def test_frames_decode_with_pyav_when_installed() -> None:
    av = pytest.importorskip("av")
    for codec, frames, count in (("vp8", VIDEO, 150), ("opus", AUDIO, 250)):
        decoder = av.CodecContext.create(codec, "r")
        decoded = [d for f in frames for d in decoder.decode(av.Packet(f.data))]
        decoded += decoder.decode(None)
        assert len(decoded) >= count - 1


@pytest.mark.slow
def test_generator_reproduces_the_file_when_pyav_is_installed() -> None:
    pytest.importorskip("av")
    from client.calls import make_fixture

    assert fx.encode_fixture(make_fixture.build()) == RAW


def test_encode_decode_round_trip() -> None:
    assert fx.encode_fixture(FIXTURE) == RAW
    assert fx.decode_fixture(RAW) == FIXTURE


@pytest.mark.parametrize(
    "data",
    [
        b"",
        RAW[:-1],
        RAW + b"\x00",
        b"XXXX" + RAW[4:],
        RAW[:4] + b"\x02" + RAW[5:],
        RAW[:200] + bytes([RAW[200] ^ 1]) + RAW[201:],  # inside the first frame
    ],
)
def test_decode_refuses_damage(data: bytes) -> None:
    with pytest.raises(FixtureError):
        fx.decode_fixture(data)


def test_decode_refuses_timestamps_beyond_the_period() -> None:
    short = dataclasses.replace(FIXTURE, period_us=1_000_000)
    with pytest.raises(FixtureError):
        fx.decode_fixture(fx.encode_fixture(short))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=120), st.integers(0, 80))
def test_decode_raises_only_fixture_error(tail: bytes, cut: int) -> None:
    for data in (tail, RAW[:cut] + tail):
        with contextlib.suppress(FixtureError):
            fx.decode_fixture(data)


def test_schedule_loops_the_clip() -> None:
    audio = list(fx.schedule(FIXTURE, MediaKind.AUDIO, 12_000_000))
    assert len(audio) == 600
    assert [s.index for s in audio] == list(range(600))
    assert audio[250].at_us == 5_000_000
    assert audio[250].frame is AUDIO[0]
    assert FIXTURE.frame_at(MediaKind.AUDIO, 251) is AUDIO[1]
    both = list(fx.play(FIXTURE, (MediaKind.VIDEO, MediaKind.AUDIO), 60_000_000))
    assert len(both) == 3000 + 1800
    assert [s.at_us for s in both] == sorted(s.at_us for s in both)
    assert both[0].frame.kind is MediaKind.AUDIO


def test_empty_kind() -> None:
    audio_only = fx.Fixture(FIXTURE.period_us, AUDIO)
    assert list(fx.schedule(audio_only, MediaKind.VIDEO, 10_000_000)) == []
    with pytest.raises(FixtureError):
        audio_only.frame_at(MediaKind.VIDEO, 0)
