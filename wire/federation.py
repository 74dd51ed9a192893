"""Federation formats (DESIGN section 6): the routing layer and server-to-server traffic.

Routing layer (two hops). A client sending to another domain wraps its sealed envelope in a
:class:`RoutingLayer` and HPKE-seals it (RFC 9180 base mode, the destination domain's KEM
key from its key document) into a :class:`SealedRoutingLayer`. Its own node sees only the
destination domain; the destination node opens the layer and learns the mailbox, the
delivery token and the body, plus the origin domain from the authenticated transaction.
For a group message the layer names several recipients of one domain and carries the body
once (:class:`RoutingRecipient`).

Transactions. A node sends queued layers for one destination in batches::

    PUT /federation/v1/send/{txn_id hex}      body: Transaction, signed request
    200                                        body: TransactionResult

The same ``txn_id`` is retried until a 200; the receiver answers a repeated
``(origin, txn_id)`` with the result it gave the first time. Each item's result is one of
the ``ITEM_*`` codes; only ``ITEM_RETRY`` asks the origin to send that item again later.

Request signatures. Every federation request carries the headers named ``HEADER_*`` in
``federation.requestsig``; the signature covers the canonical encoding of
:class:`RequestStatement` (method, path, origin, destination, body digest, time, nonce).
"""

from __future__ import annotations

from typing import Annotated

from wire.e2e import Address, DeliveryToken, Sig, Suite
from wire.limits import MAX_DOCUMENT, MAX_LAYER_BYTES
from wire.relay import Body, DeviceBundle, Domain, EnvelopeId, MailboxId
from wire.schema import message
from wire.types import U8, U32, U64, Bytes16, Bytes32, MaxLen

MAX_TXN_ITEMS = 100
MAX_TXN_BYTES = 1 << 20
MAX_GROUP_RECIPIENTS = 256

ITEM_OK = 0
"""Stored in the recipient's mailbox (or a duplicate of one stored before)."""
ITEM_RETRY = 1
"""A temporary failure at the destination: send this item again later."""
ITEM_REFUSED = 2
"""A permanent refusal (unknown mailbox, bad token, unreadable layer, expired)."""

MAX_TXN_BODY = MAX_LAYER_BYTES + 64 * 1024
"""The largest encoded transaction: layers within :func:`txn_within_bounds`, plus the
framing of up to ``MAX_TXN_ITEMS`` items (under 100 bytes each)."""

Layer = Annotated[bytes, MaxLen(MAX_LAYER_BYTES)]
TxnId = Bytes16


@message("fed.recipient")
class RoutingRecipient:
    """One recipient of a routing layer: its mailbox and delivery token."""

    mailbox: MailboxId
    token: DeliveryToken | None


@message("fed.routing")
class RoutingLayer:
    """The plaintext of a sealed routing layer: who receives ``body`` at the destination
    domain, for how long (``ttl`` seconds), under which envelope id."""

    destination: Domain
    eid: EnvelopeId
    ttl: U32
    recipients: Annotated[tuple[RoutingRecipient, ...], MaxLen(MAX_GROUP_RECIPIENTS)]
    body: Body


@message("fed.sealed-routing")
class SealedRoutingLayer:
    """``enc || ciphertext`` of an HPKE base-mode seal to KEM key ``key_id`` of the
    destination domain (``suite``)."""

    suite: Suite
    key_id: Annotated[bytes, MaxLen(64)]
    c: Layer


@message("fed.item")
class TransactionItem:
    """A queued routing layer: ``eid`` (the sender's envelope id) and ``expires`` (Unix
    ms) are outside the layer so that the origin can de-duplicate and expire its queue."""

    eid: EnvelopeId
    expires: U64
    layer: Layer


@message("fed.txn")
class Transaction:
    origin: Domain
    destination: Domain
    items: Annotated[tuple[TransactionItem, ...], MaxLen(MAX_TXN_ITEMS)]


@message("fed.txn-result")
class TransactionResult:
    """One ``ITEM_*`` code per item, in order."""

    txn_id: TxnId
    results: Annotated[tuple[U8, ...], MaxLen(MAX_TXN_ITEMS)]


@message("fed.request")
class RequestStatement:
    """What a federation request's signature covers (under CTX_FEDERATION_REQUEST)."""

    method: Annotated[str, MaxLen(16)]
    path: Annotated[str, MaxLen(2048)]
    origin: Domain
    destination: Domain
    body_digest: Annotated[bytes, MaxLen(64)]
    time: U64
    nonce: Bytes16
    key_id: Annotated[bytes, MaxLen(64)]


@message("fed.prekeys-req")
class RemotePrekeyRequest:
    """``POST /federation/v1/prekeys``: the bundles of ``address`` (an account of the
    destination domain). The requesting user is not named."""

    address: Address


@message("fed.prekeys")
class RemotePrekeyBundles:
    address: Address
    devices: Annotated[tuple[DeviceBundle, ...], MaxLen(32)]


@message("fed.notary")
class NotaryStatement:
    """``GET /federation/v1/notary/{domain}``: the key document this server holds for
    ``domain`` (verified under its own trust), re-signed by this server so that a TOFU
    peer can cross-check what it was shown."""

    server: Domain
    domain: Domain
    document_digest: Bytes32
    time: U64
    key_id: Annotated[bytes, MaxLen(64)]


@message("fed.notary-answer")
class NotaryAnswer:
    statement: NotaryStatement
    signature: Sig
    document: Annotated[bytes, MaxLen(MAX_DOCUMENT)]


__all__ = [
    "ITEM_OK",
    "ITEM_REFUSED",
    "ITEM_RETRY",
    "MAX_TXN_BYTES",
    "MAX_TXN_ITEMS",
    "NotaryAnswer",
    "NotaryStatement",
    "RemotePrekeyBundles",
    "RemotePrekeyRequest",
    "RequestStatement",
    "RoutingLayer",
    "RoutingRecipient",
    "SealedRoutingLayer",
    "Transaction",
    "TransactionItem",
    "TransactionResult",
    "TxnId",
]


def txn_within_bounds(txn: Transaction) -> bool:
    """The transaction bound both ends keep: at most ``MAX_TXN_ITEMS`` items whose layers
    total at most ``MAX_TXN_BYTES``; only a transaction of one item may exceed that total,
    with one layer of up to ``MAX_LAYER_BYTES`` (an origin's queue batches that way)."""
    if len(txn.items) > MAX_TXN_ITEMS:
        return False
    if len(txn.items) == 1:
        return True  # its one layer is bounded by the schema (MAX_LAYER_BYTES)
    return sum(len(item.layer) for item in txn.items) <= MAX_TXN_BYTES
