"""Signed federation requests to a node: the cases, and what each sends.

The target is ``alpha``; requests claim to come from ``bravo``, its pinned peer, signed by
bravo's real keys unless the case forges them. A :class:`FedInput` may send requests first
(a captured request, replayed), and names the nonce its refusal must leave unspent when the
refusal comes before the signature was accepted (checked by a valid request reusing it).

A transaction case seals a routing layer to alpha's current KEM key from its served key
document, for the victim's mailbox with its delivery token: valid but for the one thing the
case changes. Its expected code is that of the item (``item.refused``).
"""

from __future__ import annotations

import base64
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Final

from federation.documents import kem_key
from federation.requestsig import (
    HEADER_DESTINATION,
    HEADER_KEY,
    HEADER_NONCE,
    HEADER_SIGNATURE,
    NONCE_LEN,
    body_digest,
    sign_request,
)
from federation.routing import layer_aad
from node.fed import HELLO_PATH, PREKEYS_PATH
from node.fed.outbound import SEND_PATH
from node.keys import ServerKeys
from suites import Suite, get_suite_by_id, labels
from tests.hostile import mutate
from tests.hostile.nodeworld import ALPHA, BRAVO, CHARLIE, NodeWorld
from tests.hostile.table import (
    BAD_POINT,
    CROSS_PROTOCOL,
    FEDERATION_REQUEST,
    REPLAY,
    SIZE_BOMB,
    STRIPPED_PQ,
    SWAPPED_KEY,
    WRONG_LENGTH,
    Case,
)
from tests.integration.fedharness import SignedRequest
from wire import encode
from wire.e2e import SealedEnvelope
from wire.federation import (
    MAX_TXN_ITEMS,
    RemotePrekeyRequest,
    RequestStatement,
    RoutingLayer,
    RoutingRecipient,
    SealedRoutingLayer,
    Transaction,
    TransactionItem,
)
from wire.server import ServerKeyDocument

MINUTE_MS: Final = 60_000
HOUR_MS: Final = 3_600_000


@dataclass(frozen=True)
class FedInput:
    request: SignedRequest
    unspent: bytes | None = None
    """The nonce of ``request``, when its refusal must not have spent it."""
    before: tuple[SignedRequest, ...] = ()
    declared: int | None = None
    """Send only the head of ``request``, declaring a body of this many bytes."""
    counted: bool = True
    """Whether the refusal counts in ``federation_refused_total`` (an expired item, or
    a request refused before its origin is authenticated, does not)."""


FedCase = Case[NodeWorld, FedInput]
Build = Callable[[NodeWorld], FedInput]
MakeRequest = Callable[[NodeWorld, bytes], SignedRequest]
SuiteEdit = Callable[[Suite, bytes], bytes]


def now_ms() -> int:
    return int(time.time() * 1000)


# --- signing -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Signing:
    """How a request is signed: all as bravo would, unless changed."""

    keys: ServerKeys
    origin: str = BRAVO
    destination: str = ALPHA
    age_ms: int = 0
    """How long before now it was signed (negative: in the future)."""
    context: bytes = labels.CTX_FEDERATION_REQUEST
    signed_path: str | None = None
    signed_destination: str | None = None
    key_id: bytes | None = None


def sign(s: Signing, method: str, path: str, body: bytes, nonce: bytes) -> SignedRequest:
    """A request signed as ``s`` says; the statement signed may differ from the request
    (``signed_path``, ``signed_destination``)."""
    at = now_ms() - s.age_ms
    key_id = s.key_id or s.keys.sig_key_id
    statement = RequestStatement(
        method=method,
        path=s.signed_path or path,
        origin=s.origin,
        destination=s.signed_destination or s.destination,
        body_digest=body_digest(body),
        time=at,
        nonce=nonce,
        key_id=key_id,
    )
    headers = sign_request(
        s.keys.suite, s.keys.sig_key, key_id, method, path, s.origin, s.destination, body, at, nonce
    )
    signature = s.keys.suite.sig.sign(s.keys.sig_key, encode(statement), s.context)
    headers[HEADER_SIGNATURE] = base64.urlsafe_b64encode(signature).decode("ascii")
    headers = {"content-type": "application/x-msgpack", **headers}
    return SignedRequest(method, path, body, headers)


