"""The clear media datagram header (wire/media.py): layout, round trips, strict decoding."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from wire import errors
from wire.errors import WireError
from wire.media import (
    HEADER_SIZE,
    MAX_DATAGRAM,
    MAX_PAYLOAD,
    SILENCE,
    TYPE_MEDIA,
    TYPE_SIGNATURE,
    MediaHeader,
    MediaKind,
    Route,
    StreamId,
    decode_datagram,
    encode_datagram,
    frame_metadata,
    metadata_track,
    peek_route,
    peek_sender,
    replace_sender,
    signature_header,
)
from wire.relay_calls import is_media_message

VIDEO = StreamId(0x01020304, MediaKind.VIDEO, 2)
HEADER = MediaHeader(VIDEO, 5, 0, 300, 1, 3, keyframe=True, audio_level=42, voice=True)
SIGNATURE = signature_header(VIDEO, 7, 2, 5)


def test_layout_known_answer() -> None:
    assert HEADER_SIZE == 21
    assert MAX_DATAGRAM == 1200
    assert MAX_PAYLOAD == MAX_DATAGRAM - HEADER_SIZE
    assert HEADER.encode().hex() == (
        "11"  # version 1, type 1
        "e0"  # video, keyframe, layer 2
        "aa"  # voice activity, level 42
        "01020304"  # sender
        "00000005"  # group
        "0000"  # object
        "0000012c"  # frame 300
        "0001"  # packet 1
        "0003"  # of 3 packets
    )


def test_signature_layout_known_answer() -> None:
    assert SIGNATURE.encode().hex() == (
        "12"  # version 1, type 2 (signature)
        "a0"  # video, no keyframe, layer 2
        "7f"  # no voice activity, level 127: no level
        "01020304"  # sender
        "00000000"  # no group
        "0000"  # no object
        "00000007"  # signature 7 of the track
        "0002"  # packet 2
        "0005"  # of 5 packets
    )
    assert SIGNATURE.is_signature
    assert not HEADER.is_signature
    assert SIGNATURE.datagram_type == TYPE_SIGNATURE
    assert HEADER.datagram_type == TYPE_MEDIA
    data = encode_datagram(SIGNATURE, b"sig")
    assert decode_datagram(data) == (SIGNATURE, b"sig")
    assert peek_route(data) == (VIDEO.sender, MediaKind.VIDEO, 2, False, SILENCE, False, 2)
    assert peek_sender(data) is None  # a 1:1 call's relay forwards frames only
    assert is_media_message(data)  # on the WebSocket fallback it travels as media does
    assert is_media_message(encode_datagram(HEADER, b"x"))
    assert not is_media_message(b"\x13" + data[1:])


@pytest.mark.parametrize(
    "change",
    [
        {"group": 1},
        {"object": 1},
        {"keyframe": True},
        {"audio_level": 5},
        {"voice": True},
        {"datagram_type": 3},
        {"datagram_type": 0},
    ],
)
def test_signature_header_has_no_frame_fields(change: dict[str, object]) -> None:
    with pytest.raises(WireError) as e:
        dataclasses.replace(SIGNATURE, **change)  # type: ignore[arg-type]
    assert e.value.code == errors.INVALID_VALUE


@pytest.mark.parametrize(
    ("offset", "value"),
    [(1, 0xE0), (2, 0xFF), (2, 0x00), (10, 1), (12, 1), (18, 5), (20, 0)],
)
def test_decode_refuses_a_signature_with_frame_fields(offset: int, value: int) -> None:
    data = bytearray(encode_datagram(SIGNATURE, b"x"))
    data[offset] = value
    with pytest.raises(WireError) as e:
        decode_datagram(bytes(data))
    assert e.value.code == errors.INVALID_VALUE
    assert peek_route(bytes(data)) is None


def test_round_trip_and_largest_datagram() -> None:
    payload = bytes(range(256)) * 4 + bytes(MAX_PAYLOAD - 1024)
    datagram = encode_datagram(HEADER, payload)
    assert len(datagram) == MAX_DATAGRAM
    assert decode_datagram(datagram) == (HEADER, payload)


@pytest.mark.parametrize("payload", [b"", bytes(MAX_PAYLOAD + 1)])
def test_encode_refuses_empty_or_oversized_payload(payload: bytes) -> None:
    with pytest.raises(WireError) as e:
        encode_datagram(HEADER, payload)
    assert e.value.code == errors.TOO_LARGE


def _patched(offset: int, value: int) -> bytes:
    data = bytearray(encode_datagram(HEADER, b"x"))
    data[offset] = value
    return bytes(data)


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", errors.MALFORMED),
        (HEADER.encode(), errors.MALFORMED),  # no payload
        (HEADER.encode() + bytes(MAX_PAYLOAD + 1), errors.TOO_LARGE),
        (_patched(0, 0x21), errors.BAD_VERSION),
        (_patched(0, 0x13), errors.UNKNOWN_TYPE),
        (_patched(0, 0x10), errors.UNKNOWN_TYPE),
        (_patched(0, 0x12), errors.INVALID_VALUE),  # a signature with a group and a keyframe
        (_patched(1, 0xE1), errors.INVALID_VALUE),  # a reserved flag bit
        (_patched(1, 0x60), errors.INVALID_VALUE),  # audio on layer 2
        (_patched(1, 0xA0), errors.INVALID_VALUE),  # object 0 without the keyframe flag
        (_patched(18, 3), errors.INVALID_VALUE),  # packet 3 of 3
        (_patched(20, 0), errors.INVALID_VALUE),  # packet 1 of 0 (count low byte)
    ],
)
def test_decode_refuses(data: bytes, code: str) -> None:
    with pytest.raises(WireError) as e:
        decode_datagram(data)
    assert e.value.code == code


def test_decode_refuses_non_bytes() -> None:
    with pytest.raises(WireError) as e:
        decode_datagram("text")  # type: ignore[arg-type]
    assert e.value.code == errors.MALFORMED


@pytest.mark.parametrize(
    "change",
    [
        {"packet": 3},
        {"packets": 0},
        {"audio_level": 128},
        {"frame": 2**32},
        {"object": 1},  # a keyframe must be object 0
        {"group": -1},
    ],
)
def test_constructor_checks_fields(change: dict[str, int]) -> None:
    with pytest.raises(WireError) as e:
        dataclasses.replace(HEADER, **change)  # type: ignore[arg-type]
    assert e.value.code == errors.INVALID_VALUE


@pytest.mark.parametrize(
    ("sender", "kind", "layer"),
    [(-1, MediaKind.AUDIO, 0), (2**32, MediaKind.VIDEO, 0), (1, MediaKind.AUDIO, 1), (1, 1, 0)],
)
def test_stream_id_checks_fields(sender: int, kind: MediaKind, layer: int) -> None:
    with pytest.raises(WireError):
        StreamId(sender, kind, layer)


def test_metadata_binds_position_not_forwarding_fields() -> None:
    base = frame_metadata(HEADER)
    same = [
        dataclasses.replace(HEADER, stream=dataclasses.replace(VIDEO, sender=9)),
        dataclasses.replace(HEADER, packet=2),
        dataclasses.replace(HEADER, packet=0, packets=1),
        dataclasses.replace(HEADER, audio_level=1, voice=False),
    ]
    assert all(frame_metadata(h) == base for h in same)
    other = [
        dataclasses.replace(HEADER, frame=301),
        dataclasses.replace(HEADER, group=6),
        dataclasses.replace(HEADER, keyframe=False, object=1),
        dataclasses.replace(HEADER, stream=dataclasses.replace(VIDEO, layer=1)),
        dataclasses.replace(HEADER, stream=StreamId(VIDEO.sender, MediaKind.AUDIO)),
    ]
    assert len({frame_metadata(h) for h in other} | {base}) == len(other) + 1


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=MAX_DATAGRAM + 8))
@example(HEADER.encode() + b"p")
@example(b"\x11" + bytes(19))
def test_decode_raises_only_wire_error(data: bytes) -> None:
    try:
        header, payload = decode_datagram(data)
    except WireError as e:
        code = e.code
    else:
        assert encode_datagram(header, payload) == data  # what decodes is canonical
        return
    assert code in errors.CODES


streams = st.builds(
    StreamId,
    st.integers(0, 2**32 - 1),
    st.just(MediaKind.VIDEO),
    st.integers(0, 3),
) | st.builds(StreamId, st.integers(0, 2**32 - 1), st.just(MediaKind.AUDIO), st.just(0))


@st.composite
def headers(draw: st.DrawFn) -> MediaHeader:
    packets = draw(st.integers(1, 2**16 - 1))
    obj = draw(st.integers(0, 2**16 - 1))
    if draw(st.integers(0, 3)) == 0:  # a signature datagram, one in four
        return signature_header(
            draw(streams),
            draw(st.integers(0, 2**32 - 1)),
            draw(st.integers(0, packets - 1)),
            packets,
        )
    return MediaHeader(
        draw(streams),
        draw(st.integers(0, 2**32 - 1)),
        obj,
        draw(st.integers(0, 2**32 - 1)),
        draw(st.integers(0, packets - 1)),
        packets,
        keyframe=obj == 0,
        audio_level=draw(st.integers(0, 127)),
        voice=draw(st.booleans()),
    )


@settings(max_examples=200, deadline=None)
@given(headers(), st.binary(min_size=1, max_size=MAX_PAYLOAD))
def test_round_trip(header: MediaHeader, payload: bytes) -> None:
    datagram = encode_datagram(header, payload)
    assert len(datagram) <= MAX_DATAGRAM
    assert decode_datagram(datagram) == (header, payload)


# --- the forwarding fast path: the same acceptance and values as decode_datagram ------------
def _decoded_route(data: object) -> Route | None:
    """What ``peek_route`` must give, from the full decoder."""
    try:
        header, _ = decode_datagram(data)  # type: ignore[arg-type]
    except WireError:
        return None
    s = header.stream
    return (
        s.sender,
        s.kind,
        s.layer,
        header.keyframe,
        header.audio_level,
        header.voice,
        header.datagram_type,
    )


def _assert_fast_path_agrees(data: object) -> None:
    expected = _decoded_route(data)
    assert peek_route(data) == expected  # type: ignore[arg-type]
    media = expected is not None and expected[6] == TYPE_MEDIA
    assert peek_sender(data) == (expected[0] if media else None)  # type: ignore[arg-type,index]


def _bit_flips(data: bytes) -> list[bytes]:
    return [
        data[:i] + bytes([data[i] ^ 1 << bit]) + data[i + 1 :]
        for i in range(HEADER_SIZE)
        for bit in range(8)
    ]


@pytest.mark.parametrize(
    "data",
    [
        b"",
        "text",
        None,
        HEADER.encode(),
        HEADER.encode() + bytes(MAX_PAYLOAD + 1),
        encode_datagram(HEADER, bytes(MAX_PAYLOAD)),  # the largest
        bytearray(encode_datagram(HEADER, b"x")),
        memoryview(encode_datagram(HEADER, b"x")),
        memoryview(encode_datagram(HEADER, b"xyz")).cast("I"),  # 6 items of 24 bytes
        *(_patched(offset, value) for offset, value in [(0, 0x21), (0, 0x12), (1, 0xE1)]),
        *(_patched(offset, value) for offset, value in [(0, 0x13), (0, 0x10)]),
        *_bit_flips(encode_datagram(SIGNATURE, b"x")),
        encode_datagram(SIGNATURE, bytes(MAX_PAYLOAD)),
        *(_patched(offset, value) for offset, value in [(1, 0x60), (1, 0xA0), (18, 3), (20, 0)]),
        *_bit_flips(encode_datagram(HEADER, b"x")),
    ],
)
def test_fast_path_agrees_on_known_cases(data: object) -> None:
    _assert_fast_path_agrees(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=MAX_DATAGRAM + 8))
@example(HEADER.encode() + b"p")
@example(b"\x11" + bytes(19) + b"\x01p")  # the smallest datagram accepted
def test_fast_path_agrees_on_arbitrary_bytes(data: bytes) -> None:
    _assert_fast_path_agrees(data)


@settings(max_examples=300, deadline=None)
@given(
    headers(),
    st.binary(max_size=MAX_PAYLOAD + 1),
    st.integers(0, HEADER_SIZE * 8 - 1),
    st.integers(0, HEADER_SIZE - 1),
    st.integers(0, 255),
)
def test_fast_path_agrees_on_valid_and_altered_headers(
    header: MediaHeader, payload: bytes, bit: int, offset: int, value: int
) -> None:
    data = header.encode() + payload  # from no payload to one byte over MAX_DATAGRAM
    _assert_fast_path_agrees(data)
    if 0 < len(payload) <= MAX_PAYLOAD:
        route = peek_route(data)
        assert route is not None
        assert route[0] == header.stream.sender
        assert route[6] == header.datagram_type
        expected = None if header.is_signature else header.stream.sender
        assert peek_sender(data) == expected
    flipped = data[: bit // 8] + bytes([data[bit // 8] ^ 1 << bit % 8]) + data[bit // 8 + 1 :]
    _assert_fast_path_agrees(flipped)
    _assert_fast_path_agrees(data[:offset] + bytes([value]) + data[offset + 1 :])


@settings(max_examples=100, deadline=None)
@given(headers(), st.binary(min_size=1, max_size=MAX_PAYLOAD), st.integers(0, 2**32 - 1))
def test_replace_sender_changes_only_the_sender(
    header: MediaHeader, payload: bytes, sender: int
) -> None:
    data = encode_datagram(header, payload)
    moved = dataclasses.replace(header, stream=dataclasses.replace(header.stream, sender=sender))
    for given_data in (data, bytearray(data), memoryview(data)):
        out = replace_sender(given_data, sender.to_bytes(4, "big"))
        assert type(out) is bytes
        assert decode_datagram(out) == (moved, payload)


def test_replace_sender_counts_bytes_of_a_wide_memoryview() -> None:
    data = encode_datagram(HEADER, b"xyz")  # 24 bytes: six 4-byte items
    expected = data[:3] + b"\x00\x00\x00\x09" + data[7:]
    assert replace_sender(memoryview(data).cast("I"), b"\x00\x00\x00\x09") == expected


def test_replace_sender_takes_four_bytes() -> None:
    with pytest.raises(ValueError, match="four bytes"):
        replace_sender(encode_datagram(HEADER, b"x"), b"\x00" * 3)


@settings(max_examples=100, deadline=None)
@given(headers())
def test_metadata_names_the_track_and_frame(header: MediaHeader) -> None:
    s = header.stream
    assert metadata_track(frame_metadata(header)) == (s.kind, s.layer, header.frame)


@pytest.mark.parametrize("metadata", [b"", bytes(11), b"\x02" + bytes(11), b"\x01\x01" + bytes(10)])
def test_metadata_track_refuses_what_is_no_metadata(metadata: bytes) -> None:
    with pytest.raises(WireError):
        metadata_track(metadata)
