"""The routing layer, client side (DESIGN section 6): sealing an envelope for another domain.

A message to ``name@other.domain`` goes through the sender's own node, which must learn
only the destination domain. The client wraps the sealed envelope, the recipient's
mailbox, delivery token, envelope id and TTL in a :class:`wire.federation.RoutingLayer`
and HPKE-seals it (RFC 9180 base mode, ``info = ROUTING_LAYER_INFO``) to the destination
domain's current KEM key from its key document. The AAD binds the destination domain, the
suite and the key id, exactly as ``federation.routing.layer_aad`` (the node side, which
the client may not import) rebuilds it.

A group message to several members of one domain goes as one layer naming all their
mailboxes and tokens (at most ``MAX_GROUP_RECIPIENTS``); the destination node stores the
body once for all of them.
"""

from __future__ import annotations

from collections.abc import Sequence

from client.errors import BadAddress, ServerKeyError
from suites import SuiteError, get_suite_by_id, labels
from wire import encode
from wire.federation import (
    MAX_GROUP_RECIPIENTS,
    RoutingLayer,
    RoutingRecipient,
    SealedRoutingLayer,
)
from wire.server import ServerKemKey, ServerKeyDocument

MAX_DOMAIN_BYTES = 253
"""The longest domain name the routing layer's AAD can name (one length byte)."""


def check_address(address: str) -> str:
    """``address`` if it is ``NAME@DOMAIN`` (both parts non-empty, no blanks); else
    :class:`BadAddress`, before anything goes to a node (which would read a bare name as
    a domain of its own)."""
    name, sep, domain = address.rpartition("@")
    if not sep or not name or not domain or any(c.isspace() for c in address):
        raise BadAddress(f"the address must be NAME@DOMAIN, not {address!r}")
    return address


def layer_aad(destination: str, suite_id: int, key_id: bytes) -> bytes:
    name = destination.lower().encode()
    if len(name) > MAX_DOMAIN_BYTES:  # lower() may lengthen a name: "İ" becomes "i̇"
        raise ServerKeyError("the destination domain name is too long")
    return labels.ROUTING_LAYER_INFO + bytes([suite_id, len(name)]) + name + key_id


def current_kem_key(doc: ServerKeyDocument, now_ms: int) -> ServerKemKey:
    keys = [key for key in doc.body.kem_keys if key.not_after > now_ms]
    if not keys:
        raise ServerKeyError(f"{doc.body.server} lists no current routing key")
    return max(keys, key=lambda key: key.not_after)


def seal_for_domain(
    doc: ServerKeyDocument,
    now_ms: int,
    *,
    mailbox: bytes | None = None,
    token: bytes | None = None,
    recipients: Sequence[tuple[bytes, bytes | None]] = (),
    eid: bytes,
    ttl: int,
    body: bytes,
) -> bytes:
    """The encoded :class:`SealedRoutingLayer` carrying ``body`` to ``mailbox`` (with
    ``token``) or to every ``(mailbox, token)`` of ``recipients`` (one or the other) of the
    domain of ``doc`` (a document the caller verified)."""
    if (mailbox is None) == (not recipients):
        raise ValueError("give either one mailbox or a list of recipients")
    wanted = [(mailbox, token)] if mailbox is not None else list(recipients)
    if len(wanted) > MAX_GROUP_RECIPIENTS:
        raise ValueError(f"at most {MAX_GROUP_RECIPIENTS} recipients in one routing layer")
    domain = doc.body.server.lower()
    key = current_kem_key(doc, now_ms)
    layer = RoutingLayer(
        destination=domain,
        eid=eid,
        ttl=ttl,
        recipients=tuple(RoutingRecipient(mailbox=m, token=t) for m, t in wanted),
        body=body,
    )
    aad = layer_aad(domain, key.suite, key.id)
    try:
        # The document verified, but only its signatures: the domain signed whatever KEM
        # key it lists, which may be of no suite we know or not a key at all.
        suite = get_suite_by_id(key.suite)
        sealed = suite.hpke.seal(key.public, labels.ROUTING_LAYER_INFO, aad, encode(layer))
    except SuiteError as exc:
        raise ServerKeyError(f"{domain} lists an unusable routing key ({exc.code})") from None
    return encode(SealedRoutingLayer(suite=key.suite, key_id=key.id, c=sealed))
