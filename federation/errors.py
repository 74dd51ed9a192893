"""Federation errors, each with a stable ``code`` that is safe to send to a peer::

    FederationError                 base
    ├── KeyDocumentError            fed.key_document: a key document does not verify
    │   └── PinMismatch             fed.pin_mismatch: it breaks the configured pin
    ├── RequestAuthError            fed.auth: a request signature, time or nonce is refused
    ├── PolicyRefused               fed.policy: the peer domain is denied or unknown, or a
    │                               request breaks its suite, rate or size limits
    ├── RoutingError                fed.routing: a routing layer does not open
    └── PeerUnavailable             fed.unavailable: no endpoint of a domain answered

The text of a crypto failure carries no detail an attacker could use.
"""

from __future__ import annotations


class FederationError(Exception):
    code = "fed.error"

    def __init__(self, message: str = "") -> None:
        super().__init__(message or self.code)
        self.message = message or self.code


class KeyDocumentError(FederationError):
    code = "fed.key_document"


class PinMismatch(KeyDocumentError):
    code = "fed.pin_mismatch"


class RequestAuthError(FederationError):
    code = "fed.auth"


class PolicyRefused(FederationError):
    code = "fed.policy"


class RoutingError(FederationError):
    code = "fed.routing"


class PeerUnavailable(FederationError):
    code = "fed.unavailable"
