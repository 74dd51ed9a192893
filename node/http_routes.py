"""The node's HTTP routes (everything but the client WebSocket, ``node.connection``).

    GET  /healthz                        200 while the process runs
    GET  /readyz                         200 while serving, 503 while draining
    GET  /metrics                        Prometheus text (``node.metrics``)
    GET  /.well-known/sealrelay/server   the signed ServerKeyDocument (application/x-msgpack)
    PUT  /v1/blobs/{hex id}              upload, ``Authorization: Bearer <hex upload token>``,
                                         exactly the granted size; 201. The token, the
                                         grant and Content-Length are checked before the
                                         body is read (401, 404, 413); at most the granted
                                         size is read
    GET  /v1/blobs/{hex id}              the bytes, or 404 (unknown or expired)
    GET  /v1/remote-blobs/{domain}/{hex id}   a federated domain's blob, fetched by this node
    GET  /v1/limits                      JSON, the limits a client checks before it uploads:
                                         ``{"max_blob_bytes": N}`` (clients ignore keys they
                                         do not know, so more may be added)
    *    /federation/v1/...              signed requests of peer domains (``node.fed``)

Refusals carry a JSON body ``{"code": ..., "message": ...}`` with the codes of
``node.errors``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Final

import trio

from node import errors
from node.connection import CLOSE_DRAIN_SECONDS, Message, Receive, Scope, Send, peer_of
from node.fed import Federation
from node.limits import retry_after_ms
from node.relay import Relay
from wire.federation import MAX_TXN_BODY

log = logging.getLogger("sealrelay.node.app")

MSGPACK: Final = b"application/x-msgpack"
JSON: Final = b"application/json"
TEXT: Final = b"text/plain; charset=utf-8"
DOCUMENT_PATH: Final = "/.well-known/sealrelay/server"
LIMITS_PATH: Final = "/v1/limits"
BLOB_PREFIX: Final = "/v1/blobs/"
REMOTE_BLOB_PREFIX: Final = "/v1/remote-blobs/"
FEDERATION_PREFIX: Final = "/federation/"
CLIENT_GONE: Final = (trio.BrokenResourceError, trio.ClosedResourceError, trio.BusyResourceError)
"""Exceptions of a write to a client that has hung up."""
FEDERATION_MAX_BODY: Final = MAX_TXN_BODY  # the largest transaction, encoded
BLOB_ID_HEX: Final = 32
BLOB_TOKEN_HEX: Final = 64


class HttpRoutes:
    """The HTTP side of the node's ASGI application; ``endpoints`` gives the URLs listed
    in the key document."""

    __slots__ = ("endpoints", "federation", "relay")

    def __init__(
        self,
        relay: Relay,
        endpoints: Callable[[], tuple[str, ...]],
        federation: Federation | None = None,
    ) -> None:
        self.relay = relay
        self.endpoints = endpoints
        self.federation = federation

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer one HTTP request."""
        method, path = scope["method"], scope["path"]
        async with trio.open_nursery() as nursery:
            body = _Body(receive, send, nursery)
            try:
                if path.startswith(BLOB_PREFIX):
                    await self._blob(scope, method, path[len(BLOB_PREFIX) :], body, body.send)
                elif path.startswith(FEDERATION_PREFIX):
                    await self._federation(scope, method, path, body, body.send)
                elif path.startswith(REMOTE_BLOB_PREFIX) and method == "GET":
                    await self._remote_blob(scope, path[len(REMOTE_BLOB_PREFIX) :], body.send)
                elif method not in ("GET", "HEAD"):
                    await _problem(body.send, 405, errors.PROTO_UNEXPECTED, "method not allowed")
                else:
                    await self._get(path, body.send)
            except CLIENT_GONE as exc:
                # The client hung up while we answered: its doing, not ours. Counted, never
                # logged as an error (a remote party could otherwise fill the logs at will).
                self.relay.metrics.count("http_client_gone", reason=type(exc).__name__)
            except Exception as exc:
                log.exception("http request failed", extra={"error": type(exc).__name__})
                if not body.started:
                    await _problem(body.send, 500, errors.INTERNAL, "internal error")

    async def _federation(
        self, scope: Scope, method: str, path: str, receive: Receive, send: Send
    ) -> None:
        """A peer domain's signed request (``node.fed.inbound``)."""
        if self.federation is None:
            await _problem(send, 404, errors.FED_POLICY, "this node does not federate")
            return
        declared = _content_length(scope)
        if declared is not None and declared > FEDERATION_MAX_BODY:
            await _problem(send, 413, errors.PROTO_TOO_LARGE, "federation request too large")
            return
        data = await _read_body(receive, FEDERATION_MAX_BODY)
        if data is None:
            await _problem(send, 413, errors.PROTO_TOO_LARGE, "federation request too large")
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        status, content_type, answer = await self.federation.inbound.handle(
            method, path, headers, data
        )
        await _respond(send, status, answer, content_type.encode())

    async def _remote_blob(self, scope: Scope, rest: str, send: Send) -> None:
        """``GET /v1/remote-blobs/{domain}/{hex id}``: a blob of a federated domain, fetched
        by this node so that the remote node never sees the client."""
        domain, _, name = rest.partition("/")
        blob = _unhex(name, BLOB_ID_HEX)
        wait = self.relay.ip_limit.take(peer_of(scope), self.relay.clock())
        if wait:
            await _problem(send, 429, errors.LIMIT_RATE, "too many requests", retry_after_ms(wait))
            return
        if blob is None or self.federation is None:
            await _problem(send, 404, errors.BLOB_NOT_FOUND, "no such blob")
            return
        try:
            data = await self.federation.remote_blob(domain.lower(), blob)
        except errors.NodeError as exc:
            await _problem(
                send, 502 if exc.code == errors.FED_UNAVAILABLE else 403, exc.code, exc.message
            )
            return
        if data is None:
            await _problem(send, 404, errors.BLOB_NOT_FOUND, "no such blob")
        else:
            await _respond(send, 200, data, b"application/octet-stream")

    async def _get(self, path: str, send: Send) -> None:
        relay = self.relay
        if path == "/healthz":
            await _respond(send, 200, b"ok\n", TEXT)
        elif path == "/readyz":
            ready = not relay.draining
            await _respond(
                send, 200 if ready else 503, b"ready\n" if ready else b"draining\n", TEXT
            )
        elif path == "/metrics":
            text = relay.metrics.render(await relay.ports.maintenance.stats())
            await _respond(send, 200, text.encode(), b"text/plain; version=0.0.4; charset=utf-8")
        elif path == DOCUMENT_PATH:
            cfg = relay.config
            doc = relay.keys.key_document_bytes(
                cfg.domain,
                self.endpoints(),
                relay.now_ms(),
                cfg.document_lifetime,
                relay.media_port,
            )
            await _respond(send, 200, doc, MSGPACK)
        elif path == LIMITS_PATH:
            limits = {"max_blob_bytes": relay.config.max_blob_bytes}
            await _respond(send, 200, json.dumps(limits).encode(), JSON)
        else:
            await _problem(send, 404, "http.not_found", "no such resource")

    async def _blob(
        self, scope: Scope, method: str, name: str, receive: Receive, send: Send
    ) -> None:
        blob = _unhex(name, BLOB_ID_HEX)
        wait = self.relay.ip_limit.take(peer_of(scope), self.relay.clock())
        if wait:
            await _problem(send, 429, errors.LIMIT_RATE, "too many requests", retry_after_ms(wait))
        elif blob is None:
            await _problem(send, 404, errors.BLOB_NOT_FOUND, "no such blob")
        elif method in ("GET", "HEAD"):
            data = await self.relay.get_blob(blob)
            if data is None:
                await _problem(send, 404, errors.BLOB_NOT_FOUND, "no such blob")
            else:
                await _respond(send, 200, data, b"application/octet-stream")
        elif method == "PUT":
            await self._put_blob(scope, blob, receive, send)
        else:
            await _problem(send, 405, errors.PROTO_UNEXPECTED, "method not allowed")

    async def _put_blob(self, scope: Scope, blob: bytes, receive: Receive, send: Send) -> None:
        """Everything that needs no body is checked first (token, grant, declared length),
        so an upload without a grant is refused before a byte of it is read; then at most
        the granted size is read."""
        token = _bearer(scope)
        if token is None:
            await _problem(send, 401, errors.AUTH_REQUIRED, "bearer upload token required")
            return
        limit = self.relay.config.max_blob_bytes
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _problem(send, 413, errors.BLOB_TOO_LARGE, f"blobs are at most {limit} bytes")
            return
        size = await self.relay.blob_grant(blob, token)
        if size is None or (declared is not None and declared < size):
            await _problem(send, 404, errors.BLOB_NOT_FOUND, "no matching unused grant")
            return
        if declared is not None and declared > size:
            await _problem(send, 413, errors.BLOB_TOO_LARGE, f"the grant is for {size} bytes")
            return
        data = await _read_body(receive, size)
        if data is None:
            await _problem(send, 413, errors.BLOB_TOO_LARGE, f"the grant is for {size} bytes")
        elif await self.relay.put_blob(blob, token, data):
            await _respond(send, 201, b"", TEXT)
        else:
            await _problem(send, 404, errors.BLOB_NOT_FOUND, "no matching unused grant")


