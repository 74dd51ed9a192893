"""The client protocol's envelopes and blobs (DESIGN section 5; ``wire.relay`` describes
the protocol as a whole and re-exports these): sending (``Send``, ``Introduce``,
``IntroduceMany``, ``SendShared``, ``SendBatch``, ``Forward``) and their answers, the
``Deliver`` push and ``Ack``, and blob upload grants. Import them from ``wire.relay``.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Annotated, Final

from wire.codec import array_header, encode, encode_split
from wire.e2e import Address, DeliveryToken
from wire.limits import MAX_LAYER_BYTES
from wire.relay_common import Body, Domain, EnvelopeId, Error, MailboxId, RequestId
from wire.schema import message
from wire.types import U32, U64, Bytes16, Bytes32, MaxLen, MinLen

MAX_DELIVER: Final = 256
"""Most envelopes in one Deliver."""

MAX_BATCH = 256
"""Most Sends in one ``SendBatch``."""


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


MAX_INTRODUCTIONS: Final = 256
"""Most introductions in one ``IntroduceMany``."""


@message("relay.introduce-many")
class IntroduceMany:
    """First contact with many recipients in one upload (a group's welcomes to members the
    sender never wrote to; issue 20): each ``Introduce`` is checked and answered as on its
    own (its own ``id``, in one ``SentBatch``), but the upload counts once against the
    sender's ``introductions_per_minute``; each introduction in it counts against the
    sender's ``batched_introductions_per_minute`` and, as every introduction, against its
    recipient's ``introductions_per_recipient_per_minute``. Added with issue 20 (older
    nodes answer ``Error`` with id 0)."""

    id: RequestId
    intros: Annotated[tuple[Introduce, ...], MinLen(1), MaxLen(MAX_INTRODUCTIONS)]


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
