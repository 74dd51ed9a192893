"""Fuzz targets for what a node reads from clients: WebSocket framing, client frames,
shared sends, and the blob routes' path and headers."""

from __future__ import annotations

import base64

from node import app, gateway
from node.errors import NodeError
from node.session import _decode, _request_id
from node.wsframes import (
    CLOSE_INVALID_DATA,
    CLOSE_PROTOCOL_ERROR,
    CLOSE_TOO_BIG,
    Close,
    Event,
    Failure,
    FrameReader,
    Message,
    Ping,
)
from tests.fuzz.cursor import Cursor
from tests.fuzz.targets.base import Target, refusing
from wire import encode
from wire.relay import MAX_SHARED_RECIPIENTS, SendShared

MAX_FRAME = 1_114_112  # node.config's default max_frame_bytes
WS_LIMITS = (0, 125, 4096, 1 << 20)
FAILURE_CODES = {CLOSE_PROTOCOL_ERROR, CLOSE_INVALID_DATA, CLOSE_TOO_BIG}


def client_frames(data: bytes) -> None:
    """``node.session`` reading one binary WebSocket message (every request type)."""
    with refusing(NodeError):
        frame = _decode(data, MAX_FRAME)
        assert encode(frame) == data, "a frame the node accepts is canonical"
        assert _request_id(frame) >= 0


def shared_sends(data: bytes) -> None:
    """A ``SendShared`` (one body, many recipients) as the node reads it."""
    with refusing(NodeError):
        frame = _decode(data, MAX_FRAME)
        if isinstance(frame, SendShared):
            assert len(frame.recipients) <= MAX_SHARED_RECIPIENTS
            introduced = frozenset(r.mailbox for r in frame.recipients if r.token is None)
            assert all(len(m) == 16 for m in introduced)


def ws_frames(data: bytes) -> None:
    """``FrameReader.feed``: fed the stream whole and in pieces, the same events; no
    exception at all (a broken rule is a ``Failure`` event)."""
    cursor = Cursor(data)
    limit = WS_LIMITS[cursor.byte() & 3]
    step = cursor.byte() + 1
    stream = cursor.rest()
    whole = FrameReader(limit).feed(stream)
    reader = FrameReader(limit)
    pieces: list[Event] = []
    for at in range(0, len(stream), step):
        pieces += reader.feed(stream[at : at + step])
    assert pieces == whole, "events depend on how the stream was cut"
    _check_events(whole, limit)
    if reader.finished():
        assert reader.feed(b"\x81\x80\0\0\0\0") == []


def _check_events(events: list[Event], limit: int) -> None:
    for i, event in enumerate(events):
        if isinstance(event, Close | Failure):
            assert i == len(events) - 1, "an event after Close or Failure"
        if isinstance(event, Failure):
            assert event.code in FAILURE_CODES
        elif isinstance(event, Message):
            assert len(event.data) <= limit
            if event.text:
                event.data.decode("utf-8")
        elif isinstance(event, Ping):
            assert len(event.payload) <= 125


def ws_upgrade(data: bytes) -> None:
    """``node.gateway._client_upgrade``: the request head of a new connection (h11), a
    client WebSocket upgrade or None (hypercorn then answers it); no exception at all."""
    upgrade = gateway._client_upgrade(data)
    if upgrade is not None:
        key, rest, path, _ = upgrade
        assert len(base64.b64decode(key, validate=True)) == 16
        assert path == "/v1/client"
        assert data.endswith(rest)


def blob_request(data: bytes) -> None:
    """The blob routes' parsing of what the client chose: the path's blob id, the
    ``Authorization: Bearer`` upload token and ``Content-Length`` (no exception at all:
    a bad value is None, answered 404, 401 or by the server's own length check)."""
    cursor = Cursor(data)
    path = cursor.text()
    headers = [(cursor.chunk(), cursor.chunk()) for _ in range(cursor.byte() & 7)]
    scope = {"headers": headers}
    blob = app._unhex(path, app.BLOB_ID_HEX)
    assert blob is None or len(blob) == app.BLOB_ID_HEX // 2, "a blob id is 16 bytes"
    token = app._bearer(scope)
    assert token is None or len(token) == app.BLOB_TOKEN_HEX // 2, "a token is 32 bytes"
    declared = app._content_length(scope)
    assert declared is None or declared >= 0


TARGETS = (
    Target(
        "client_frames",
        "node.session._decode (wire.decode of wire.relay.REQUESTS)",
        "node.errors.NodeError",
        client_frames,
        max_len=8192,
    ),
    Target(
        "shared_sends",
        "node.session._decode of wire.relay.SendShared",
        "node.errors.NodeError",
        shared_sends,
        max_len=8192,
    ),
    Target(
        "ws_upgrade",
        "node.gateway._client_upgrade (h11 request head, WebSocket key)",
        "none (None: not a client upgrade)",
        ws_upgrade,
        max_len=4096,
    ),
    Target("ws_frames", "node.wsframes.FrameReader.feed", "none (Failure events)", ws_frames),
    Target(
        "blob_request",
        "node.app._unhex / _bearer / _content_length",
        "none (None for a bad value)",
        blob_request,
        max_len=1024,
    ),
)