def signature_of(request: SignedRequest) -> bytes:
    return base64.urlsafe_b64decode(request.headers[HEADER_SIGNATURE])


def with_headers(request: SignedRequest, **changed: str) -> SignedRequest:
    names = {"nonce": HEADER_NONCE, "key": HEADER_KEY, "destination": HEADER_DESTINATION}
    headers = dict(request.headers)
    for name, value in changed.items():
        headers[names.get(name, HEADER_SIGNATURE)] = value
    return replace(request, headers=headers)


def with_signature(request: SignedRequest, signature: bytes) -> SignedRequest:
    return with_headers(request, signature=base64.urlsafe_b64encode(signature).decode("ascii"))


def hello(w: NodeWorld, nonce: bytes | None = None, **how: object) -> SignedRequest:
    """A valid hello from bravo (or as ``how`` changes it) with ``nonce``."""
    signing = Signing(w.fed.keys(BRAVO), **how)  # type: ignore[arg-type]
    return sign(signing, "POST", HELLO_PATH, b"", nonce or secrets.token_bytes(NONCE_LEN))


def _forged(
    request: Callable[[NodeWorld, bytes], SignedRequest],
) -> Callable[[NodeWorld], FedInput]:
    """A case whose refusal must leave its nonce unspent."""

    def build(w: NodeWorld) -> FedInput:
        nonce = secrets.token_bytes(NONCE_LEN)
        return FedInput(request(w, nonce), unspent=nonce)

    return build


# --- transactions -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    """A transaction item for alpha's victim, valid unless changed."""

    expires_in_ms: int = HOUR_MS
    destination: str = ALPHA
    """The domain the layer's AAD and body name."""
    doc: str = ALPHA
    """Whose KEM key the layer is sealed to (under alpha's key id unless ``key_id``)."""
    key_id: bytes | None = None
    outer_eid: bytes | None = None
    edit_c: Callable[[Suite, bytes], bytes] | None = None
    layer: bytes | None = None


def transaction_item(w: NodeWorld, item: Item) -> TransactionItem:
    victim = w.target(ALPHA).victim.account
    eid = secrets.token_bytes(16)
    layer = RoutingLayer(
        destination=item.destination,
        eid=eid,
        ttl=3600,
        recipients=(RoutingRecipient(mailbox=victim.mailbox, token=victim.token),),
        body=os.urandom(1024),
    )
    target_key = kem_key(w.docs[ALPHA], now_ms())
    sealing_key = kem_key(w.docs[item.doc], now_ms())
    key_id = item.key_id or target_key.id
    suite = get_suite_by_id(sealing_key.suite)
    aad = layer_aad(item.destination, sealing_key.suite, key_id)
    c = suite.hpke.seal(sealing_key.public, labels.ROUTING_LAYER_INFO, aad, encode(layer))
    if item.edit_c is not None:
        c = item.edit_c(suite, c)
    sealed = item.layer or encode(SealedRoutingLayer(suite=sealing_key.suite, key_id=key_id, c=c))
    expires = now_ms() + item.expires_in_ms
    return TransactionItem(eid=item.outer_eid or eid, expires=expires, layer=sealed)


def send_transaction(w: NodeWorld, body: bytes, *, txn_hex: str | None = None) -> FedInput:
    path = SEND_PATH + (txn_hex or secrets.token_hex(16))
    return FedInput(sign(Signing(w.fed.keys(BRAVO)), "PUT", path, body, secrets.token_bytes(16)))


def _txn(item: Item) -> Callable[[NodeWorld], FedInput]:
    def build(w: NodeWorld) -> FedInput:
        txn = Transaction(origin=BRAVO, destination=ALPHA, items=(transaction_item(w, item),))
        return send_transaction(w, encode(txn))

    return build


def _enc_edit(edit: Callable[[Suite, bytes], bytes]) -> Callable[[Suite, bytes], bytes]:
    """Change the HPKE ``enc`` (the KEM ciphertext) at the head of ``enc || ciphertext``."""

    def change(suite: Suite, c: bytes) -> bytes:
        n = suite.kem.ciphertext_len
        return edit(suite, c[:n]) + c[n:]

    return change


