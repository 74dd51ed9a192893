"""Federation errors, each with a stable ``code`` that is safe to send to a peer::

    FederationError                 base
    ├── KeyDocumentError            fed.key_document: a key document does not verify
    │   └── PinMismatch             fed.pin_mismatch: it breaks the configured pin
    ├── RequestAuthError            fed.auth: a request signature, time or nonce is refused
    │   └── ClockSkew               fed.auth: its time is outside the window (``skew_ms``)
    ├── PolicyRefused               fed.policy: the peer domain is denied or unknown, or a
    │                               request breaks its suite, rate or size limits
    ├── RoutingError                fed.routing: a routing layer does not open
    └── PeerUnavailable             fed.unavailable: no endpoint of a domain answered

The text of a crypto failure carries no detail an attacker could use.
"""

from __future__ import annotations

from trust.errors import (
    FED_AUTH,
    FED_KEY_DOCUMENT,
    FED_PIN_MISMATCH,
    FED_POLICY,
    FED_ROUTING,
    FED_UNAVAILABLE,
)


class FederationError(Exception):
    code = "fed.error"

    def __init__(self, message: str = "") -> None:
        super().__init__(message or self.code)
        self.message = message or self.code


class KeyDocumentError(FederationError):
    code = FED_KEY_DOCUMENT


class PinMismatch(KeyDocumentError):
    code = FED_PIN_MISMATCH


class RequestAuthError(FederationError):
    code = FED_AUTH


class ClockSkew(RequestAuthError):
    """A request's time is outside the window: ``skew_ms`` is its time minus the
    receiver's clock (positive: the sender's clock is ahead). Same wire code as any
    refused request (``fed.auth``); the answer also carries ``skew_ms``, so the sender can
    say why it is refused."""

    def __init__(self, skew_ms: int, message: str = "") -> None:
        self.skew_ms = skew_ms
        super().__init__(message or f"the request time is {describe_skew(skew_ms)}")


def describe_skew(skew_ms: int) -> str:
    """``skew_ms`` in words: "361.2 s ahead of the receiver's clock" (or behind)."""
    side = "ahead of" if skew_ms > 0 else "behind"
    return f"{abs(skew_ms) / 1000:.1f} s {side} the receiver's clock"


class PolicyRefused(FederationError):
    code = FED_POLICY


class RoutingError(FederationError):
    code = FED_ROUTING


class PeerUnavailable(FederationError):
    code = FED_UNAVAILABLE
