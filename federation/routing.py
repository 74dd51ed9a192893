"""Opening the routing layer at the destination node (DESIGN section 6).

The client seals a :class:`wire.federation.RoutingLayer` with the destination domain's
suite HPKE (RFC 9180 base mode) to a KEM key of the domain's key document, with
``info = ROUTING_LAYER_INFO`` and an AAD binding the destination domain and the key id
(:func:`layer_aad`), so a layer sealed for one domain never opens as another's. The
client's copy of the sealing side is ``client.routing``.
"""

from __future__ import annotations

from collections.abc import Callable

from federation.errors import RoutingError
from suites import SuiteError, get_suite_by_id, labels
from suites.kem import KemPrivateKey
from wire import WireError, decode, encode
from wire.federation import RoutingLayer, SealedRoutingLayer


def layer_aad(destination: str, suite_id: int, key_id: bytes) -> bytes:
    return encode_aad(labels.ROUTING_LAYER_INFO, destination.lower(), suite_id, key_id)


def encode_aad(label: bytes, destination: str, suite_id: int, key_id: bytes) -> bytes:
    name = destination.encode()
    return label + bytes([suite_id, len(name)]) + name + key_id


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
    except (SuiteError, WireError):
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
