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

Modules: the handshake, keys and certificates are here; envelopes and blobs in
``wire.relay_mail``; the shared field types and ``Ping``/``Pong``/``Ok``/``Error`` in
``wire.relay_common``; call legs (DESIGN section 9) in ``wire.relay_calls``; meeting legs in
``wire.relay_meetings``. This module
re-exports them all: import every frame from here.
"""

from __future__ import annotations

from typing import Annotated

from wire.e2e import (
    Address,
    IdentityKey,
    PrekeyBundle,
    PrekeyUpload,
    SenderCertificate,
    Sig,
    Suite,
)
from wire.limits import MAX_DOCUMENT
from wire.relay_calls import (
    MEDIA_MESSAGE_BYTE,
    LegAllocate,
    LegAttach,
    LegAttached,
    LegBridge,
    LegEnded,
    LegGrant,
    LegHangUp,
    LegRef,
    is_media_message,
)
from wire.relay_common import (
    Body,
    Code,
    Domain,
    EnvelopeId,
    Error,
    MailboxId,
    Name,
    Ok,
    Ping,
    Pong,
    RequestId,
)
from wire.relay_mail import (
    MAX_BATCH,
    MAX_DELIVER,
    MAX_INTRODUCTIONS,
    MAX_SHARED_RECIPIENTS,
    Ack,
    Acked,
    BlobGrant,
    Deliver,
    Drained,
    Envelope,
    Forward,
    Introduce,
    IntroduceMany,
    RequestBlobUpload,
    Send,
    SendBatch,
    SendShared,
    Sent,
    SentBatch,
    SentShared,
    SharedRecipient,
    deliver_parts,
)
from wire.relay_meetings import (
    MeetingJoin,
    MeetingJoinAt,
    MeetingKeyframe,
    MeetingLayer,
    MeetingLayerSpec,
    MeetingLeave,
    MeetingVideo,
    RoomId,
)
from wire.schema import message
from wire.types import U8, U16, U32, U64, Bytes32, MaxLen

__all__ = [
    "MAX_BATCH",
    "MAX_DELIVER",
    "MAX_INTRODUCTIONS",
    "MAX_SHARED_RECIPIENTS",
    "MEDIA_MESSAGE_BYTE",
    "Ack",
    "Acked",
    "BlobGrant",
    "Body",
    "Code",
    "Deliver",
    "Domain",
    "Drained",
    "Envelope",
    "EnvelopeId",
    "Error",
    "Forward",
    "Introduce",
    "IntroduceMany",
    "LegAllocate",
    "LegAttach",
    "LegAttached",
    "LegBridge",
    "LegEnded",
    "LegGrant",
    "LegHangUp",
    "LegRef",
    "MailboxId",
    "MeetingJoin",
    "MeetingJoinAt",
    "MeetingKeyframe",
    "MeetingLayer",
    "MeetingLayerSpec",
    "MeetingLeave",
    "MeetingVideo",
    "Name",
    "Ok",
    "Ping",
    "Pong",
    "RequestBlobUpload",
    "RequestId",
    "RoomId",
    "Send",
    "SendBatch",
    "SendShared",
    "Sent",
    "SentBatch",
    "SentShared",
    "SharedRecipient",
    "deliver_parts",
    "is_media_message",
]

PROTOCOL_VERSION = 1

PURPOSE_AUTH = 1
PURPOSE_REGISTER = 2


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


@message("relay.set-group-token")
class SetGroupToken:
    """Register a group delivery token of this account (``verifier``, as in
    ``SetDeliveryToken``) and revoke an older one (``revoke``) in one step; either may be
    ``None``. A sealed envelope to the account's mailboxes may present its account token or
    any live group token. The node stores verifiers only, and no group id. Answered with
    ``Ok``; ``limit.group_tokens`` when more than ``trust.limits.MAX_GROUP_TOKENS`` would
    be live (nothing changes then). Added with issue 20 (older nodes answer ``Error`` with
    id 0)."""

    id: RequestId
    verifier: Bytes32 | None
    revoke: Bytes32 | None


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


# --- the frames by direction -------------------------------------------------------------------


REQUESTS = (
    Register,
    Auth,
    PublishPrekeys,
    SetDeliveryToken,
    SetIntroductions,
    SetGroupToken,
    GetPrekeyStatus,
    FetchPrekeys,
    GetCertificate,
    Send,
    SendBatch,
    Introduce,
    IntroduceMany,
    SendShared,
    Forward,
    GetServerKeys,
    GetPeerRoots,
    Ack,
    RequestBlobUpload,
    LegAllocate,
    LegBridge,
    LegHangUp,
    LegAttach,
    MeetingJoin,
    MeetingJoinAt,
    MeetingLeave,
    MeetingVideo,
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
    LegGrant,
    LegAttached,
    Pong,
    Ok,
    Error,
)
"""Every response a node may send (each carries the request's ``id``)."""

PUSHES = (Hello, Deliver, Drained, LegEnded, MeetingLayer, MeetingKeyframe)
"""Frames a node sends unasked. (A media datagram on a WebSocket attached to a call leg is
a binary message of its own, not a frame: :func:`is_media_message`.)"""
