"""node.connection with call media (issue 17, the WebSocket fallback): binary messages that
are media datagrams bypass the frame core once authenticated, in runs between the frames
read with them, under node.gateway (messages read together) and under hypercorn (one at a
time); the frames around them are answered in order, and nothing closes the connection or
counts a strike. Through fake ASGI channels; a node without a call relay drops and counts
the datagrams. Pushes (``LegEnded``, a meeting leg's notices) leave in the order pushed."""

from __future__ import annotations

from collections import deque
from typing import Any

import pytest
import trio
import trio.lowlevel
import trio.testing

from node.calls_requests import WEBSOCKET_DROPPED
from node.connection import Connection
from node.gateway import READY_EXTENSION
from node.session import Session
from tests.node.calls.helpers import datagram
from tests.node.harness import PEER, Device, make_relay
from wire import decode, encode
from wire.relay import (
    MEDIA_MESSAGE_BYTE,
    Drained,
    Error,
    Hello,
    MeetingLayer,
    Ping,
    Pong,
    Registered,
)
from wire.relay_calls import SIGNATURE_MESSAGE_BYTE

LEG = bytes(range(16))
PUSHES = 40


def _signed(message: bytes) -> bytes:
    """``message`` with a signature datagram's first byte."""
    return bytes((SIGNATURE_MESSAGE_BYTE,)) + message[1:]


@pytest.mark.parametrize("gathered", [True, False], ids=["gateway", "hypercorn"])
@pytest.mark.parametrize("signature", [False, True], ids=["media", "signature-only"])
async def test_media_between_frames_is_dropped_and_counted_and_frames_answered(
    gathered: bool, signature: bool
) -> None:
    """``signature``: the turn's only datagrams are a meeting's signature datagrams (first
    byte 0x12), media all the same, never a malformed frame."""
    relay = make_relay()
    alice = Device.create("alice")
    code = await relay.add_invite(alice.name, 3600)
    session = Session(relay, PEER)
    inbox, receive = trio.open_memory_channel[dict[str, Any]](16)
    ready: deque[bytes] = deque()
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    def next_ready() -> bytes | None:
        return ready.popleft() if ready else None

    extensions = {READY_EXTENSION: next_ready} if gathered else None
    async with trio.open_nursery() as nursery:
        conn = Connection(session, send, nursery, extensions)
        nursery.start_soon(conn.serve, receive.receive)
        await trio.testing.wait_all_tasks_blocked()
        hello = decode(sent[0]["bytes"])
        assert isinstance(hello, Hello)
        await inbox.send(
            {"type": "websocket.receive", "bytes": encode(alice.register_frame(hello, code))}
        )
        await trio.testing.wait_all_tasks_blocked()
        assert [type(decode(m["bytes"])) for m in sent[1:]] == [Registered, Drained]
        del sent[:]

        messages = [datagram(1), encode(Ping(7)), b"\x11x", datagram(2), encode(Ping(8))]
        if signature:
            messages = [_signed(m) if m[0] == MEDIA_MESSAGE_BYTE else m for m in messages]
        if gathered:
            ready.extend(messages[1:])
            await inbox.send({"type": "websocket.receive", "bytes": messages[0]})
        else:
            for message in messages:
                await inbox.send({"type": "websocket.receive", "bytes": message})
        await trio.testing.wait_all_tasks_blocked()
        answers = [decode(m["bytes"]) for m in sent]
        assert [type(a) for a in answers] == [Pong, Pong]
        assert [a.id for a in answers] == [7, 8]  # type: ignore[attr-defined]
        assert not any(isinstance(a, Error) for a in answers)
        assert not conn.closed
        assert relay.metrics.labeled[WEBSOCKET_DROPPED] == {(("reason", "unavailable"),): 3}
        assert relay.metrics.rejected == {}
        nursery.cancel_scope.cancel()


async def test_pushes_leave_in_the_order_pushed() -> None:
    """A meeting leg's notices (issue 18): a pause and a resume of one layer pushed in one
    turn must reach the client in that order, however the tasks are scheduled."""
    session = Session(make_relay(), PEER)
    sent: list[bytes] = []

    async def send(message: dict[str, Any]) -> None:
        await trio.lowlevel.checkpoint()  # every write yields, as a socket's may
        sent.append(message["bytes"])

    pushes = [MeetingLayer(LEG, 7, n // 2 % 2, active=bool(n % 2)) for n in range(PUSHES)]
    async with trio.open_nursery() as nursery:
        conn = Connection(session, send, nursery)
        for push in pushes[: PUSHES // 2]:
            conn.push(push)
        await trio.lowlevel.checkpoint()
        for push in pushes[PUSHES // 2 :]:
            conn.push(push)
        await trio.testing.wait_all_tasks_blocked()
    assert [decode(data) for data in sent] == pushes
