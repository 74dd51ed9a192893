"""The QUIC endpoint in a key document (``trust.media``, ``wire.server.ServerMedia``):
signed with the document, checked by the one verification function, absent in the
documents of nodes without one (and of older nodes)."""

from __future__ import annotations

import dataclasses

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from client.errors import AS_SERVER_KEY_ERROR, ServerKeyError
from federation import documents as federation_documents
from federation.errors import KeyDocumentError
from node.keys import ServerKeys, generate
from suites import get_suite, labels
from trust import documents
from trust.errors import MEDIA_NONE, MEDIA_PIN, MEDIA_PORT, DocumentRefused, MediaRefused
from trust.media import PIN_SIZE, MediaEndpoint, media_endpoint, media_pin
from wire import WireError, decode, encode
from wire.server import (
    DocumentSignature,
    KeyDocumentBody,
    ServerKeyDocument,
    ServerKeyDocumentBody,
    ServerKeyDocumentBodyV2,
    ServerMedia,
)

NOW = 1_800_000_000_000
LIFETIME_S = 86_400
DOMAIN = "b.example"
ENDPOINTS = ("https://b.example",)
PORT = 7443


@pytest.fixture(scope="module")
def keys() -> ServerKeys:
    return generate(get_suite("cnsa2"))


def _signed(keys: ServerKeys, body: KeyDocumentBody) -> bytes:
    """``body`` signed by ``keys``' current key, as the node signs its own."""
    sig = keys.suite.sig.sign(keys.sig_key, encode(body), labels.CTX_SERVER_KEY_DOCUMENT)
    return encode(ServerKeyDocument(body, (DocumentSignature(keys.sig_key_id, sig),), ()))


def _with_media(keys: ServerKeys, media: ServerMedia) -> bytes:
    body = keys.sign_document(DOMAIN, ENDPOINTS, NOW, LIFETIME_S, PORT).body
    assert isinstance(body, ServerKeyDocumentBodyV2)
    return _signed(keys, dataclasses.replace(body, media=media))


def test_a_document_with_media_round_trips_and_verifies(keys: ServerKeys) -> None:
    doc = keys.sign_document(DOMAIN, ENDPOINTS, NOW, LIFETIME_S, PORT)
    data = encode(doc)
    assert decode(data, ServerKeyDocument) == doc
    verified = documents.verify_document(data, DOMAIN, NOW)
    assert isinstance(verified.body, ServerKeyDocumentBodyV2)
    assert media_endpoint(verified) == MediaEndpoint(DOMAIN, PORT, keys.quic_pin)
    assert media_pin(verified) == keys.quic_pin == keys.quic.pin.sha256
    assert len(media_pin(verified)) == PIN_SIZE
    # the rest of the trust rules see the same document
    pin = documents.fingerprint(keys.sig_public)
    assert documents.check_trust(verified, [pin], None, NOW) == "key"


def test_the_signature_covers_the_pin_and_the_port(keys: ServerKeys) -> None:
    doc = keys.sign_document(DOMAIN, ENDPOINTS, NOW, LIFETIME_S, PORT)
    body = doc.body
    assert isinstance(body, ServerKeyDocumentBodyV2)
    other_pin = bytes(b ^ 1 for b in body.media.pin)
    for media in (ServerMedia(PORT, other_pin), ServerMedia(PORT + 1, body.media.pin)):
        tampered = dataclasses.replace(doc, body=dataclasses.replace(body, media=media))
        with pytest.raises(DocumentRefused, match="signature does not verify"):
            documents.verify_document(encode(tampered), DOMAIN, NOW)


def test_dropping_the_media_does_not_keep_the_signature(keys: ServerKeys) -> None:
    """A version 1 body with the same fields is another message: the v2 signature fails."""
    doc = keys.sign_document(DOMAIN, ENDPOINTS, NOW, LIFETIME_S, PORT)
    old_fields = [getattr(doc.body, f.name) for f in dataclasses.fields(ServerKeyDocumentBody)]
    stripped = dataclasses.replace(doc, body=ServerKeyDocumentBody(*old_fields))
    with pytest.raises(DocumentRefused):
        documents.verify_document(encode(stripped), DOMAIN, NOW)


