"""The client protocol: frames on the WebSocket at ``/v1/client`` (DESIGN section 5).

Every WebSocket message is one binary frame holding one encoded message of this module.

Connection flow::

    node   -> client   Hello(nonce)                 a fresh 32-byte challenge per connection
    client -> node     Register(...) | Auth(...)    each signs AuthPayload(nonce, ...)
    node   -> client   Registered | Authenticated   or Error; the nonce is now spent
    client -> node     requests, each with an ``id`` chosen by the client
    node   -> client   the response with the same ``id`` (or Error with that id),
                       and at any time Deliver pushes, then Drained once the backlog is sent

A request the node cannot parse gets ``Error(id=0, code=...)`` and the connection lives on.
Error codes are stable strings listed in ``node.errors`` (``proto.*``, ``auth.*``,
``send.*``, ``limit.*``...).

Sending: ``Send`` carries a sealed envelope to a mailbox and must present the recipient
account's delivery token (the node keeps only a hash of it). ``Introduce`` is the first
contact, when the sender does not know the token yet: the node knows who sent it, and
rate-limits it more tightly (per sender and per recipient); it is refused unless the
recipient turned introductions on with ``SetIntroductions``. ``eid`` (16 random bytes
chosen by the sender) makes a retry idempotent.

Receiving: the node pushes ``Deliver`` frames in mailbox order; only an ``Ack`` deletes.
After a (re)connection it pushes everything not yet acknowledged, then ``Drained``.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Annotated, Final

from wire.codec import array_header, encode, encode_split
from wire.e2e import (
    Address,
    DeliveryToken,
    IdentityKey,
    PrekeyBundle,
    PrekeyUpload,
    SenderCertificate,
    Sig,
    Suite,
)
from wire.limits import MAX_DOCUMENT, MAX_LAYER_BYTES, MAX_PAYLOAD
from wire.schema import message
from wire.types import U8, U16, U32, U64, Bytes16, Bytes32, MaxLen, MinLen

MAX_DELIVER: Final = 256
"""Most envelopes in one Deliver."""

PROTOCOL_VERSION = 1

RequestId = U32
Domain = Annotated[str, MaxLen(253)]
Name = Annotated[str, MaxLen(64)]
Code = Annotated[str, MaxLen(128)]
Body = Annotated[bytes, MaxLen(MAX_PAYLOAD)]
EnvelopeId = Bytes16
MailboxId = Bytes16

PURPOSE_AUTH = 1
PURPOSE_REGISTER = 2

MAX_BATCH = 256
"""Most Sends in one ``SendBatch``."""


# --- handshake -------------------------------------------------------------------------------


@message("relay.hello")
class Hello:
    """The node's first frame: protocol version, its domain and suite, and a challenge."""

    v: U16
    server: Domain
    suite: Suite
    nonce: Bytes32
    time: U64


@message("relay.auth-payload")
class AuthPayload:
    """What a device signs (context ``CTX_DEVICE_AUTH``) to register or authenticate.

    ``purpose`` is ``PURPOSE_AUTH`` or ``PURPOSE_REGISTER``; on registration ``device`` is 0
    (the node assigns it).
    """

    purpose: U8
    server: Domain
    nonce: Bytes32
    address: Address
    device: U32


@message("relay.register")
class Register:
    """Enroll a new account with a one-time code; ``sig`` signs an AuthPayload."""

    id: RequestId
    code: Code
    name: Name
    identity: IdentityKey
    sig: Sig


@message("relay.registered")
class Registered:
    id: RequestId
    address: Address
    device: U32
    mailbox: MailboxId


@message("relay.auth")
class Auth:
    id: RequestId
    address: Address
    device: U32
    sig: Sig


@message("relay.authenticated")
class Authenticated:
    id: RequestId
    mailbox: MailboxId
    pending: U32


# --- keys and certificates -------------------------------------------------------------------


@message("relay.publish-prekeys")
class PublishPrekeys:
    """Publish (or replace) this device's prekeys. One-time keys already on the node and
    not in ``upload`` stay; keys with an id the node already holds are ignored. Answered
    with ``PrekeyStatus``."""

    id: RequestId
    upload: PrekeyUpload


@message("relay.set-token")
class SetDeliveryToken:
    """Set the account's delivery-token verifier: ``SHA-256(DELIVERY_TOKEN_HASH_INFO ||
    token)``. The node never learns the token until a sender presents it. Answered with
    ``Ok``."""

    id: RequestId
    verifier: Bytes32


