"""client.routing with a remote domain's key document that verifies but lists a routing
key that cannot be used (found by fuzzing, ``tests/fuzz``: the key_document_client
target): the client refuses with ServerKeyError, as for any bad document."""

from __future__ import annotations

from dataclasses import replace

import pytest

from client.errors import ServerKeyError
from client.routing import seal_for_domain
from client.serverkeys import verify_document
from node.keys import ServerKeys, generate
from suites import get_suite, labels
from wire import encode
from wire.server import DocumentSignature, ServerKemKey, ServerKeyDocument

NOW = 1_800_000_000_000
DOMAIN = "b.example"


def _document(keys: ServerKeys, kem: ServerKemKey) -> bytes:
    """The domain's own document with ``kem`` as its routing key, signed by the domain."""
    doc = keys.sign_document(DOMAIN, (f"https://{DOMAIN}",), NOW, 86_400)
    body = replace(doc.body, kem_keys=(kem,))
    sig = keys.suite.sig.sign(keys.sig_key, encode(body), labels.CTX_SERVER_KEY_DOCUMENT)
    signed = ServerKeyDocument(body, (DocumentSignature(keys.sig_key_id, sig),), ())
    return encode(signed)


@pytest.fixture(scope="module")
def keys() -> ServerKeys:
    return generate(get_suite("xwing"))


def _kem(keys: ServerKeys) -> ServerKemKey:
    return ServerKemKey(keys.kem_key_id, keys.suite.suite_id, keys.kem_public, NOW + 86_400_000)


def _seal(document: bytes) -> bytes:
    doc = verify_document(document, DOMAIN, NOW)  # the signatures are fine
    return seal_for_domain(doc, NOW, mailbox=bytes(16), token=None, eid=bytes(16), ttl=1, body=b"")


def test_a_good_routing_key_seals(keys: ServerKeys) -> None:
    assert _seal(_document(keys, _kem(keys)))


@pytest.mark.parametrize(
    "broken",
    [
        lambda k: replace(k, public=bytes(len(k.public))),  # not an ML-KEM key
        lambda k: replace(k, public=k.public[:-1]),  # the wrong length
        lambda k: replace(k, suite=99),  # a suite that does not exist
    ],
)
def test_an_unusable_routing_key_is_a_server_key_error(keys: ServerKeys, broken: object) -> None:
    kem = broken(_kem(keys))  # type: ignore[operator]
    with pytest.raises(ServerKeyError):
        _seal(_document(keys, kem))
