"""The node's plain HTTP endpoints a client uses: the key document and blobs.

    GET  /.well-known/sealrelay/server     the domain's encoded ServerKeyDocument
    PUT  /v1/blobs/{blob hex}              an encrypted attachment, with
                                           ``Authorization: Bearer <upload token hex>``
    GET  /v1/blobs/{blob hex}              the stored bytes
    GET  /v1/remote-blobs/{domain}/{hex}   a blob of another domain, fetched by the node
    GET  /v1/limits                        JSON: the node's limits, ``{"max_blob_bytes": N}``
                                           (a node without it answers 404: no limit known)

httpx runs under trio (through anyio). Its errors are translated here, once:
connection failures become :class:`~client.errors.NetworkError`, refusals
:class:`~client.errors.Refused` with a ``http.<status>`` code. A response body larger
than the caller's bound is refused before it is read in full. Blobs go both ways as
streams: an upload is an async iterator of pieces with its length declared up front, a
download is handed to the caller's sink piece by piece.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, Awaitable, Callable
from typing import Final
from urllib.parse import urlsplit

import httpx

from client.errors import BadNodeUrl, NetworkError, Refused
from trust.limits import MAX_DOCUMENT

DOCUMENT_PATH: Final = "/.well-known/sealrelay/server"
BLOB_PATH: Final = "/v1/blobs/"
REMOTE_BLOB_PATH: Final = "/v1/remote-blobs/"
TIMEOUT: Final = httpx.Timeout(30.0, connect=10.0)
LIMITS_PATH: Final = "/v1/limits"
MAX_LIMITS: Final = 4096
MAX_BLOB_BYTES_KEY: Final = "max_blob_bytes"

Sink = Callable[[bytes], Awaitable[None]]


NODE_SCHEMES: Final = ("http", "https")


def check_node_url(node_url: str) -> str:
    """``node_url`` if it is ``http://HOST[:PORT]`` or ``https://...``; else
    :class:`BadNodeUrl` (a URL without a scheme is the common mistake)."""
    try:
        parts = urlsplit(node_url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in NODE_SCHEMES or not parts.hostname:
        raise BadNodeUrl(f"not a node URL: {node_url!r}: use http://HOST:PORT or https://HOST")
    return node_url


def _url(node_url: str, path: str) -> str:
    return check_node_url(node_url).rstrip("/") + path


async def fetch_document(node_url: str) -> bytes:
    """The node's server key document, as served (to be verified by the caller)."""
    return await _get(_url(node_url, DOCUMENT_PATH), MAX_DOCUMENT)


async def fetch_max_blob(node_url: str) -> int | None:
    """The largest blob the node accepts, as it announces it; None when it does not say
    (an older node) or says something unreadable."""
    try:
        body = await _get(_url(node_url, LIMITS_PATH), MAX_LIMITS)
    except Refused:
        return None
    try:
        value = json.loads(body).get(MAX_BLOB_BYTES_KEY)
    except (ValueError, AttributeError):
        return None
    return value if type(value) is int and value > 0 else None


async def download_blob(
    node_url: str, blob: bytes, max_size: int, domain: str | None, sink: Sink
) -> None:
    """Stream blob ``blob`` (on the node of ``domain`` when given: fetched through the
    home node) into ``sink``; :class:`Refused` if absent or above ``max_size``."""
    path = BLOB_PATH + blob.hex() if domain is None else f"{REMOTE_BLOB_PATH}{domain}/{blob.hex()}"
    await _stream(_url(node_url, path), max_size, sink)


async def upload_blob(
    node_url: str, blob: bytes, upload_token: bytes, data: AsyncIterable[bytes], size: int
) -> None:
    """PUT the ``size`` bytes that ``data`` yields (read as they are sent)."""
    headers = {"Authorization": f"Bearer {upload_token.hex()}", "Content-Length": str(size)}
    url = _url(node_url, BLOB_PATH + blob.hex())
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT) as http:
            response = await http.put(url, content=data, headers=headers)
    except httpx.HTTPError as exc:
        raise NetworkError(f"blob upload failed: {type(exc).__name__}") from None
    _check(response)


async def _get(url: str, max_size: int) -> bytes:
    body = bytearray()

    async def collect(part: bytes) -> None:
        body.extend(part)

    await _stream(url, max_size, collect)
    return bytes(body)


async def _stream(url: str, max_size: int, sink: Sink) -> None:
    try:
        async with (
            httpx.AsyncClient(timeout=TIMEOUT) as http,
            http.stream("GET", url) as response,
        ):
            _check(response)
            seen = 0
            async for part in response.aiter_bytes():
                seen += len(part)
                if seen > max_size:
                    raise Refused("http.too_large", f"response above {max_size} bytes")
                await sink(part)
    except httpx.HTTPError as exc:
        raise NetworkError(f"request to the node failed: {type(exc).__name__}") from None


def _check(response: httpx.Response) -> None:
    if not 200 <= response.status_code < 300:
        raise Refused(f"http.{response.status_code}", response.reason_phrase or "refused")
