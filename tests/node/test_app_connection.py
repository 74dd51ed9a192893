"""node.connection: the WebSocket shell driving a Session, through fake ASGI channels."""

from __future__ import annotations

from typing import Any

import trio
import trio.testing

from node.connection import Connection
from node.session import CLOSE_SUPERSEDED, Session
from tests.node.harness import PEER, Device, make_relay
from wire import decode, encode
from wire.relay import Drained, Hello, Ping, Registered


async def test_a_message_read_after_a_push_task_closed_is_not_answered() -> None:
    """The push task closes the socket (superseded) while the reader waits; what the
    client sent meanwhile is read, not answered, and the reader stops."""
    relay = make_relay()
    alice = Device.create("alice")
    code = await relay.add_invite(alice.name, 3600)
    session = Session(relay, PEER)
    inbox, receive = trio.open_memory_channel[dict[str, Any]](8)
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async with trio.open_nursery() as nursery:
        conn = Connection(session, send, nursery)
        nursery.start_soon(conn.serve, receive.receive)
        await trio.testing.wait_all_tasks_blocked()
        hello = decode(sent[0]["bytes"])
        assert isinstance(hello, Hello)
        register = alice.register_frame(hello, code)
        await inbox.send({"type": "websocket.receive", "bytes": encode(register)})
        await trio.testing.wait_all_tasks_blocked()
        frames = [decode(m["bytes"]) for m in sent[1:]]
        assert isinstance(frames[0], Registered)
        assert frames[1:] == [Drained(0)]

        session.supersede()
        await trio.testing.wait_all_tasks_blocked()
        closed = {"type": "websocket.close", "code": CLOSE_SUPERSEDED}
        assert sent[-1] == closed
        await inbox.send({"type": "websocket.receive", "bytes": encode(Ping(9))})
        await trio.testing.wait_all_tasks_blocked()
        assert sent[-1] == closed
        assert conn.closed