def _sealed_envelope_as_layer(w: NodeWorld) -> FedInput:
    envelope = encode(SealedEnvelope(v=1, i=2, c=os.urandom(2048)))
    return _txn(Item(layer=envelope))(w)


def _other_origin(w: NodeWorld) -> FedInput:
    item = transaction_item(w, Item())
    txn = Transaction(origin=CHARLIE, destination=ALPHA, items=(item,))
    return send_transaction(w, encode(txn))


def _too_many_items(w: NodeWorld) -> FedInput:
    item = transaction_item(w, Item())
    body = mutate.with_field(
        Transaction(origin=BRAVO, destination=ALPHA, items=(item,)),
        ("items",),
        [mutate.raw(item)] * (MAX_TXN_ITEMS + 1),
    )
    return send_transaction(w, body)


def _short_txn_id(w: NodeWorld) -> FedInput:
    item = transaction_item(w, Item())
    body = encode(Transaction(origin=BRAVO, destination=ALPHA, items=(item,)))
    return send_transaction(w, body, txn_hex=secrets.token_hex(15))


def _expired_item(w: NodeWorld) -> FedInput:
    """Expired on the way (a queue that waited too long): refused, not counted as hostile."""
    return replace(_txn(Item(expires_in_ms=-MINUTE_MS))(w), counted=False)


def _declared_bomb(w: NodeWorld) -> FedInput:
    given = _txn(Item())(w)
    return replace(given, declared=1 << 40, counted=False)


def _replayed(w: NodeWorld) -> FedInput:
    captured = hello(w)
    return FedInput(captured, before=(captured,))


def _document_signature(w: NodeWorld, nonce: bytes) -> SignedRequest:
    doc: ServerKeyDocument = w.docs[BRAVO]
    return with_signature(hello(w, nonce), doc.signatures[0].signature)


def _edit_signature(
    edit: Callable[[Suite, bytes], bytes],
) -> Callable[[NodeWorld, bytes], SignedRequest]:
    def request(w: NodeWorld, nonce: bytes) -> SignedRequest:
        r = hello(w, nonce)
        return with_signature(r, edit(w.fed.keys(BRAVO).suite, signature_of(r)))

    return request


def _prekeys_under_hello_signature(w: NodeWorld, nonce: bytes) -> SignedRequest:
    body = encode(RemotePrekeyRequest(w.target(ALPHA).victim.account.address))
    signing = Signing(w.fed.keys(BRAVO), signed_path=HELLO_PATH)
    return sign(signing, "POST", PREKEYS_PATH, body, nonce)


def _c(
    name: str, category: str, what: str, code: str, build: Callable[[NodeWorld], FedInput]
) -> FedCase:
    return Case(name, category, FEDERATION_REQUEST, what, code, build)


def _hello_case(**how: object) -> Callable[[NodeWorld], FedInput]:
    return _forged(lambda w, nonce: hello(w, nonce, **how))


def _headers_case(**changed: str) -> Callable[[NodeWorld], FedInput]:
    return _forged(lambda w, nonce: with_headers(hello(w, nonce), **changed))


def _charlie_signs(w: NodeWorld, nonce: bytes) -> SignedRequest:
    bravo_key_id = w.fed.keys(BRAVO).sig_key_id
    return hello_signed_by(w, w.charlie, nonce, bravo_key_id)


def hello_signed_by(w: NodeWorld, keys: ServerKeys, nonce: bytes, key_id: bytes) -> SignedRequest:
    return sign(Signing(keys, key_id=key_id), "POST", HELLO_PATH, b"", nonce)


def _off_curve_enc(suite: Suite, enc: bytes) -> bytes:
    return mutate.bad_group_element(suite, enc)