class _Body:
    """One HTTP exchange's ``receive`` and ``send``, so that a request whose body was not
    read to its end (a refused upload, a GET) never blocks the connection.

    hypercorn queues the body for the application in a small queue (``APP_QUEUE_SIZE``),
    and the application's last ``send`` of a response queues ``http.disconnect`` too: with
    the queue full of unread body, that ``send`` would wait forever. So when the response
    ends and the body has not, a task in ``nursery`` reads the rest (keeping nothing) until
    the body ends or the client goes, for at most ``CLOSE_DRAIN_SECONDS``."""

    __slots__ = ("_discarding", "_nursery", "_receive", "_send", "done", "started")

    def __init__(self, receive: Receive, send: Send, nursery: trio.Nursery) -> None:
        self._receive = receive
        self._send = send
        self._nursery = nursery
        self._discarding = False
        self.done = False
        self.started = False  # a response has begun: no other may start

    async def __call__(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.disconnect" or not message.get("more_body", False):
            self.done = True
        return message

    async def send(self, message: Message) -> None:
        ends = message["type"] == "http.response.body" and not message.get("more_body", False)
        if ends and not self.done and not self._discarding:
            self._discarding = True
            self._nursery.start_soon(self._discard)
        self.started = True
        await self._send(message)

    async def _discard(self) -> None:
        with trio.move_on_after(CLOSE_DRAIN_SECONDS):
            while not self.done:
                await self()


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The request body, or None as soon as it exceeds ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _respond(send: Send, status: int, body: bytes, content_type: bytes) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _problem(send: Send, status: int, code: str, message: str, retry_after: int = 0) -> None:
    body = {"code": code, "message": message}
    if retry_after:
        body["retry_after"] = str(retry_after)
    await _respond(send, status, json.dumps(body).encode(), JSON)


def _content_length(scope: Scope) -> int | None:
    """The declared ``Content-Length``, or None when absent or unreadable (the server
    rejects a malformed one itself)."""
    for name, value in scope.get("headers", []):
        if name.lower() == b"content-length":
            text = value.decode("latin-1").strip()
            # ASCII digits only: str.isdigit() is also true of "²" (latin-1 0xB2)
            return int(text) if text.isascii() and text.isdigit() else None
    return None


def _bearer(scope: Scope) -> bytes | None:
    for name, value in scope.get("headers", []):
        if name.lower() == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer":
                return _unhex(token.strip(), BLOB_TOKEN_HEX)
    return None


def _unhex(text: str, length: int) -> bytes | None:
    """The bytes of exactly ``length`` hex digits, else None (``bytes.fromhex`` on its own
    would skip whitespace between digits and give fewer bytes)."""
    if len(text) != length or not (text.isascii() and text.isalnum()):
        return None
    try:
        return bytes.fromhex(text)
    except ValueError:
        return None
