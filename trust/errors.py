"""The node's error codes, and the errors of the rules in ``trust``.

Codes (stable; a node sends them in ``Error`` frames, clients and tests match on them;
the remote party broke the rule unless ``internal``). The node raises them
(``node.errors``), a client imports them from here instead of retyping them:

    proto.malformed     the frame could not be decoded (text frame, bad msgpack, bad schema)
    proto.unexpected    a frame the protocol does not allow now (not a request, or a request
                        that needs authentication before Register/Auth, or a second one after)
    proto.too_large     the frame is larger than ``max_frame_bytes``
    auth.required       the request needs an authenticated connection
    auth.failed         the signature, identity or device does not check out
    auth.bad_code       the enrollment code is unknown, spent, expired or for another name
    auth.replayed       this connection's challenge was already used
    auth.timeout        no Register/Auth within ``auth_timeout`` seconds (then closed, 1008)
    auth.anonymous      the request is not one an anonymous connection (``/v1/sealed``) may
                        make: it carries sealed sending and Ping only, and never logs in
    send.no_mailbox     no such mailbox on this node
    send.token_required a Send without a delivery token
    send.bad_token      the delivery token does not match the recipient's verifier
    send.too_large      the envelope body is larger than ``max_envelope_bytes``
    send.bad_ttl        a TTL above ``max_ttl`` (0 asks for ``default_ttl``)
    send.introductions_closed
                        an Introduce to an account that has not turned introductions on
                        (``SetIntroductions``)
    limit.rate          too many requests; ``retry_after`` says when to try again
    limit.connections   too many connections from this address
    limit.mailbox       (anonymous connections) too many sealed envelopes to this mailbox;
                        ``retry_after`` says when to try again
    limit.group_tokens  a ``SetGroupToken`` would leave the account more live group tokens
                        than ``trust.limits.MAX_GROUP_TOKENS`` (revoke old ones first)
    blob.too_large      the blob is larger than ``max_blob_bytes``, or than its grant
    blob.not_found      no such blob (or expired, or the grant does not match)
    prekeys.none        the address has no device with published prekeys
    prekeys.invalid     a published prekey is not a valid key of the node's suite (wrong
                        length, a point off the curve or of low order, a stripped half)
    fed.policy          the other domain is not a federation peer, or is denied
    fed.unavailable     no endpoint of the other domain answered; try again later
    fed.key_document    the other domain's key document does not verify
    fed.pin_mismatch    the other domain's key document breaks its pin (logged loudly)
    fed.auth            (server to server) a federation request's signature, time window
                        or nonce is refused
    fed.routing         (server to server) a routing layer does not open
    call.no_leg         no such call leg on this node (never allocated, or hung up)
    call.leg_taken      the call leg is bridged to another leg already (or to itself)
    call.bad_secret     the leg secret presented to bind a media connection is wrong
    call.expired        the call leg expired (not bound in time, or idle too long)
    call.unreachable    the media link to the leg's domain could not be set up or went
                        down (no QUIC endpoint listed, no answer, link refused), or that
                        node did not answer the bridge in time; try again later
    call.unavailable    this node serves no calls (no ``udp_listen``)
    store.full          the node's storage is full (disk, or Redis' maxmemory): nothing
                        of the request was stored; retry after ``retry_after``
    store.unavailable   the node's storage does not answer (Redis unreachable): retry after
                        ``retry_after``; the node recovers by itself when it is back
    internal            the node failed; the request may be retried

Sets of codes: :data:`TRANSIENT` (nothing was stored, the node or its store failed),
:data:`RETRYABLE` (send the same request again later), :data:`UNREADABLE` (the node could
not read the frame: a node that predates a request answers it so); and
:data:`LEG_END_REASONS`, why a call leg ended (``LegEnded.reason``), which are not refusals.

Errors of the rules in this package (the client and the servers translate them, once,
into their own hierarchies, ``client.errors`` and ``federation.errors``, with
:class:`RefusalAs`)::

    TrustError                  base; ``code`` is the node's code for the same refusal
                                (``trust.*`` for the refusals only a client makes)
    ├── DocumentRefused         fed.key_document: a key document does not verify, or a
    │   │                       refresh would roll it back or swap its keys
    │   ├── PinRefused          fed.pin_mismatch: it breaks a pin
    │   └── MediaRefused        trust.media_port / trust.media_pin: its QUIC endpoint
    │                           (``media``) has no valid port or pin; trust.media_none:
    │                           it lists no QUIC endpoint (``trust.media``)
    ├── RoutingRefused          fed.routing: a routing layer cannot be sealed or opened
    ├── LinkRefused             fed.auth: a node-to-node link's proof (``trust.peerlink``)
    │                           is malformed, stale, replayed, for another node or pin,
    │                           or not signed by a current key of its domain
    └── CertificateRefused      a sender certificate is expired, not for an address, or
        │                       not signed by a current key of its address's domain
        └── CertificateSuiteRefused
                                a sender certificate of another suite
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Final

__all__ = [  # the codes, which ``node.errors`` re-exports
    "AUTH_ANONYMOUS",
    "AUTH_BAD_CODE",
    "AUTH_FAILED",
    "AUTH_REPLAYED",
    "AUTH_REQUIRED",
    "AUTH_TIMEOUT",
    "BLOB_NOT_FOUND",
    "BLOB_TOO_LARGE",
    "CALL_BAD_SECRET",
    "CALL_EXPIRED",
    "CALL_HANG_UP",
    "CALL_LEG_TAKEN",
    "CALL_NO_LEG",
    "CALL_OWNER_GONE",
    "CALL_PEER_ENDED",
    "CALL_UNAVAILABLE",
    "CALL_UNREACHABLE",
    "CODES",
    "FED_AUTH",
    "FED_KEY_DOCUMENT",
    "FED_PIN_MISMATCH",
    "FED_POLICY",
    "FED_ROUTING",
    "FED_UNAVAILABLE",
    "INTERNAL",
    "LEG_END_REASONS",
    "LIMIT_CONNECTIONS",
    "LIMIT_GROUP_TOKENS",
    "LIMIT_MAILBOX",
    "LIMIT_RATE",
    "MEETING_FULL",
    "MEETING_NO_ROOM",
    "PREKEYS_INVALID",
    "PREKEYS_NONE",
    "PROTO_MALFORMED",
    "PROTO_TOO_LARGE",
    "PROTO_UNEXPECTED",
    "RETRYABLE",
    "SEND_BAD_TOKEN",
    "SEND_BAD_TTL",
    "SEND_INTRODUCTIONS_CLOSED",
    "SEND_NO_MAILBOX",
    "SEND_TOKEN_REQUIRED",
    "SEND_TOO_LARGE",
    "STORE_FULL",
    "STORE_UNAVAILABLE",
    "TRANSIENT",
    "UNREADABLE",
]

PROTO_MALFORMED: Final = "proto.malformed"
PROTO_UNEXPECTED: Final = "proto.unexpected"
PROTO_TOO_LARGE: Final = "proto.too_large"
AUTH_REQUIRED: Final = "auth.required"
AUTH_FAILED: Final = "auth.failed"
AUTH_BAD_CODE: Final = "auth.bad_code"
AUTH_REPLAYED: Final = "auth.replayed"
AUTH_TIMEOUT: Final = "auth.timeout"
AUTH_ANONYMOUS: Final = "auth.anonymous"
SEND_NO_MAILBOX: Final = "send.no_mailbox"
SEND_TOKEN_REQUIRED: Final = "send.token_required"  # noqa: S105 - an error code
SEND_BAD_TOKEN: Final = "send.bad_token"  # noqa: S105 - an error code
SEND_TOO_LARGE: Final = "send.too_large"
SEND_BAD_TTL: Final = "send.bad_ttl"
SEND_INTRODUCTIONS_CLOSED: Final = "send.introductions_closed"
LIMIT_RATE: Final = "limit.rate"
LIMIT_CONNECTIONS: Final = "limit.connections"
LIMIT_MAILBOX: Final = "limit.mailbox"
LIMIT_GROUP_TOKENS: Final = "limit.group_tokens"
BLOB_TOO_LARGE: Final = "blob.too_large"
BLOB_NOT_FOUND: Final = "blob.not_found"
PREKEYS_NONE: Final = "prekeys.none"
PREKEYS_INVALID: Final = "prekeys.invalid"
CALL_NO_LEG: Final = "call.no_leg"
CALL_LEG_TAKEN: Final = "call.leg_taken"
CALL_BAD_SECRET: Final = "call.bad_secret"  # noqa: S105 - an error code
CALL_EXPIRED: Final = "call.expired"
CALL_UNREACHABLE: Final = "call.unreachable"
CALL_UNAVAILABLE: Final = "call.unavailable"
CALL_HANG_UP: Final = "call.hang_up"
CALL_PEER_ENDED: Final = "call.peer_ended"
CALL_OWNER_GONE: Final = "call.owner_gone"
MEETING_FULL: Final = "meeting.full"
MEETING_NO_ROOM: Final = "meeting.no_room"
FED_POLICY: Final = "fed.policy"
FED_UNAVAILABLE: Final = "fed.unavailable"
FED_KEY_DOCUMENT: Final = "fed.key_document"
FED_PIN_MISMATCH: Final = "fed.pin_mismatch"
FED_AUTH: Final = "fed.auth"
FED_ROUTING: Final = "fed.routing"
STORE_FULL: Final = "store.full"
STORE_UNAVAILABLE: Final = "store.unavailable"
INTERNAL: Final = "internal"

CODES: Final = (
    PROTO_MALFORMED,
    PROTO_UNEXPECTED,
    PROTO_TOO_LARGE,
    AUTH_REQUIRED,
    AUTH_FAILED,
    AUTH_BAD_CODE,
    AUTH_REPLAYED,
    AUTH_TIMEOUT,
    AUTH_ANONYMOUS,
    SEND_NO_MAILBOX,
    SEND_TOKEN_REQUIRED,
    SEND_BAD_TOKEN,
    SEND_TOO_LARGE,
    SEND_BAD_TTL,
    SEND_INTRODUCTIONS_CLOSED,
    LIMIT_RATE,
    LIMIT_CONNECTIONS,
    LIMIT_MAILBOX,
    LIMIT_GROUP_TOKENS,
    BLOB_TOO_LARGE,
    BLOB_NOT_FOUND,
    PREKEYS_NONE,
    PREKEYS_INVALID,
    CALL_NO_LEG,
    CALL_LEG_TAKEN,
    CALL_BAD_SECRET,
    CALL_EXPIRED,
    CALL_UNREACHABLE,
    CALL_UNAVAILABLE,
    MEETING_FULL,
    MEETING_NO_ROOM,
    FED_POLICY,
    FED_UNAVAILABLE,
    FED_KEY_DOCUMENT,
    FED_PIN_MISMATCH,
    FED_AUTH,
    FED_ROUTING,
    STORE_FULL,
    STORE_UNAVAILABLE,
    INTERNAL,
)

TRANSIENT: Final = frozenset({STORE_FULL, STORE_UNAVAILABLE, INTERNAL})
"""The node or its store failed and nothing of the request was stored."""
RETRYABLE: Final = TRANSIENT | {LIMIT_RATE, LIMIT_CONNECTIONS, LIMIT_MAILBOX}
"""Codes after which the same request (an envelope) is sent again later."""
LEG_END_REASONS: Final = (CALL_HANG_UP, CALL_PEER_ENDED, CALL_EXPIRED, CALL_OWNER_GONE)
"""The ``reason`` of a ``LegEnded`` push (``wire.relay_calls``): its owner hung up, the leg
bridged to it ended, it expired (not bound in time, or idle), its owner went. Not refusals:
no ``Error`` frame carries them (``call.expired`` is also the refusal of an expired leg)."""
UNREADABLE: Final = frozenset({PROTO_MALFORMED, PROTO_UNEXPECTED})
"""``Error{id = 0}`` codes of a node that could not read a frame: one that predates a
request (``SendBatch``) answers it so."""


class TrustError(Exception):
    """A shared rule refused its input; ``message`` is safe to show or send."""

    code = "trust.error"

    def __init__(self, message: str = "") -> None:
        super().__init__(message or self.code)
        self.message = message or self.code


class DocumentRefused(TrustError):
    code = FED_KEY_DOCUMENT


class PinRefused(DocumentRefused):
    code = FED_PIN_MISMATCH


MEDIA_PORT: Final = "trust.media_port"
MEDIA_PIN: Final = "trust.media_pin"
MEDIA_NONE: Final = "trust.media_none"


class MediaRefused(DocumentRefused):
    """A key document's QUIC endpoint is malformed or absent; ``code`` says which
    (:data:`MEDIA_PORT`, :data:`MEDIA_PIN`, :data:`MEDIA_NONE`)."""

    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(message or code)
        self.code = code


class LinkRefused(TrustError):
    code = FED_AUTH


class RoutingRefused(TrustError):
    code = FED_ROUTING


class CertificateRefused(TrustError):
    code = "trust.certificate"


class CertificateSuiteRefused(CertificateRefused):
    code = "trust.certificate_suite"


class RefusalAs:
    """A context that raises a :class:`TrustError` as the caller's own error: the first
    entry of ``errors`` whose key the refusal is an instance of makes it, from its
    message. ``with RefusalAs({PinRefused: PinMismatch, TrustError: KeyDocumentError}):``
    """

    def __init__(self, errors: Mapping[type[TrustError], Callable[[str], Exception]]) -> None:
        self._errors = errors

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not isinstance(exc, TrustError):
            return
        for refusal, error in self._errors.items():
            if isinstance(exc, refusal):
                raise error(exc.message) from None
