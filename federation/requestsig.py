"""Signed federation requests (DESIGN section 6).

The origin signs the canonical encoding of :class:`wire.federation.RequestStatement`
(method, path, origin, destination, SHA-384 of the body, time in Unix ms, a random 16-byte
nonce, the signing key's id) with its server key under ``CTX_FEDERATION_REQUEST``, and
sends the statement's fields and the signature as headers. The receiver rebuilds the
statement from the request it actually got, checks the signature against the origin's
key document (``federation.keyring``), the time against a ±5-minute window, and the
nonce against a cache that remembers every nonce for the window's length, so a captured
request replays neither inside nor outside the window.

    headers = sign_request(suite, key, key_id, "PUT", path, origin, dest, body, now, nonce)
    claim = parse_request(method, path, headers, body, destination=own_domain)
    verify_signature(claim, verify_key_entry)        # then check_time, then the nonce
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from federation.errors import ClockSkew, RequestAuthError, describe_skew
from suites import Suite, SuiteError, get_suite_by_id, labels
from suites.sig import SigPrivateKey
from wire import WireError, encode
from wire.federation import RequestStatement
from wire.server import ServerVerifyKeyEntry

WINDOW_MS: Final = 5 * 60_000
NONCE_LEN: Final = 16
HEADER_ORIGIN: Final = "sealrelay-origin"
HEADER_DESTINATION: Final = "sealrelay-destination"
HEADER_TIME: Final = "sealrelay-time"
HEADER_NONCE: Final = "sealrelay-nonce"
HEADER_KEY: Final = "sealrelay-key"
HEADER_SIGNATURE: Final = "sealrelay-signature"


def body_digest(body: bytes) -> bytes:
    return hashlib.sha384(body).digest()


def sign_request(
    suite: Suite,
    key: SigPrivateKey,
    key_id: bytes,
    method: str,
    path: str,
    origin: str,
    destination: str,
    body: bytes,
    now_ms: int,
    nonce: bytes,
) -> dict[str, str]:
    """The headers that authenticate this request."""
    statement = _statement(method, path, origin, destination, body, now_ms, nonce, key_id)
    signature = suite.sig.sign(key, encode(statement), labels.CTX_FEDERATION_REQUEST)
    return {
        HEADER_ORIGIN: origin,
        HEADER_DESTINATION: destination,
        HEADER_TIME: str(now_ms),
        HEADER_NONCE: nonce.hex(),
        HEADER_KEY: key_id.hex(),
        HEADER_SIGNATURE: base64.urlsafe_b64encode(signature).decode("ascii"),
    }


@dataclass(frozen=True)
class SignedClaim:
    statement: RequestStatement
    signature: bytes


def parse_request(
    method: str, path: str, headers: Mapping[str, str], body: bytes, destination: str
) -> SignedClaim:
    """The statement this request claims, rebuilt from what arrived; RequestAuthError if
    a header is missing or malformed or the request is not for ``destination``."""
    try:
        origin = headers[HEADER_ORIGIN].lower()
        dest = headers[HEADER_DESTINATION].lower()
        time = _decimal(headers[HEADER_TIME])
        nonce = bytes.fromhex(headers[HEADER_NONCE])
        key_id = bytes.fromhex(headers[HEADER_KEY])
        signature = base64.urlsafe_b64decode(headers[HEADER_SIGNATURE])
    except (KeyError, ValueError, binascii.Error):
        raise RequestAuthError("missing or malformed federation signature headers") from None
    if dest != destination.lower():
        raise RequestAuthError(f"the request is for {dest!r}, not this domain")
    if len(nonce) != NONCE_LEN or not 0 < len(key_id) <= 64 or not 0 <= time < 2**63:
        raise RequestAuthError("malformed federation signature headers")
    try:
        statement = _statement(method, path, origin, dest, body, time, nonce, key_id)
    except WireError:  # a method, path or origin longer than a statement holds
        raise RequestAuthError("malformed federation request") from None
    return SignedClaim(statement, signature)


def _decimal(text: str) -> int:
    """An ASCII decimal (``int()`` alone also takes signs, blanks, ``_`` and other
    scripts' digits); ``ValueError`` if it is not one."""
    if not (text.isascii() and text.isdigit()):
        raise ValueError("not a decimal number")
    return int(text)


def _statement(
    method: str,
    path: str,
    origin: str,
    destination: str,
    body: bytes,
    time: int,
    nonce: bytes,
    key_id: bytes,
) -> RequestStatement:
    """What the signature covers; both sides build it here, from what they send or got."""
    return RequestStatement(
        method=method.upper(),
        path=path,
        origin=origin,
        destination=destination,
        body_digest=body_digest(body),
        time=time,
        nonce=nonce,
        key_id=key_id,
    )


def verify_signature(claim: SignedClaim, key: ServerVerifyKeyEntry) -> None:
    try:
        suite = get_suite_by_id(key.suite)
        suite.sig.verify(
            key.public, encode(claim.statement), claim.signature, labels.CTX_FEDERATION_REQUEST
        )
    except SuiteError:
        raise RequestAuthError("the federation request signature does not verify") from None


def check_time(claim: SignedClaim, now_ms: int, window_ms: int = WINDOW_MS) -> None:
    """:class:`ClockSkew` if the request's time is more than ``window_ms`` from ``now_ms``."""
    skew = claim.statement.time - now_ms
    if abs(skew) > window_ms:
        raise ClockSkew(
            skew,
            f"the federation request is outside the time window: its time is "
            f"{describe_skew(skew)} (the window is ±{window_ms // 1000} s)",
        )


class NonceCache:
    """Nonces seen per origin, each kept for twice the window (a pure, in-memory cache
    for one process; the Redis backend shares it between replicas)."""

    def __init__(self, window_ms: int = WINDOW_MS) -> None:
        self._window = window_ms
        self._seen: dict[tuple[str, bytes], int] = {}
        self._next_purge = 0

    def remember(self, origin: str, nonce: bytes, now_ms: int) -> bool:
        """True if ``nonce`` is new for ``origin`` (and now remembered), False on replay."""
        if now_ms >= self._next_purge:
            self._seen = {k: t for k, t in self._seen.items() if t > now_ms}
            self._next_purge = now_ms + self._window // 4
        key = (origin, nonce)
        if self._seen.get(key, 0) > now_ms:
            return False
        self._seen[key] = now_ms + 2 * self._window
        return True