@message("relay.set-introductions")
class SetIntroductions:
    """Accept (``accept`` true) or refuse ``Introduce`` frames to this account: first
    contact from senders without the delivery token. Off until the account turns it on;
    the node still rate-limits introductions per sender and per recipient. Answered with
    ``Ok``."""

    id: RequestId
    accept: bool


@message("relay.prekey-status-req")
class GetPrekeyStatus:
    id: RequestId


@message("relay.prekey-status")
class PrekeyStatus:
    """How many one-time keys the node still holds for this device."""

    id: RequestId
    one_time: U32
    kem_one_time: U32


@message("relay.fetch-prekeys")
class FetchPrekeys:
    """A bundle for every device of ``address`` (one one-time key of each is consumed)."""

    id: RequestId
    address: Address


@message("relay.device-bundle")
class DeviceBundle:
    device: U32
    mailbox: MailboxId
    bundle: PrekeyBundle


@message("relay.bundles")
class PrekeyBundles:
    id: RequestId
    devices: Annotated[tuple[DeviceBundle, ...], MaxLen(32)]


@message("relay.get-certificate")
class GetCertificate:
    id: RequestId


@message("relay.certificate")
class CertificateIssued:
    id: RequestId
    certificate: SenderCertificate


# --- envelopes -------------------------------------------------------------------------------


@message("relay.send")
class Send:
    """Store a sealed envelope in ``mailbox`` for ``ttl`` seconds."""

    id: RequestId
    mailbox: MailboxId
    eid: EnvelopeId
    token: DeliveryToken | None
    ttl: U32
    body: Body


@message("relay.introduce")
class Introduce:
    """First contact without a delivery token; the node records the sender's address."""

    id: RequestId
    mailbox: MailboxId
    eid: EnvelopeId
    ttl: U32
    body: Body


MAX_SHARED_RECIPIENTS = 256


@message("relay.shared-recipient")
class SharedRecipient:
    mailbox: MailboxId
    token: DeliveryToken | None


@message("relay.send-shared")
class SendShared:
    """One body for several mailboxes of this node (a group message's upload for the home
    domain): the node stores ``body`` once and a small record per recipient. Each
    recipient needs its delivery token (``None``: an introduction, as ``Introduce``)."""

    id: RequestId
    eid: EnvelopeId
    ttl: U32
    recipients: Annotated[tuple[SharedRecipient, ...], MaxLen(MAX_SHARED_RECIPIENTS)]
    body: Body


@message("relay.sent-shared")
class SentShared:
    """Per recipient, in order: ``""`` stored, ``"duplicate"``, or the error code that
    refused it (``send.bad_token``, ``send.no_mailbox``...)."""

    id: RequestId
    eid: EnvelopeId
    results: Annotated[tuple[Annotated[str, MaxLen(64)], ...], MaxLen(MAX_SHARED_RECIPIENTS)]


@message("relay.forward")
class Forward:
    """A sealed envelope for another domain: ``layer`` is an encoded
    ``wire.federation.SealedRoutingLayer`` that only ``domain`` can open. The node queues
    it durably for that domain and answers ``Sent`` (idempotent by ``eid``)."""

    id: RequestId
    domain: Domain
    eid: EnvelopeId
    ttl: U32
    layer: Annotated[bytes, MaxLen(MAX_LAYER_BYTES)]


@message("relay.get-server-keys")
class GetServerKeys:
    """Ask the home node for ``domain``'s key document (its own, or a federated peer's
    as the node's keyring verified it). The client verifies it again itself."""

    id: RequestId
    domain: Domain


@message("relay.server-keys")
class ServerKeys:
    id: RequestId
    domain: Domain
    document: Annotated[bytes, MaxLen(MAX_DOCUMENT)]


@message("relay.get-peer-roots")
class GetPeerRoots:
    """Ask the home node for its agency root's peer-roots statement (an encoded
    ``wire.server.PeerRootsStatement``): which roots may certify which peer domains' keys.
    The client checks it against the root it pinned at enrollment. Added after protocol
    1 (nodes of earlier releases answer ``Error`` with id 0)."""

    id: RequestId


@message("relay.peer-roots")
class PeerRoots:
    """The statement as the node holds it, or ``None`` when its operator made none."""

    id: RequestId
    statement: Annotated[bytes, MaxLen(MAX_DOCUMENT)] | None


@message("relay.sent")
class Sent:
    """The envelope is durably stored (or was already): the sender may forget it."""

    id: RequestId
    eid: EnvelopeId
    duplicate: bool


