"""The node's own WebSocket framer (``node.wsframes``, kept for speed) against ``wsproto``,
a kept implementation of RFC 6455, over generated frames in both directions.

- Client to server: streams of data messages (whole or fragmented), pings and a close,
  encoded by wsproto's client end (masked), fed to ``FrameReader`` in arbitrary pieces, give
  the same events as wsproto's server end reading the same bytes.
- Damaged client streams (a byte changed anywhere) end the same way in both: the same
  events before the damage, then either both fail with the same close code, or both
  read on.
- Server to client: what ``frame``, ``header`` and ``close_frame`` write, wsproto's client
  end reads as the same messages, pings and close code.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st
from wsproto.frame_protocol import FrameProtocol, Opcode, ParseFailed

from node import wsframes
from node.wsframes import Close, Failure, FrameReader, Message, Ping

MAX_MESSAGE = 1 << 20
EXAMPLES = 60


@dataclass(frozen=True)
class Send:
    data: bytes | str
    pieces: int  # 1: one final frame; more: fragmented into that many frames


@dataclass(frozen=True)
class SendPing:
    payload: bytes


@dataclass(frozen=True)
class SendClose:
    code: int


Op = Send | SendPing | SendClose

CLOSE_CODES = st.sampled_from([1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 4999])
PAYLOADS = st.one_of(
    st.binary(max_size=300), st.text(max_size=100), st.binary(min_size=65_536, max_size=65_600)
)
OPS = st.one_of(
    st.builds(Send, PAYLOADS, st.integers(1, 4)),
    st.builds(SendPing, st.binary(max_size=125)),
)
STREAMS = st.tuples(st.lists(OPS, max_size=6), st.none() | st.builds(SendClose, CLOSE_CODES))


def _encode_client(ops: list[Op]) -> bytes:
    """wsproto's client end writes ``ops`` (masked frames)."""
    proto = FrameProtocol(client=True, extensions=[])
    out = bytearray()
    for op in ops:
        if isinstance(op, Send):
            out += _fragments(proto, op)
        elif isinstance(op, SendPing):
            out += proto.ping(op.payload)
        else:
            out += proto.close(op.code)
    return bytes(out)


