"""Opening the routing layer at the destination node (DESIGN section 6).

The client seals a :class:`wire.federation.RoutingLayer` with the destination domain's
suite HPKE (RFC 9180 base mode) to a KEM key of the domain's key document, with
``info = ROUTING_LAYER_INFO`` and an AAD binding the destination domain and the key id,
so a layer sealed for one domain never opens as another's. The AAD and the choice of
key are one rule for both sides, in ``trust.routing``.
"""

from __future__ import annotations

from collections.abc import Callable

from federation.errors import RoutingError
from suites import SuiteError, get_suite_by_id, labels
from suites.kem import KemPrivateKey
from trust.errors import TrustError
from trust.routing import layer_aad as layer_aad
from wire import WireError, decode, encode
from wire.federation import RoutingLayer, SealedRoutingLayer


def open_layer(
    destination: str, lookup: Callable[[bytes], KemPrivateKey | None], data: bytes
) -> RoutingLayer:
    """The routing layer in ``data`` (an encoded SealedRoutingLayer); one opaque
    :class:`RoutingError` for anything that does not open or is not for ``destination``."""
    try:
        sealed = decode(data, SealedRoutingLayer)
        suite = get_suite_by_id(sealed.suite)
        key = lookup(sealed.key_id)
        if key is None:
            raise RoutingError("the routing layer is sealed to an unknown key")
        aad = layer_aad(destination, sealed.suite, sealed.key_id)
        layer = decode(suite.hpke.open(key, labels.ROUTING_LAYER_INFO, aad, sealed.c), RoutingLayer)
    except (SuiteError, WireError, TrustError):
        raise RoutingError("the routing layer does not open") from None
    if layer.destination.lower() != destination.lower():
        raise RoutingError("the routing layer is for another domain")
    return layer


def seal_layer(suite_id: int, key_id: bytes, public: bytes, layer: RoutingLayer) -> bytes:
    """Seal ``layer`` (tests and tools; clients use ``client.routing``)."""
    suite = get_suite_by_id(suite_id)
    aad = layer_aad(layer.destination, suite_id, key_id)
    c = suite.hpke.seal(public, labels.ROUTING_LAYER_INFO, aad, encode(layer))
    return encode(SealedRoutingLayer(suite=suite_id, key_id=key_id, c=c))
