"""Signed HTTP requests to peer domains, trying each endpoint in turn (DESIGN section 6).

:class:`PeerClient` signs every request with the domain's current server key
(``federation.requestsig``) and sends it to the peer's endpoints in order; a connection
failure or a 5xx moves on to the next endpoint, anything else is the answer. When no
endpoint answers, :class:`~federation.errors.PeerUnavailable`. A key document is read
only up to its bound (``MAX_DOCUMENT``): a peer cannot make the node buffer more.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Final

import httpx

from federation.errors import KeyDocumentError, PeerUnavailable
from federation.requestsig import NONCE_LEN, sign_request
from node.keys import ServerKeys
from trust.limits import MAX_DOCUMENT

TIMEOUT: Final = httpx.Timeout(15.0, connect=5.0)
DOCUMENT_PATH: Final = "/.well-known/sealrelay/server"


class PeerClient:
    def __init__(
        self,
        domain: str,
        keys: Callable[[], ServerKeys],
        clock: Callable[[], float],
        *,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.domain = domain
        self._keys = keys
        self._clock = clock
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=32)
        self.http = http or httpx.AsyncClient(timeout=TIMEOUT, limits=limits)

    async def aclose(self) -> None:
        await self.http.aclose()

    async def request(
        self,
        method: str,
        destination: str,
        urls: tuple[str, ...],
        path: str,
        body: bytes = b"",
        *,
        signed: bool = True,
    ) -> httpx.Response:
        """The first answer other than a connection failure or a 5xx."""
        failures: list[str] = []
        for url in urls:
            headers = {"content-type": "application/x-msgpack"}
            if signed:
                headers.update(self._sign(method, destination, path, body))
            try:
                response = await self.http.request(
                    method, url.rstrip("/") + path, content=body, headers=headers
                )
            except httpx.HTTPError as exc:
                failures.append(f"{url}: {type(exc).__name__}")
                continue
            if response.status_code >= 500:
                failures.append(f"{url}: HTTP {response.status_code}")
                continue
            return response
        raise PeerUnavailable(f"{destination} did not answer ({'; '.join(failures) or 'no url'})")

    def _sign(self, method: str, destination: str, path: str, body: bytes) -> dict[str, str]:
        keys = self._keys()
        return sign_request(
            keys.suite,
            keys.sig_key,
            keys.sig_key_id,
            method,
            path,
            self.domain,
            destination,
            body,
            int(self._clock() * 1000),
            secrets.token_bytes(NONCE_LEN),
        )

    async def fetch_document(self, destination: str, urls: tuple[str, ...]) -> bytes:
        """A peer's key document as served (the keyring verifies it), read only up to
        ``MAX_DOCUMENT`` bytes: a larger answer is refused as no key document
        (:class:`KeyDocumentError`) without being read into memory."""
        failures: list[str] = []
        for url in urls:
            try:
                async with self.http.stream("GET", url.rstrip("/") + DOCUMENT_PATH) as response:
                    if response.status_code >= 500:
                        failures.append(f"{url}: HTTP {response.status_code}")
                        continue
                    if response.status_code != 200:
                        raise PeerUnavailable(
                            f"{destination} has no key document (HTTP {response.status_code})"
                        )
                    return await _read_document(response, destination)
            except httpx.HTTPError as exc:
                failures.append(f"{url}: {type(exc).__name__}")
        raise PeerUnavailable(f"{destination} did not answer ({'; '.join(failures) or 'no url'})")


async def _read_document(response: httpx.Response, destination: str) -> bytes:
    too_large = KeyDocumentError(f"{destination} serves a key document over {MAX_DOCUMENT} bytes")
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_DOCUMENT:
        raise too_large
    data = bytearray()
    async for chunk in response.aiter_bytes():
        data += chunk
        if len(data) > MAX_DOCUMENT:
            raise too_large
    return bytes(data)