def _fragments(proto: FrameProtocol, op: Send) -> bytes:
    size = len(op.data)
    cuts = sorted({size * k // op.pieces for k in range(1, op.pieces)})
    bounds = [0, *cuts, size]
    out = bytearray()
    for n, (start, end) in enumerate(itertools.pairwise(bounds)):
        out += proto.send_data(op.data[start:end], fin=n == len(bounds) - 2)
    return bytes(out)


def _expected(ops: list[Op]) -> list[object]:
    events: list[object] = []
    for op in ops:
        if isinstance(op, Send):
            text = isinstance(op.data, str)
            data = op.data.encode() if isinstance(op.data, str) else op.data
            events.append(Message(data, text))
        elif isinstance(op, SendPing):
            events.append(Ping(op.payload))
        else:
            events.append(Close(op.code))
    return events


def _ours(data: bytes, cuts: list[int]) -> list[object]:
    reader = FrameReader(MAX_MESSAGE)
    events: list[object] = []
    start = 0
    for cut in [*sorted(c % (len(data) + 1) for c in cuts), len(data)]:
        events += reader.feed(data[start:cut]) if cut >= start else []
        start = max(start, cut)
    return events


def _theirs(data: bytes, *, client: bool = False) -> list[object]:
    """wsproto's reading of ``data`` as the same events (a ParseFailed as a Failure)."""
    proto = FrameProtocol(client=client, extensions=[])
    proto.receive_bytes(data)
    events: list[object] = []
    parts: list[bytes] = []
    text = False
    try:
        for frame in proto.received_frames():
            if frame.opcode is Opcode.PING:
                events.append(Ping(bytes(frame.payload)))
            elif frame.opcode is Opcode.CLOSE:
                code, _reason = frame.payload
                events.append(Close(int(code)))
                return events
            elif frame.opcode in (Opcode.TEXT, Opcode.BINARY, Opcode.CONTINUATION):
                if frame.opcode is not Opcode.CONTINUATION:
                    text = frame.opcode is Opcode.TEXT
                payload = frame.payload
                parts.append(payload.encode() if isinstance(payload, str) else bytes(payload))
                if frame.message_finished:
                    events.append(Message(b"".join(parts), text))
                    parts = []
    except ParseFailed as exc:
        events.append(Failure(int(exc.code), ""))
    return events


def _codes(events: list[object]) -> list[object]:
    """Events with a Failure's reason dropped (the two word their reasons differently)."""
    return [Failure(e.code, "") if isinstance(e, Failure) else e for e in events]


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True)
@given(STREAMS, st.lists(st.integers(0, 1 << 20), max_size=5))
def test_client_streams_read_alike(
    stream: tuple[list[Op], SendClose | None], cuts: list[int]
) -> None:
    ops, close = stream
    sequence: list[Op] = [*ops, *([close] if close else [])]
    data = _encode_client(sequence)
    assert _ours(data, cuts) == _expected(sequence)
    assert _theirs(data) == _expected(sequence)


@settings(max_examples=EXAMPLES * 2, deadline=None, derandomize=True)
@given(STREAMS, st.integers(0, 1 << 20), st.integers(1, 255))
def test_damaged_client_streams_end_alike(
    stream: tuple[list[Op], SendClose | None], where: int, flip: int
) -> None:
    ops, close = stream
    data = bytearray(_encode_client([*ops, *([close] if close else [])]))
    if not data:
        return
    data[where % len(data)] ^= flip
    ours, theirs = _codes(_ours(bytes(data), [])), _theirs(bytes(data))
    assert _agree(ours, theirs), (ours, theirs)


def _agree(ours: list[object], theirs: list[object]) -> bool:
    """The same events, and the same end, but for the two documented differences:

    - wsproto checks a text message's UTF-8 frame by frame and may fail (1007) before the
      message ends; the node checks it whole, so it may read on (and then fail with 1002
      or 1007, or wait for bytes that a damaged length promised);
    - the node judges a frame on its first two bytes (1002: reserved bits, no mask, an
      unexpected continuation, a long control frame) and on its length (1009: over
      ``max_message``, a bound wsproto does not have); wsproto waits for the whole header
      and payload first, so where a damaged length leaves the stream short, the node may
      fail while wsproto still waits for bytes."""
    o_fail = ours[-1] if ours and isinstance(ours[-1], Failure) else None
    t_fail = theirs[-1] if theirs and isinstance(theirs[-1], Failure) else None
    o_events = ours[:-1] if o_fail else ours
    t_events = theirs[:-1] if t_fail else theirs
    if isinstance(t_fail, Failure) and t_fail.code == wsframes.CLOSE_INVALID_DATA:
        if o_events[: len(t_events)] != t_events:
            return False
        return o_fail is None or o_fail.code in (1002, 1007, 1009)
    if o_events != t_events:
        return False
    if o_fail is None or t_fail is None:
        early = isinstance(o_fail, Failure) and o_fail.code in (1002, wsframes.CLOSE_TOO_BIG)
        return o_fail is t_fail or (early and t_fail is None)
    assert isinstance(o_fail, Failure)
    return o_fail.code == t_fail.code


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True)
@given(st.lists(OPS, max_size=6), st.none() | st.builds(SendClose, CLOSE_CODES))
def test_server_frames_read_by_wsproto(ops: list[Op], close: SendClose | None) -> None:
    out = bytearray()
    expected: list[object] = []
    for op in ops:
        if isinstance(op, Send):
            data = op.data.encode() if isinstance(op.data, str) else op.data
            opcode = wsframes.OP_TEXT if isinstance(op.data, str) else wsframes.OP_BINARY
            if op.pieces % 2:
                out += wsframes.frame(opcode, data)
            else:  # the header written apart from its payload, as the node's writer does
                out += wsframes.header(opcode, len(data)) + data
            expected.append(Message(data, isinstance(op.data, str)))
        elif isinstance(op, SendPing):
            out += wsframes.frame(wsframes.OP_PING, op.payload)
            expected.append(Ping(op.payload))
    if close is not None:
        out += wsframes.close_frame(close.code)
        expected.append(Close(close.code))
    assert _theirs(bytes(out), client=True) == expected
