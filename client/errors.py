"""Errors of the end-to-end client core.

ClientError                   base; every error has a stable ``code``
├── DecryptionFailed          opaque: replay, reordering beyond the window, tampering,
│                             wrong key; carries no detail an attacker could use
├── InvalidBundle             a prekey bundle whose signatures or keys do not check out
├── SuiteMismatch             a key, bundle or message of another suite than the session's
├── CertificateError          a sender certificate that is expired, unsigned by its
│                             domain, for another domain, or for another identity
├── UntrustedIdentity         the peer's identity key changed and the user has not
│                             accepted it yet: sending is blocked
├── NoSession                 no session with that address/device
├── NoAccount                 the client state holds no device (not enrolled yet)
├── StoreError                the client state store cannot be opened or is corrupt
│   ├── WrongPassphrase       the passphrase does not open the store
│   └── PassphraseRequired    no passphrase: no $SEALRELAY_PASSPHRASE and no terminal
├── WeakPassphrase            a new store passphrase breaks a rule of client.passphrase
├── PassphraseMismatch        the two entries of a new passphrase differ
├── BadContent                a decrypted message whose content does not decode
├── AttachmentError           an attachment whose digest, chunks or padding do not check out
│   └── AttachmentTooLarge    a file larger than the node takes (``blob.too_large``, the
│                             node's own code), refused before it is read
├── ServerKeyError            a server key document that does not verify or is not pinned
│                             (a refusal of ``trust.documents``: ``AS_SERVER_KEY_ERROR``)
├── UntrustedDomain           another domain's keys that no anchor of the client vouches
│                             for (its home agency's pinned root and peer-roots statement)
├── NetworkError              the node cannot be reached or the connection broke
├── Refused                   the node refused a request: ``node_code`` names its rule
│   └── UnknownAccount        ``prekeys.none``: the address has no account, or no device
├── SelfAddressed             a message to the sender's own address (not supported)
└── BadInput                  the user's input is malformed (the CLI exits 2, a usage error)
    ├── BadAddress            an address that is not NAME@DOMAIN
    └── BadNodeUrl            a node URL that is not http:// or https://HOST[:PORT]
"""

from __future__ import annotations

from typing import Final

from trust.errors import BLOB_TOO_LARGE, PREKEYS_NONE, RefusalAs, TrustError


class ClientError(Exception):
    code = "client.error"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.code)


class DecryptionFailed(ClientError):
    code = "client.decryption_failed"

    def __init__(self, message: str | None = None) -> None:
        super().__init__("decryption failed")


class InvalidBundle(ClientError):
    code = "client.invalid_bundle"


class SuiteMismatch(ClientError):
    code = "client.suite_mismatch"


class CertificateError(ClientError):
    code = "client.bad_certificate"


class UntrustedIdentity(ClientError):
    code = "client.untrusted_identity"

    def __init__(self, address: str) -> None:
        super().__init__(f"the identity key of {address} changed; verify and accept it first")
        self.address = address


class NoSession(ClientError):
    code = "client.no_session"


class NoAccount(ClientError):
    code = "client.no_account"


class StoreError(ClientError):
    code = "client.store_error"


class WrongPassphrase(StoreError):
    code = "client.wrong_passphrase"


class PassphraseRequired(StoreError):
    code = "client.passphrase"


class WeakPassphrase(ClientError):
    code = "client.weak_passphrase"


class PassphraseMismatch(ClientError):
    code = "client.passphrase_mismatch"


class BadContent(ClientError):
    code = "client.bad_content"


class AttachmentError(ClientError):
    code = "client.bad_attachment"


class AttachmentTooLarge(AttachmentError):
    code = BLOB_TOO_LARGE


class ServerKeyError(ClientError):
    code = "client.bad_server_key"


class UntrustedDomain(ClientError):
    """Another domain whose key document the client cannot tie to its home agency's
    pinned root: a message to or from it is refused, never shown as from that domain."""

    code = "client.untrusted_domain"


class NetworkError(ClientError):
    code = "client.network"


class Refused(ClientError):
    """An ``Error`` frame: ``node_code`` is the node's stable code, ``retry_after`` in ms."""

    code = "client.refused"

    def __init__(self, node_code: str, message: str, retry_after: int = 0) -> None:
        super().__init__(f"{node_code}: {message}")
        self.node_code = node_code
        self.retry_after = retry_after


class UnknownAccount(Refused):
    """The node has no device with prekeys for the address (``prekeys.none``)."""

    code = "client.unknown_account"

    def __init__(self, address: str) -> None:
        super().__init__(PREKEYS_NONE, f"{address} does not exist or has no registered device")
        self.args = (f"{address} does not exist or has no registered device",)


class SelfAddressed(ClientError):
    code = "client.self_send"


class BadInput(ClientError):
    code = "client.bad_input"


class BadAddress(BadInput):
    code = "client.bad_address"


class BadNodeUrl(BadInput):
    code = "client.bad_node_url"


AS_SERVER_KEY_ERROR: Final = RefusalAs({TrustError: ServerKeyError})
"""A refusal by a rule of ``trust`` (a key document, a routing key) as the client's
:class:`ServerKeyError`: ``with AS_SERVER_KEY_ERROR: ...``."""
