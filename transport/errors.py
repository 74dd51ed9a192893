"""Errors of the media transports.

    TransportError              every error of this package; has a stable ``code``
    ├── PeerKeyMismatch         the peer's certificate key is not the pinned one (remote)
    ├── HandshakeFailed         the QUIC/TLS handshake failed or timed out (remote or path)
    ├── TransportClosed         the connection is closed (either side, or idle timeout)
    └── MessageTooLarge         a datagram or control message over its bound (local caller)

The codes are stable; callers, logs and metrics match on them:

    transport.peer_key_mismatch   refused: certificate key differs from the pin
    transport.handshake_failed    the peer closed or broke the handshake
    transport.handshake_timeout   no completed handshake within the configured time
    transport.closed              send or receive on a closed transport
    transport.too_large           payload over ``MAX_DATAGRAM_PAYLOAD`` / ``MAX_CONTROL_MESSAGE``

Library exceptions (qh3, OSError) are translated once, in the trio shell; nothing else of
this package raises them.
"""

from __future__ import annotations

from typing import Final

PEER_KEY_MISMATCH: Final = "transport.peer_key_mismatch"
HANDSHAKE_FAILED: Final = "transport.handshake_failed"
HANDSHAKE_TIMEOUT: Final = "transport.handshake_timeout"
CLOSED: Final = "transport.closed"
TOO_LARGE: Final = "transport.too_large"

CODES: Final = frozenset(
    {PEER_KEY_MISMATCH, HANDSHAKE_FAILED, HANDSHAKE_TIMEOUT, CLOSED, TOO_LARGE}
)


class TransportError(Exception):
    """Base class; ``code`` is one of the stable codes above and safe to report."""

    code: str = "transport.error"

    def __init__(self, message: str | None = None, *, code: str | None = None) -> None:
        if code is not None:
            self.code = code
        super().__init__(f"{self.code}: {message}" if message else self.code)


class PeerKeyMismatch(TransportError):
    """The peer proved a certificate key other than the pinned one (no detail on which)."""

    code = PEER_KEY_MISMATCH


class HandshakeFailed(TransportError):
    """The handshake did not complete: ``code`` is ``HANDSHAKE_FAILED`` or ``HANDSHAKE_TIMEOUT``."""

    code = HANDSHAKE_FAILED


class TransportClosed(TransportError):
    code = CLOSED


class MessageTooLarge(TransportError):
    code = TOO_LARGE
