"""node.wsframes: the server end of RFC 6455 framing, bytes in and out."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node import wsframes
from node.wsframes import Close, Failure, FrameReader, Message, Ping

MASK = b"\x11\x22\x33\x44"


def client_frame(
    opcode: int, payload: bytes, *, final: bool = True, mask: bytes | None = MASK, rsv: int = 0
) -> bytes:
    """A frame as a client sends it (masked unless ``mask`` is None)."""
    first = (0x80 if final else 0) | rsv | opcode
    size = len(payload)
    bit = 0x80 if mask is not None else 0
    if size < 126:
        header = bytes((first, bit | size))
    elif size < 1 << 16:
        header = bytes((first, bit | 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((first, bit | 127)) + size.to_bytes(8, "big")
    if mask is None:
        return header + payload
    return header + mask + wsframes.unmask(payload, mask)


def test_the_rfc_example_accept_key() -> None:
    # RFC 6455 section 1.3
    assert wsframes.accept_key(b"dGhlIHNhbXBsZSBub25jZQ==") == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_the_rfc_example_masked_hello() -> None:
    # RFC 6455 section 5.7: a single-frame masked text message "Hello"
    data = bytes.fromhex("818537fa213d7f9f4d5158")
    assert FrameReader(100).feed(data) == [Message(b"Hello", True)]


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 70000])
def test_server_frames_use_the_shortest_length(size: int) -> None:
    payload = os.urandom(size)
    data = wsframes.frame(wsframes.OP_BINARY, payload)
    header = 2 if size < 126 else 4 if size < 65536 else 10
    assert len(data) == header + size
    assert data[0] == 0x82
    assert data[header:] == payload
    # the same frame, masked, reads back
    assert FrameReader(1 << 20).feed(client_frame(2, payload)) == [Message(payload, False)]


@given(st.binary(max_size=3000), st.lists(st.integers(1, 500), max_size=10))
def test_messages_read_back_whatever_the_chunking(payload: bytes, cuts: list[int]) -> None:
    data = client_frame(2, payload) + client_frame(1, b"text") + client_frame(9, b"p")
    reader, events, at = FrameReader(1 << 20), [], 0
    for cut in cuts:
        events += reader.feed(data[at : at + cut])
        at += cut
    events += reader.feed(data[at:])
    assert events == [Message(payload, False), Message(b"text", True), Ping(b"p")]


def test_fragments_join_and_control_frames_may_come_between() -> None:
    data = (
        client_frame(2, b"ab", final=False)
        + client_frame(9, b"ping")
        + client_frame(0, b"cd", final=False)
        + client_frame(0, b"ef")
    )
    assert FrameReader(100).feed(data) == [Ping(b"ping"), Message(b"abcdef", False)]


def test_pongs_are_ignored() -> None:
    assert FrameReader(100).feed(client_frame(10, b"x")) == []


def test_close_with_and_without_a_code_then_nothing() -> None:
    reader = FrameReader(100)
    assert reader.feed(client_frame(8, (1000).to_bytes(2, "big") + b"bye")) == [Close(1000)]
    assert reader.finished()
    assert reader.feed(client_frame(2, b"late")) == []
    assert FrameReader(100).feed(client_frame(8, b"")) == [Close(wsframes.CLOSE_NO_STATUS)]


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (client_frame(2, b"x", mask=None), 1002),  # unmasked
        (client_frame(2, b"x", rsv=0x40), 1002),  # no extension was negotiated
        (client_frame(3, b"x"), 1002),  # reserved data opcode
        (client_frame(11, b"x"), 1002),  # reserved control opcode
        (client_frame(0, b"x"), 1002),  # continuation of nothing
        (client_frame(2, b"a", final=False) + client_frame(2, b"b"), 1002),  # not a continuation
        (client_frame(9, b"x" * 126), 1002),  # control payload too long
        (client_frame(9, b"x", final=False), 1002),  # fragmented control frame
        (client_frame(8, b"\x03"), 1002),  # close payload of one byte
        (client_frame(8, (999).to_bytes(2, "big")), 1002),  # invalid close code
        (client_frame(8, (1000).to_bytes(2, "big") + b"\xff"), 1007),  # reason not UTF-8
        (client_frame(1, b"\xff\xfe"), 1007),  # text not UTF-8
        (client_frame(2, b"x" * 101), 1009),  # too large
        (client_frame(2, b"x" * 60, final=False) + client_frame(0, b"y" * 41), 1009),
    ],
)
def test_broken_rules_fail_with_their_close_code(data: bytes, code: int) -> None:
    reader = FrameReader(100)
    events = reader.feed(data)
    assert isinstance(events[-1], Failure)
    assert events[-1].code == code
    assert reader.feed(client_frame(2, b"x")) == []


def test_a_too_large_frame_fails_on_its_header_alone() -> None:
    header = bytes((0x82, 0x80 | 127)) + (1 << 40).to_bytes(8, "big")
    (event,) = FrameReader(1 << 20).feed(header)
    assert event == Failure(1009, "message too large")


def test_close_frame() -> None:
    assert wsframes.close_frame(1008) == bytes((0x88, 2)) + (1008).to_bytes(2, "big")


def test_registered_close_codes_are_accepted() -> None:
    """1012 and 1013 are registered (found by the differential test against wsproto)."""
    for code in (1012, 1013):
        reader = FrameReader(1024)
        mask = b"\x01\x02\x03\x04"
        payload = code.to_bytes(2, "big")
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        assert reader.feed(bytes((0x88, 0x80 | len(payload))) + mask + masked) == [Close(code)]