@message("relay.send-batch")
class SendBatch:
    """Several ``Send`` requests in one frame, each keeping its own ``id``: a client sends
    what its outbox holds at once. Answered by one ``SentBatch`` with, in the same order,
    each Send's ``Sent`` or ``Error``; one refused Send does not refuse the others. The
    batch as a whole gets an ``Error`` with its own ``id`` only if it cannot be taken at all
    (rate limit, not authenticated). Every Send counts against the rate limits.
    Added in protocol 1 (nodes of earlier releases answer ``Error`` with id 0)."""

    id: RequestId
    sends: Annotated[tuple[Send, ...], MinLen(1), MaxLen(MAX_BATCH)]


@message("relay.sent-batch")
class SentBatch:
    """The answer to a ``SendBatch``: one result per Send, in order."""

    id: RequestId
    results: Annotated[tuple[Sent | Error, ...], MaxLen(MAX_BATCH)]


@message("relay.envelope")
class Envelope:
    """A stored envelope as delivered. ``origin`` is the sender's domain; ``sender`` is set
    only for an introduction. ``ts`` and ``expires`` are Unix milliseconds."""

    eid: EnvelopeId
    ts: U64
    expires: U64
    origin: Domain
    sender: Address | None
    body: Body


@message("relay.deliver")
class Deliver:
    """Server push: envelopes in mailbox order."""

    envelopes: Annotated[tuple[Envelope, ...], MaxLen(MAX_DELIVER)]


def deliver_parts(envelopes: Sequence[Envelope]) -> list[bytes]:
    """``encode(Deliver(envelopes))`` in pieces (their concatenation is exactly that
    encoding): every body is a piece of its own, the envelope's own object, so a group
    body pushed to many connections is never copied on its way to their sockets."""
    if len(envelopes) > MAX_DELIVER:
        raise ValueError(f"a Deliver holds at most {MAX_DELIVER} envelopes")
    parts = [_deliver_head() + array_header(len(envelopes))]
    for envelope in envelopes:
        parts += encode_split(envelope)
    return parts


@cache
def _deliver_head() -> bytes:
    """``encode(Deliver(()))`` without its (empty) envelope array header, the last byte."""
    return encode(Deliver(()))[:-1]


@message("relay.drained")
class Drained:
    """Server push: everything stored when the connection authenticated has been pushed."""

    pending: U32


@message("relay.ack")
class Ack:
    """Delete these envelopes from the mailbox. With ``id`` 0 the node sends no ``Acked``
    (fire and forget: acks are idempotent)."""

    id: RequestId
    eids: Annotated[tuple[EnvelopeId, ...], MaxLen(1024)]


@message("relay.acked")
class Acked:
    id: RequestId
    deleted: U32


# --- blobs -----------------------------------------------------------------------------------


@message("relay.blob-upload")
class RequestBlobUpload:
    """Ask to upload ``size`` bytes kept for ``ttl`` seconds; the grant names the blob and
    a one-time bearer token for ``PUT /v1/blobs/{blob hex}``."""

    id: RequestId
    size: U64
    ttl: U32


@message("relay.blob-grant")
class BlobGrant:
    id: RequestId
    blob: Bytes16
    upload_token: Bytes32
    expires: U64


# --- misc ------------------------------------------------------------------------------------


@message("relay.ping")
class Ping:
    id: RequestId


@message("relay.pong")
class Pong:
    id: RequestId
    time: U64


@message("relay.ok")
class Ok:
    """A request done with nothing else to answer (``SetDeliveryToken``,
    ``SetIntroductions``)."""

    id: RequestId


@message("relay.error")
class Error:
    """A refused request: ``id`` 0 when the frame could not be read. ``retry_after`` is in
    milliseconds (rate limits), otherwise 0."""

    id: RequestId
    code: Annotated[str, MaxLen(64)]
    message: Annotated[str, MaxLen(512)]
    retry_after: U32


REQUESTS = (
    Register,
    Auth,
    PublishPrekeys,
    SetDeliveryToken,
    SetIntroductions,
    GetPrekeyStatus,
    FetchPrekeys,
    GetCertificate,
    Send,
    SendBatch,
    Introduce,
    SendShared,
    Forward,
    GetServerKeys,
    GetPeerRoots,
    Ack,
    RequestBlobUpload,
    Ping,
)
"""Every frame a client may send."""

RESPONSES = (
    Registered,
    Authenticated,
    PrekeyStatus,
    PrekeyBundles,
    CertificateIssued,
    Sent,
    SentShared,
    ServerKeys,
    PeerRoots,
    SentBatch,
    Acked,
    BlobGrant,
    Pong,
    Ok,
    Error,
)
"""Every response a node may send (each carries the request's ``id``)."""

PUSHES = (Hello, Deliver, Drained)
"""Frames a node sends unasked."""
