"""The routing layer, client side (DESIGN section 6): sealing an envelope for another domain.

A message to ``name@other.domain`` goes through the sender's own node, which must learn
only the destination domain. The client wraps the sealed envelope, the recipient's
mailbox, delivery token, envelope id and TTL in a :class:`wire.federation.RoutingLayer`
and HPKE-seals it (RFC 9180 base mode, ``info = ROUTING_LAYER_INFO``) to the destination
domain's current KEM key from its key document. The AAD binds the destination domain, the
suite and the key id; the choice of key and the AAD are the rules the destination node
checks too, in one place (``trust.routing``).

A group message to several members of one domain goes as one layer naming all their
mailboxes and tokens (at most ``MAX_GROUP_RECIPIENTS``); the destination node stores the
body once for all of them.
"""

from __future__ import annotations

from collections.abc import Sequence

from client.errors import AS_SERVER_KEY_ERROR, BadAddress, ServerKeyError
from suites import SuiteError, get_suite_by_id, labels
from trust import routing
from wire import encode
from wire.federation import (
    MAX_GROUP_RECIPIENTS,
    RoutingLayer,
    RoutingRecipient,
    SealedRoutingLayer,
)
from wire.server import ServerKemKey, ServerKeyDocument


def check_address(address: str) -> str:
    """``address`` if it is ``NAME@DOMAIN`` (both parts non-empty, no blanks); else
    :class:`BadAddress`, before anything goes to a node (which would read a bare name as
    a domain of its own)."""
    name, sep, domain = address.rpartition("@")
    if not sep or not name or not domain or any(c.isspace() for c in address):
        raise BadAddress(f"the address must be NAME@DOMAIN, not {address!r}")
    return address


def current_kem_key(doc: ServerKeyDocument, now_ms: int) -> ServerKemKey:
    """The KEM key to seal to (``trust.routing.kem_key``); :class:`ServerKeyError` if
    there is none."""
    with AS_SERVER_KEY_ERROR:
        return routing.kem_key(doc, now_ms)


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
    with AS_SERVER_KEY_ERROR:
        aad = routing.layer_aad(domain, key.suite, key.id)
    try:
        # The document verified, but only its signatures: the domain signed whatever KEM
        # key it lists, which may be of no suite we know or not a key at all.
        suite = get_suite_by_id(key.suite)
        sealed = suite.hpke.seal(key.public, labels.ROUTING_LAYER_INFO, aad, encode(layer))
    except SuiteError as exc:
        raise ServerKeyError(f"{domain} lists an unusable routing key ({exc.code})") from None
    return encode(SealedRoutingLayer(suite=key.suite, key_id=key.id, c=sealed))
