"""The routing layer: sealed by the client (client.routing), opened by the node
(federation.routing); bound to the destination domain and key."""

from __future__ import annotations

import os

import pytest

from client.routing import seal_for_domain
from federation.errors import RoutingError
from federation.routing import layer_aad, open_layer, seal_layer
from suites import labels
from tests.federation.conftest import NOW, Agency
from wire import decode, encode
from wire.federation import RoutingLayer, RoutingRecipient, SealedRoutingLayer
from wire.server import ServerKeyDocument


def _sealed(agency: Agency, token: bytes | None = b"\x07" * 16) -> tuple[bytes, bytes]:
    doc = decode(agency.document(), ServerKeyDocument)
    mailbox = os.urandom(16)
    data = seal_for_domain(
        doc, NOW, mailbox=mailbox, token=token, eid=b"\x01" * 16, ttl=60, body=b"sealed"
    )
    return data, mailbox


def test_the_node_opens_what_the_client_sealed(agency_a: Agency) -> None:
    data, mailbox = _sealed(agency_a)
    layer = open_layer("a.example", agency_a.keys.kem_private, data)
    assert layer.recipients == (RoutingRecipient(mailbox, b"\x07" * 16),)
    assert (layer.eid, layer.ttl, layer.body) == (b"\x01" * 16, 60, b"sealed")


def test_a_layer_opens_only_at_its_destination(agency_a: Agency, agency_c: Agency) -> None:
    data, _ = _sealed(agency_a)
    with pytest.raises(RoutingError):
        open_layer("c.example", agency_a.keys.kem_private, data)  # the AAD names a.example
    with pytest.raises(RoutingError):
        open_layer("a.example", agency_c.keys.kem_private, data)  # another domain's keys


def test_tampering_and_garbage_give_one_opaque_error(agency_a: Agency) -> None:
    data, _ = _sealed(agency_a)
    sealed = decode(data, SealedRoutingLayer)
    flipped = bytearray(sealed.c)
    flipped[-1] ^= 1
    tampered = encode(SealedRoutingLayer(sealed.suite, sealed.key_id, bytes(flipped)))
    for bad in (tampered, os.urandom(200), b""):
        with pytest.raises(RoutingError):
            open_layer("a.example", agency_a.keys.kem_private, bad)


def test_a_layer_naming_another_destination_inside_is_refused(agency_a: Agency) -> None:
    keys = agency_a.keys
    layer = RoutingLayer(
        "c.example", b"\x01" * 16, 60, (RoutingRecipient(b"\x02" * 16, None),), b"x"
    )
    # sealed under a.example's AAD, but naming c.example inside
    suite = keys.suite
    aad = layer_aad("a.example", suite.suite_id, keys.kem_key_id)
    c = suite.hpke.seal(keys.kem_public, labels.ROUTING_LAYER_INFO, aad, encode(layer))
    data = encode(SealedRoutingLayer(suite.suite_id, keys.kem_key_id, c))
    with pytest.raises(RoutingError):
        open_layer("a.example", keys.kem_private, data)
    # control: the same layer sealed honestly for c.example opens there
    honest = seal_layer(suite.suite_id, keys.kem_key_id, keys.kem_public, layer)
    assert open_layer("c.example", keys.kem_private, honest).destination == "c.example"


def test_a_retired_kem_key_still_opens_after_rotation(agency_a: Agency) -> None:
    data, _ = _sealed(agency_a)
    rotated = agency_a.keys.rotated(NOW, 86400)
    assert open_layer("a.example", rotated.kem_private, data).body == b"sealed"