# fmt: off
CASES: Final[tuple[FedCase, ...]] = (
    # --- size bombs
    _c("txn-declared-terabyte", SIZE_BOMB, "a transaction declaring a 1 TiB body",
       "proto.too_large", _declared_bomb),
    _c("txn-101-items", SIZE_BOMB, "a transaction of 101 items (the bound is 100)",
       "proto.too_large", _too_many_items),
    # --- wrong lengths
    _c("nonce-15-bytes", WRONG_LENGTH, "a request nonce header of 15 bytes",
       "fed.auth", _headers_case(nonce="00" * 15)),
    _c("key-id-empty", WRONG_LENGTH, "an empty key id header",
       "fed.auth", _headers_case(key="")),
    _c("signature-truncated", WRONG_LENGTH, "a request signature one byte short",
       "fed.auth", _forged(_edit_signature(lambda s, sig: sig[:-1]))),
    _c("txn-id-15-bytes", WRONG_LENGTH, "a transaction id of 15 bytes in the path",
       "proto.malformed", _short_txn_id),
    # --- swapped keys
    _c("signed-by-another-domain", SWAPPED_KEY, "charlie's key signing as bravo's key id",
       "fed.auth", _forged(_charlie_signs)),
    _c("layer-to-peer-kem-key", SWAPPED_KEY, "a layer sealed to bravo's KEM key, alpha's key id",
       "item.refused", _txn(Item(doc=BRAVO))),
    _c("layer-names-signing-key", SWAPPED_KEY, "a layer naming a signing key id as its KEM key",
       "item.refused", _txn(Item(key_id=b"\x01" * 8))),
    # --- stripped post-quantum halves
    _c("signature-mldsa-stripped", STRIPPED_PQ, "a request signature without its ML-DSA half",
       "fed.auth", _forged(_edit_signature(mutate.strip_pq_sig))),
    _c("signature-mldsa-zeroed", STRIPPED_PQ, "a request signature with ML-DSA zeroed",
       "fed.auth", _forged(_edit_signature(mutate.zero_pq_sig))),
    _c("layer-enc-mlkem-zeroed", STRIPPED_PQ, "a layer whose HPKE enc has ML-KEM zeroed",
       "item.refused", _txn(Item(edit_c=_enc_edit(mutate.zero_pq_kem)))),
    _c("layer-enc-mlkem-stripped", STRIPPED_PQ, "a layer whose HPKE enc lacks ML-KEM",
       "item.refused", _txn(Item(edit_c=_enc_edit(mutate.strip_pq_kem)))),
    # --- bad points
    _c("layer-enc-off-curve", BAD_POINT, "a layer whose HPKE enc has an off-curve P-384 point",
       "item.refused", _txn(Item(edit_c=_enc_edit(_off_curve_enc)))),
    # --- replayed or stale
    _c("request-replayed", REPLAY, "a captured signed request sent again",
       "fed.auth", _replayed),
    _c("request-stale", REPLAY, "a request signed six minutes ago",
       "fed.auth", _hello_case(age_ms=6 * MINUTE_MS)),
    _c("request-from-future", REPLAY, "a request signed six minutes ahead",
       "fed.auth", _hello_case(age_ms=-6 * MINUTE_MS)),
    _c("item-expired", REPLAY, "an item whose expiry has passed",
       "item.refused", _expired_item),
    _c("layer-under-new-eid", REPLAY, "a captured layer re-sent under another envelope id",
       "item.refused", _txn(Item(outer_eid=b"\x07" * 16))),
    # --- cross-protocol confusion
    _c("document-signature-as-request", CROSS_PROTOCOL, "bravo's key document signature",
       "fed.auth", _forged(_document_signature)),
    _c("signed-for-another-path", CROSS_PROTOCOL, "a prekey fetch under a hello's signature",
       "fed.auth", _forged(_prekeys_under_hello_signature)),
    _c("signed-for-another-destination", CROSS_PROTOCOL, "signed for charlie, sent to alpha",
       "fed.auth", _hello_case(signed_destination=CHARLIE)),
    _c("signed-under-certificate-context", CROSS_PROTOCOL, "signed under CTX_SENDER_CERTIFICATE",
       "fed.auth", _hello_case(context=labels.CTX_SENDER_CERTIFICATE)),
    _c("txn-names-another-origin", CROSS_PROTOCOL, "bravo signs a transaction from charlie",
       "proto.malformed", _other_origin),
    _c("layer-for-another-destination", CROSS_PROTOCOL, "a layer sealed for bravo's AAD",
       "item.refused", _txn(Item(destination=BRAVO))),
    _c("sealed-envelope-as-layer", CROSS_PROTOCOL, "an end-to-end sealed envelope as a layer",
       "item.refused", _sealed_envelope_as_layer),
)
# fmt: on