def test_a_document_without_media_is_version_1_and_verifies(keys: ServerKeys) -> None:
    doc = keys.sign_document(DOMAIN, ENDPOINTS, NOW, LIFETIME_S)
    assert type(doc.body) is ServerKeyDocumentBody
    raw = decode_raw(encode(doc.body))
    assert raw[:2] == ["server.doc-body", 1]  # what every node signed before media
    assert "media" not in raw[2]
    verified = documents.verify_document(encode(doc), DOMAIN, NOW)
    assert media_endpoint(verified) is None
    with pytest.raises(MediaRefused) as caught:
        media_pin(verified)
    assert caught.value.code == MEDIA_NONE


def test_a_client_pinned_to_an_older_document_accepts_the_one_with_media(
    keys: ServerKeys,
) -> None:
    """A refresh from a version 1 document to a version 2 one carries trust over."""
    old = documents.verify_document(
        encode(keys.sign_document(DOMAIN, ENDPOINTS, NOW, LIFETIME_S)), DOMAIN, NOW
    )
    fresh = encode(keys.sign_document(DOMAIN, ENDPOINTS, NOW + 1000, LIFETIME_S, PORT))
    accepted = documents.accept_refresh(old, fresh, DOMAIN, NOW + 1000)
    assert media_pin(accepted) == keys.quic_pin
    assert documents.check_trust(accepted, [], old, NOW + 1000) == "continuity"


@pytest.mark.parametrize(
    ("media", "code"),
    [
        (ServerMedia(0, bytes(32)), MEDIA_PORT),
        (ServerMedia(PORT, bytes(31)), MEDIA_PIN),
        (ServerMedia(PORT, bytes(33)), MEDIA_PIN),
        (ServerMedia(PORT, b""), MEDIA_PIN),
        (ServerMedia(PORT, bytes(64)), MEDIA_PIN),
    ],
)
def test_a_malformed_media_field_is_refused_with_its_code(
    keys: ServerKeys, media: ServerMedia, code: str
) -> None:
    data = _with_media(keys, media)  # validly signed by the domain's own key
    with pytest.raises(MediaRefused) as caught:
        documents.verify_document(data, DOMAIN, NOW)
    assert caught.value.code == code
    assert isinstance(caught.value, DocumentRefused)
    # servers and clients translate it as any refused document
    with pytest.raises(KeyDocumentError):
        federation_documents.verify_document(data, DOMAIN, NOW)
    with pytest.raises(ServerKeyError), AS_SERVER_KEY_ERROR:
        documents.verify_document(data, DOMAIN, NOW)


def test_a_well_formed_media_field_signed_by_hand_verifies(keys: ServerKeys) -> None:
    """Control for the refusals above: the same path with a good field passes."""
    data = _with_media(keys, ServerMedia(65535, bytes(range(32))))
    assert media_pin(documents.verify_document(data, DOMAIN, NOW)) == bytes(range(32))


def test_the_wire_bounds_the_port_and_the_pin() -> None:
    for port, pin in ((70000, bytes(32)), (PORT, bytes(65))):
        with pytest.raises(WireError):
            ServerMedia(port, pin)


def decode_raw(data: bytes) -> list[object]:
    raw = msgpack.unpackb(data)
    assert isinstance(raw, list)
    return raw


@settings(max_examples=40, deadline=None)
@given(
    port=st.integers(0, 65535),
    pin=st.binary(min_size=32, max_size=32) | st.binary(max_size=64),
)
def test_the_shape_rule_holds_for_any_field(port: int, pin: bytes) -> None:
    keys = _shared_keys()
    data = _with_media(keys, ServerMedia(port, pin))
    code = MEDIA_PORT if port == 0 else MEDIA_PIN if len(pin) != PIN_SIZE else None
    if code is None:
        doc = documents.verify_document(data, DOMAIN, NOW)
        assert media_endpoint(doc) == MediaEndpoint(DOMAIN, port, pin)
        return
    with pytest.raises(MediaRefused) as caught:
        documents.verify_document(data, DOMAIN, NOW)
    assert caught.value.code == code


_KEYS: list[ServerKeys] = []


def _shared_keys() -> ServerKeys:
    """One set of keys for every example (hypothesis does not take function fixtures)."""
    if not _KEYS:
        _KEYS.append(generate(get_suite("xwing")))
    return _KEYS[0]
