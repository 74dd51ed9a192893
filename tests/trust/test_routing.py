"""``trust.routing``: the routing layer's AAD and the KEM key a layer is sealed to, one
rule for the client that seals and the node that opens."""

from __future__ import annotations

from dataclasses import replace

import pytest

from client.errors import AS_SERVER_KEY_ERROR, ServerKeyError
from federation.documents import kem_key
from federation.errors import KeyDocumentError
from federation.routing import layer_aad as node_layer_aad
from node.keys import generate
from suites import get_suite, labels
from trust import routing
from trust.errors import DocumentRefused, RoutingRefused
from wire.server import ServerKemKey, ServerKeyDocument

NOW = 1_800_000_000_000


def test_a_domain_name_that_lowercases_too_long_is_refused() -> None:
    name = "\u0130" * 120 + ".example"  # 248 bytes; lower() makes each "İ" 3 bytes
    with pytest.raises(RoutingRefused):
        routing.layer_aad(name, 1, b"k")
    with pytest.raises(ServerKeyError), AS_SERVER_KEY_ERROR:  # as the client sees it
        routing.layer_aad(name, 1, b"k")


def test_the_aad_binds_domain_suite_and_key() -> None:
    aad = routing.layer_aad("B.Example", 2, b"key")
    assert aad == labels.ROUTING_LAYER_INFO + bytes([2, 9]) + b"b.example" + b"key"
    assert node_layer_aad("b.example", 2, b"key") == aad  # the node opens with the same


def _doc(kems: tuple[ServerKemKey, ...]) -> ServerKeyDocument:
    keys = generate(get_suite("xwing"))
    doc = keys.sign_document("b.example", ("https://b.example",), NOW, 86_400)
    return replace(doc, body=replace(doc.body, kem_keys=kems))


def test_the_current_key_with_the_latest_not_after_is_chosen() -> None:
    old = ServerKemKey(b"old", 2, b"o", NOW + 10)
    new = ServerKemKey(b"new", 2, b"n", NOW + 20)
    gone = ServerKemKey(b"gone", 2, b"g", NOW)
    assert routing.kem_key(_doc((old, new, gone)), NOW) == new
    assert routing.kem_key(_doc((old, gone)), NOW) == old
    with pytest.raises(DocumentRefused):
        routing.kem_key(_doc((gone,)), NOW)
    with pytest.raises(KeyDocumentError):  # as the node sees it
        kem_key(_doc((gone,)), NOW)
