"""Errors of the relay node, each with a stable code that reaches clients in ``Error`` frames.

    NodeError                  a refused request: ``code``, a clear ``message`` and, for rate
                               limits, ``retry_after`` (milliseconds)
    CommandError               a node command (``sealrelay node|admin|keys|dev ...``) failed
     |                         for a reason its user can fix: ``code``, ``message``, and the
     |                         ``exit_status`` (1); ``sealrelay.cli`` prints it as one line,
     |                         ``sealrelay: CODE: MESSAGE``
     +-- ConfigError           invalid configuration or arguments (exit status 2)

Codes (stable; clients and tests match on them; the remote party broke the rule unless
``internal``):

    proto.malformed     the frame could not be decoded (text frame, bad msgpack, bad schema)
    proto.unexpected    a frame the protocol does not allow now (not a request, or a request
                        that needs authentication before Register/Auth, or a second one after)
    proto.too_large     the frame is larger than ``max_frame_bytes``
    auth.required       the request needs an authenticated connection
    auth.failed         the signature, identity or device does not check out
    auth.bad_code       the enrollment code is unknown, spent, expired or for another name
    auth.replayed       this connection's challenge was already used
    auth.timeout        no Register/Auth within ``auth_timeout`` seconds (then closed, 1008)
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
    store.full          the node's storage is full (disk, or Redis' maxmemory): nothing
                        of the request was stored; retry after ``retry_after``
    store.unavailable   the node's storage does not answer (Redis unreachable): retry after
                        ``retry_after``; the node recovers by itself when it is back
    internal            the node failed; the request may be retried

Codes of the node's commands (stable; on stderr, never sent to a client):

    config.invalid      a configuration value or argument breaks its rule (named)
    config.missing      a required value (domain, data_dir) is in no flag, file or variable
    config.file         the ``--config`` file cannot be read or is not valid TOML
    node.listen         the node cannot listen: the port is taken, or the address is not
                        this machine's
    node.data_dir       the data directory cannot be created, read or written
    admin.no_node       ``admin invite``: the directory holds no node's data
    admin.account_exists
                        ``admin invite``: the name already has an account
    keys.files          a ``keys`` command cannot create, read or write a key file or its
                        directory
    keys.fetch          ``keys show``: the key document could not be fetched
    keys.document       ``keys show``: what the node served is not a key document
    dev.node_failed     ``dev up``: a node did not start or exited (the message names its log)
"""

from __future__ import annotations

from typing import Final

PROTO_MALFORMED: Final = "proto.malformed"
PROTO_UNEXPECTED: Final = "proto.unexpected"
PROTO_TOO_LARGE: Final = "proto.too_large"
AUTH_REQUIRED: Final = "auth.required"
AUTH_FAILED: Final = "auth.failed"
AUTH_BAD_CODE: Final = "auth.bad_code"
AUTH_REPLAYED: Final = "auth.replayed"
AUTH_TIMEOUT: Final = "auth.timeout"
SEND_NO_MAILBOX: Final = "send.no_mailbox"
SEND_TOKEN_REQUIRED: Final = "send.token_required"  # noqa: S105 - an error code
SEND_BAD_TOKEN: Final = "send.bad_token"  # noqa: S105 - an error code
SEND_TOO_LARGE: Final = "send.too_large"
SEND_BAD_TTL: Final = "send.bad_ttl"
SEND_INTRODUCTIONS_CLOSED: Final = "send.introductions_closed"
LIMIT_RATE: Final = "limit.rate"
LIMIT_CONNECTIONS: Final = "limit.connections"
BLOB_TOO_LARGE: Final = "blob.too_large"
BLOB_NOT_FOUND: Final = "blob.not_found"
PREKEYS_NONE: Final = "prekeys.none"
PREKEYS_INVALID: Final = "prekeys.invalid"
FED_POLICY: Final = "fed.policy"
FED_UNAVAILABLE: Final = "fed.unavailable"
FED_KEY_DOCUMENT: Final = "fed.key_document"
FED_PIN_MISMATCH: Final = "fed.pin_mismatch"
FED_AUTH: Final = "fed.auth"
FED_ROUTING: Final = "fed.routing"
STORE_FULL: Final = "store.full"
STORE_UNAVAILABLE: Final = "store.unavailable"
INTERNAL: Final = "internal"

CONFIG_INVALID: Final = "config.invalid"
CONFIG_MISSING: Final = "config.missing"
CONFIG_FILE: Final = "config.file"
NODE_LISTEN: Final = "node.listen"
NODE_DATA_DIR: Final = "node.data_dir"
ADMIN_NO_NODE: Final = "admin.no_node"
ADMIN_ACCOUNT_EXISTS: Final = "admin.account_exists"
KEYS_FILES: Final = "keys.files"
KEYS_FETCH: Final = "keys.fetch"
KEYS_DOCUMENT: Final = "keys.document"
DEV_NODE_FAILED: Final = "dev.node_failed"

CODES: Final = (
    PROTO_MALFORMED,
    PROTO_UNEXPECTED,
    PROTO_TOO_LARGE,
    AUTH_REQUIRED,
    AUTH_FAILED,
    AUTH_BAD_CODE,
    AUTH_REPLAYED,
    AUTH_TIMEOUT,
    SEND_NO_MAILBOX,
    SEND_TOKEN_REQUIRED,
    SEND_BAD_TOKEN,
    SEND_TOO_LARGE,
    SEND_BAD_TTL,
    SEND_INTRODUCTIONS_CLOSED,
    LIMIT_RATE,
    LIMIT_CONNECTIONS,
    BLOB_TOO_LARGE,
    BLOB_NOT_FOUND,
    PREKEYS_NONE,
    PREKEYS_INVALID,
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


class NodeError(Exception):
    """A request refused with a stable ``code``; ``message`` is safe to show the client."""

    def __init__(self, code: str, message: str, retry_after: int = 0) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.retry_after = retry_after


class CommandError(Exception):
    """A node command failed for a reason its user can fix; ``message`` says which."""

    exit_status = 1

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def file_error(exc: OSError, code: str) -> CommandError:
    """``exc`` (a file or directory operation failed) as a :class:`CommandError`."""
    where = f"{exc.filename}: " if exc.filename is not None else ""
    return CommandError(f"{where}{exc.strerror or exc}", code)


class ConfigError(CommandError):
    """The configuration is invalid; the message names the key and the rule."""

    exit_status = 2

    def __init__(self, message: str, code: str = CONFIG_INVALID) -> None:
        super().__init__(message, code)
