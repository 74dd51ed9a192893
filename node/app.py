"""The node's ASGI application (served by hypercorn's trio worker): a thin shell.

WS   /v1/client                      the client protocol (``wire.relay``): each socket
                                     is a ``node.connection.Connection`` driving a
                                     ``node.session.Session`` around the pure core
                                     ``node.conn``
WS   /v1/sealed                      the same protocol on an anonymous connection: sealed
                                     sending only, never a login (``node.sealed``)
GET  /v1/debug/connections           with ``debug_connections`` on, to loopback clients
                                     only: the in-memory connection table as JSON, one
                                     row per WebSocket (:func:`describe`); else 404
*    everything else                 HTTP (``node.http_routes``: health, metrics, the
                                     key document, blobs, limits, federation)

Why a second path rather than a first frame that is not ``Auth``: the node knows before
any frame that the connection will never log in, so it never holds a challenge it could
spend, never runs the login deadline, cannot be turned into a logged-in connection, and
is counted and limited apart (``max_sealed_connections_per_ip``); an operator can route,
log or rate-limit the path on its own at the ingress. The frames are the same.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable
from typing import Final

import trio

from node import errors
from node.connection import Connection, Receive, Scope, Send, drain, peer_of
from node.fed import Federation
from node.http_routes import (
    BLOB_ID_HEX,
    BLOB_TOKEN_HEX,
    DOCUMENT_PATH,
    FEDERATION_MAX_BODY,
    FEDERATION_PREFIX,
    JSON,
    HttpRoutes,
    _bearer,
    _content_length,
    _problem,
    _respond,
    _unhex,
)
from node.relay import Relay
from node.session import CLOSE_GOING_AWAY, CLOSE_POLICY, Session
from wire import encode
from wire.relay import Error

__all__ = [  # (names other modules and the fuzz targets read here)
    "BLOB_ID_HEX",
    "BLOB_TOKEN_HEX",
    "CLIENT_PATH",
    "DEBUG_CONNECTIONS_PATH",
    "DOCUMENT_PATH",
    "FEDERATION_MAX_BODY",
    "FEDERATION_PREFIX",
    "SEALED_PATH",
    "App",
    "_bearer",
    "_content_length",
    "_unhex",
]

CLIENT_PATH: Final = "/v1/client"
SEALED_PATH: Final = "/v1/sealed"
DEBUG_CONNECTIONS_PATH: Final = "/v1/debug/connections"


class App:
    """The ASGI callable; ``endpoints`` gives the URLs listed in the key document, pushes
    run in ``nursery`` (one short task per connection with something to push)."""

    def __init__(
        self,
        relay: Relay,
        endpoints: Callable[[], tuple[str, ...]],
        nursery: trio.Nursery,
        *,
        federation: Federation | None = None,
    ) -> None:
        self.relay = relay
        self.federation = federation
        self.nursery = nursery
        self.endpoints = endpoints
        self.connections: set[Connection] = set()
        self.http = HttpRoutes(relay, endpoints, federation)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http" and scope["path"] == DEBUG_CONNECTIONS_PATH:
            await self._debug_connections(scope, send)
        elif kind == "http":
            await self.http(scope, receive, send)
        elif kind == "websocket":
            await self._websocket(scope, receive, send)
        elif kind == "lifespan":
            await _lifespan(receive, send)

    def close_all(self) -> None:
        """Draining: ask every client WebSocket to close (clients reconnect elsewhere)."""
        self.relay.draining = True
        for conn in list(self.connections):
            conn.session.going_away()

    def connection_table(self) -> list[dict[str, object]]:
        """One row per open client WebSocket (:func:`describe`), for the debug dump."""
        return [describe(conn.session) for conn in list(self.connections)]

    async def _debug_connections(self, scope: Scope, send: Send) -> None:
        """``GET /v1/debug/connections``: only when configured, only to loopback."""
        if not self.relay.config.debug_connections or not _loopback(peer_of(scope)):
            await _problem(send, 404, "http.not_found", "no such resource")
            return
        body = json.dumps({"connections": self.connection_table()}).encode()
        await _respond(send, 200, body, JSON)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        if path not in (CLIENT_PATH, SEALED_PATH) or (await receive())["type"] != (
            "websocket.connect"
        ):
            await send({"type": "websocket.close", "code": CLOSE_POLICY})
            return
        if self.relay.draining:
            await send({"type": "websocket.close", "code": CLOSE_GOING_AWAY})
            return
        peer = peer_of(scope)
        anonymous = path == SEALED_PATH
        counter = self.relay.sealed_connections if anonymous else self.relay.connections
        if not counter.acquire(peer):
            await _refuse_connection(send)
            return
        session = Session(self.relay, peer, anonymous=anonymous)
        conn = Connection(session, send, self.nursery, scope.get("extensions"))
        self._opened(conn)
        try:
            await send({"type": "websocket.accept"})
            await conn.serve(receive)
            if conn.closed and not self.relay.draining:
                # (While draining, hypercorn stops reading and closes every socket itself.)
                await drain(receive)
        finally:
            conn.closed = True
            session.closed()
            session.detach()
            counter.release(peer)
            self._closed(conn)

    def _opened(self, conn: Connection) -> None:
        self.connections.add(conn)
        self.relay.metrics.connections += 1

    def _closed(self, conn: Connection) -> None:
        self.connections.discard(conn)
        self.relay.metrics.connections -= 1


async def _refuse_connection(send: Send) -> None:
    await send({"type": "websocket.accept"})
    frame = Error(0, errors.LIMIT_CONNECTIONS, "too many connections from this address", 0)
    await send({"type": "websocket.send", "bytes": encode(frame)})
    await send({"type": "websocket.close", "code": CLOSE_POLICY})


def describe(session: Session) -> dict[str, object]:
    """A connection's row of the debug dump: its state, the client's address and what
    account, device and mailbox it holds (all None on an anonymous connection)."""
    caller = session.caller
    return {
        "path": "sealed" if session.anonymous else "client",
        "state": session.state.value,
        "peer": session.peer,
        "account": None if caller is None else caller.address,
        "device": None if caller is None else caller.device,
        "mailbox": None if caller is None else caller.mailbox.hex(),
    }


def _loopback(peer: str) -> bool:
    try:
        return ipaddress.ip_address(peer).is_loopback
    except ValueError:
        return False


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
