"""The routing layer's binding, for the client that seals it and the node that opens it
(DESIGN section 6).

A client seals a :class:`wire.federation.RoutingLayer` with the destination domain's
suite HPKE (RFC 9180 base mode, ``info = ROUTING_LAYER_INFO``) to the KEM key that
:func:`kem_key` chooses from the domain's key document. The AAD (:func:`layer_aad`) binds
the destination domain, the suite and the key id, so a layer sealed for one domain never
opens as another's::

    aad = ROUTING_LAYER_INFO || u8(suite) || u8(len(domain)) || domain || key_id

``domain`` is the lower-cased destination, UTF-8, at most :data:`MAX_DOMAIN_BYTES`.
"""

from __future__ import annotations

from typing import Final

from suites import labels
from trust.errors import DocumentRefused, RoutingRefused
from wire.server import ServerKemKey, ServerKeyDocument

MAX_DOMAIN_BYTES: Final = 253
"""The longest domain name the routing layer's AAD can name (one length byte)."""


def layer_aad(destination: str, suite_id: int, key_id: bytes) -> bytes:
    """The AAD of a layer for ``destination`` sealed to KEM key ``key_id`` of ``suite_id``;
    :class:`RoutingRefused` if the name is too long (``lower()`` may lengthen a name:
    "İ" becomes "i̇")."""
    name = destination.lower().encode()
    if len(name) > MAX_DOMAIN_BYTES:
        raise RoutingRefused("the destination domain name is too long")
    return labels.ROUTING_LAYER_INFO + bytes([suite_id, len(name)]) + name + key_id


def kem_key(doc: ServerKeyDocument, now_ms: int) -> ServerKemKey:
    """The KEM key to seal to: the current one with the latest ``not_after``;
    :class:`DocumentRefused` if the document lists none."""
    keys = [key for key in doc.body.kem_keys if key.not_after > now_ms]
    if not keys:
        raise DocumentRefused(f"{doc.body.server} lists no current routing key")
    return max(keys, key=lambda key: key.not_after)
