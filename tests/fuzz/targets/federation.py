"""Fuzz targets for what a node reads from peer domains: routing layers, transactions
and their results, request signatures, and key documents."""

from __future__ import annotations

from federation import documents, requestsig
from federation.errors import FederationError
from federation.policy import PeerPolicy
from federation.routing import layer_aad, open_layer
from suites import labels
from tests.fuzz.cursor import Cursor
from tests.fuzz.targets.base import Target, refusing
from tests.fuzz.targets.client import _signed_document, check_media_endpoint, decoded
from tests.fuzz.world import DOMAIN, NOW_MS, OTHER_DOMAIN, world
from wire import WireError, decode, encode
from wire.federation import (
    MAX_TXN_BODY,
    SealedRoutingLayer,
    Transaction,
    TransactionResult,
    txn_within_bounds,
)

POLICY = PeerPolicy(OTHER_DOMAIN, min_suite="xwing")
HEADERS = (
    requestsig.HEADER_ORIGIN,
    requestsig.HEADER_DESTINATION,
    requestsig.HEADER_TIME,
    requestsig.HEADER_NONCE,
    requestsig.HEADER_KEY,
    requestsig.HEADER_SIGNATURE,
)


def routing_layer(data: bytes) -> None:
    """``federation.routing.open_layer`` with the domain's real KEM key: mode 0 a sealed
    layer as it came, mode 1 the input sealed to that key as the layer's plaintext."""
    w = world()
    cursor = Cursor(data)
    mode, rest = cursor.byte() & 1, cursor.rest()
    if mode == 1:
        server = w.server
        aad = layer_aad(DOMAIN, w.suite.suite_id, server.kem_key_id)
        c = w.suite.hpke.seal(server.kem_public, labels.ROUTING_LAYER_INFO, aad, rest)
        rest = encode(SealedRoutingLayer(suite=w.suite.suite_id, key_id=server.kem_key_id, c=c))
    with refusing(FederationError):
        layer = open_layer(DOMAIN, w.server.kem_private, rest)
        assert layer.destination.lower() == DOMAIN


def transaction(data: bytes) -> None:
    """A transaction as ``node.fed.inbound`` reads it (decode, bounds, each item's suite
    under the peer's policy), and a ``TransactionResult`` as the origin reads it."""
    with refusing(WireError):
        txn = decode(data, Transaction, max_size=MAX_TXN_BODY)
        txn_within_bounds(txn)
        for item in txn.items:
            layer = decoded(item.layer, SealedRoutingLayer)
            if layer is not None:
                with refusing(FederationError):
                    POLICY.check_suite(layer.suite)
    result = decoded(data, TransactionResult)
    assert result is None or len(result.txn_id) == 16


def request_signature(data: bytes) -> None:
    """``requestsig.parse_request`` then ``verify_signature`` with the origin's real key,
    ``check_time`` and the nonce cache. Mode 0: every header from the input; mode 1: a
    request really signed by the origin, one of whose headers the input replaces."""
    cursor = Cursor(data)
    mode = cursor.byte()
    method, path = cursor.text(), cursor.text()
    values = [cursor.text() for _ in HEADERS]
    body = cursor.rest()
    headers = dict(zip(HEADERS, values, strict=True))
    if mode & 1:
        try:
            headers = _signed_headers(method, path, body)
        except WireError:  # the origin could not sign that (method or path too long)
            return
        headers[HEADERS[(mode >> 1) % len(HEADERS)]] = values[0]
    _check_request(method, path, headers, body)


def _signed_headers(method: str, path: str, body: bytes) -> dict[str, str]:
    w = world()
    server = w.server
    return requestsig.sign_request(
        w.suite,
        server.sig_key,
        server.sig_key_id,
        method,
        path,
        OTHER_DOMAIN,
        DOMAIN,
        body,
        NOW_MS,
        bytes(16),
    )


def _check_request(method: str, path: str, headers: dict[str, str], body: bytes) -> None:
    with refusing(FederationError):
        claim = requestsig.parse_request(method, path, headers, body, DOMAIN)
        requestsig.check_time(claim, NOW_MS)
        requestsig.verify_signature(claim, world().verify_entry)
        requestsig.NonceCache().remember(claim.statement.origin, claim.statement.nonce, NOW_MS)


def key_document(data: bytes) -> None:
    """``federation.documents``: ``verify_document``, then ``check_trust`` against a key
    pin and the document trusted before, ``kem_key``, ``verify_key`` and the QUIC endpoint
    of a version 2 document (``trust.media``). Mode 0 a document as served, mode 1 a
    document body (version 1 or 2) signed with the domain's real key."""
    w = world()
    cursor = Cursor(data)
    mode, rest = cursor.byte() & 1, cursor.rest()
    if mode == 1:
        with refusing(WireError):
            rest = _signed_document(rest)
    pins = (documents.fingerprint(w.server.sig_public),)
    with refusing(FederationError):
        doc = documents.verify_document(rest, DOMAIN, NOW_MS)
        documents.check_trust(doc, pins, w.doc, NOW_MS)
        documents.verify_key(doc, w.server.sig_key_id, NOW_MS)
        documents.kem_key(doc, NOW_MS)
        check_media_endpoint(doc)


TARGETS = (
    Target(
        "routing_layer",
        "federation.routing.open_layer",
        "federation FederationError",
        routing_layer,
        max_len=8192,
    ),
    Target(
        "transaction",
        "wire.decode Transaction / TransactionResult, txn_within_bounds",
        "wire.WireError (federation PolicyRefused for a layer's suite)",
        transaction,
        max_len=16384,
    ),
    Target(
        "request_signature",
        "federation.requestsig.parse_request / verify_signature",
        "federation RequestAuthError",
        request_signature,
        max_len=4096,
    ),
    Target(
        "key_document",
        "federation.documents.verify_document / check_trust",
        "federation KeyDocumentError",
        key_document,
        max_len=16384,
    ),
)
