"""node.app: the anonymous path (``/v1/sealed``) and the debug dump of the connection
table, through fake ASGI channels (issue 20)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio
import trio.testing

from node import connection
from node.app import DEBUG_CONNECTIONS_PATH, SEALED_PATH, App
from node.relay import Relay
from tests.node.harness import make_relay
from wire import decode, encode
from wire.relay import Error, GetPrekeyStatus, Hello, Ping, Pong


def _http(path: str, client: str) -> dict[str, Any]:
    return {
        "type": "http",
        "method": "GET",
        "path": path,
        "headers": [],
        "client": (client, 50000),
    }


async def _get(app: App, scope: dict[str, Any]) -> tuple[int, bytes]:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    await app(scope, receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, body


async def _sealed_socket(
    app: App, relay: Relay, nursery: trio.Nursery
) -> tuple[trio.MemorySendChannel[dict[str, Any]], list[dict[str, Any]]]:
    inbox, receive = trio.open_memory_channel[dict[str, Any]](8)
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "websocket", "path": SEALED_PATH, "client": ("192.0.2.9", 40000)}
    await inbox.send({"type": "websocket.connect"})
    nursery.start_soon(app, scope, receive.receive, send)
    await trio.testing.wait_all_tasks_blocked()
    return inbox, sent


@pytest.mark.parametrize(
    ("enabled", "client", "status"),
    [(False, "127.0.0.1", 404), (True, "192.0.2.1", 404), (True, "::1", 200)],
)
async def test_the_dump_is_served_only_when_enabled_and_only_to_loopback(
    enabled: bool, client: str, status: int
) -> None:
    relay = make_relay(debug_connections=enabled)
    async with trio.open_nursery() as nursery:
        app = App(relay, lambda: ("http://node.test",), nursery)
        got, _ = await _get(app, _http(DEBUG_CONNECTIONS_PATH, client))
        nursery.cancel_scope.cancel()
    assert got == status


async def test_an_anonymous_socket_holds_no_account_and_sends_sealed_only() -> None:
    relay = make_relay(debug_connections=True)
    async with trio.open_nursery() as nursery:
        app = App(relay, lambda: ("http://node.test",), nursery)
        inbox, sent = await _sealed_socket(app, relay, nursery)
        assert sent[0] == {"type": "websocket.accept"}
        assert isinstance(decode(sent[1]["bytes"]), Hello)
        await inbox.send({"type": "websocket.receive", "bytes": encode(Ping(1))})
        await inbox.send({"type": "websocket.receive", "bytes": encode(GetPrekeyStatus(2))})
        await trio.testing.wait_all_tasks_blocked()
        pong, refusal = (decode(m["bytes"]) for m in sent[2:])
        assert isinstance(pong, Pong)
        assert isinstance(refusal, Error)
        assert refusal.code == "auth.anonymous"
        status, body = await _get(app, _http(DEBUG_CONNECTIONS_PATH, "127.0.0.1"))
        assert status == 200
        (row,) = json.loads(body)["connections"]
        assert row == {
            "path": "sealed",
            "state": "anonymous",
            "peer": "192.0.2.9",
            "account": None,
            "device": None,
            "mailbox": None,
        }
        assert (relay.sealed_connections.total(), relay.connections.total()) == (1, 0)
        await inbox.send({"type": "websocket.disconnect", "code": 1000})
        await trio.testing.wait_all_tasks_blocked()
        assert app.connections == set()
        assert relay.sealed_connections.total() == 0
        nursery.cancel_scope.cancel()


async def test_an_idle_anonymous_socket_is_closed_normally(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Each message resets the wait; ``sealed_idle_timeout`` without one closes with 1000
    (a socket holding no account is not kept for nothing: the client reopens it)."""
    relay = make_relay(sealed_idle_timeout=30.0)
    async with trio.open_nursery() as nursery:
        app = App(relay, lambda: ("http://node.test",), nursery)
        inbox, sent = await _sealed_socket(app, relay, nursery)
        for n in range(3):
            await trio.sleep(20)
            await inbox.send({"type": "websocket.receive", "bytes": encode(Ping(n))})
            await trio.testing.wait_all_tasks_blocked()
        assert not any(m["type"] == "websocket.close" for m in sent)
        await trio.sleep(31)
        assert sent[-1] == {"type": "websocket.close", "code": 1000}
        await inbox.send({"type": "websocket.disconnect", "code": 1000})
        await trio.testing.wait_all_tasks_blocked()
        assert app.connections == set()
        nursery.cancel_scope.cancel()


async def test_a_message_that_comes_as_the_idle_watch_fires_is_answered(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The idle timeout is one sleeping task per anonymous socket, not a cancel scope per
    message (``node.connection._IdleWatch``). If it cancels the wait just as a message is
    handed over, the message is still answered, the socket stays open, and the next wait
    is watched again."""
    watches: list[connection._IdleWatch] = []

    class Recorded(connection._IdleWatch):
        def __init__(self, timeout: float) -> None:
            super().__init__(timeout)
            watches.append(self)

    monkeypatch.setattr(connection, "_IdleWatch", Recorded)
    relay = make_relay(sealed_idle_timeout=30.0)
    inbox, channel = trio.open_memory_channel[dict[str, Any]](8)
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        message = await channel.receive()
        if message.get("bytes") == encode(Ping(7)):  # the watch fires as it is handed over
            watches[-1].fire()
        return message

    async with trio.open_nursery() as nursery:
        app = App(relay, lambda: ("http://node.test",), nursery)
        scope = {"type": "websocket", "path": SEALED_PATH, "client": ("192.0.2.9", 40000)}
        await inbox.send({"type": "websocket.connect"})
        nursery.start_soon(app, scope, receive, send)
        await trio.testing.wait_all_tasks_blocked()
        await inbox.send({"type": "websocket.receive", "bytes": encode(Ping(7))})
        await trio.testing.wait_all_tasks_blocked()
        assert isinstance(decode(sent[-1]["bytes"]), Pong)
        assert not any(m["type"] == "websocket.close" for m in sent)
        await trio.sleep(29)
        await inbox.send({"type": "websocket.receive", "bytes": encode(Ping(8))})
        await trio.testing.wait_all_tasks_blocked()
        assert isinstance(decode(sent[-1]["bytes"]), Pong)
        await trio.sleep(31)
        assert sent[-1] == {"type": "websocket.close", "code": 1000}
        assert len(watches) == 1  # one watch per socket; it ran again after the race
        await inbox.send({"type": "websocket.disconnect", "code": 1000})
        await trio.testing.wait_all_tasks_blocked()
        assert app.connections == set()
        nursery.cancel_scope.cancel()
