"""Pinning the home domain's server key document: what verifies, what is refused."""

from __future__ import annotations

from dataclasses import replace

import pytest

from client.errors import ServerKeyError
from client.serverkeys import PinnedKeyring, accept_refresh, needs_refresh, verify_document
from federation import documents
from federation.errors import KeyDocumentError
from suites import get_suite, labels
from suites.sig import SigPrivateKey
from trust.limits import MAX_CACHE_MS
from wire import encode
from wire.server import (
    DocumentSignature,
    ServerKemKey,
    ServerKeyDocument,
    ServerKeyDocumentBody,
    ServerVerifyKeyEntry,
)

SUITE = get_suite("xwing")
NOW = 1_800_000_000_000
DAY = 86_400_000


def _key() -> SigPrivateKey:
    return SUITE.sig.generate()[0]


def _entry(key: SigPrivateKey, kid: bytes, not_after: int = NOW + 7 * DAY) -> ServerVerifyKeyEntry:
    return ServerVerifyKeyEntry(kid, SUITE.suite_id, SUITE.sig.public_key_bytes(key), not_after)


def _doc(
    signers: list[tuple[bytes, SigPrivateKey]],
    entries: list[ServerVerifyKeyEntry],
    server: str = "example.test",
    issued: int = NOW,
) -> ServerKeyDocument:
    body = ServerKeyDocumentBody(
        server, SUITE.suite_id, tuple(entries), (), (), issued, issued + 7 * DAY
    )
    sigs = tuple(
        DocumentSignature(kid, SUITE.sig.sign(k, encode(body), labels.CTX_SERVER_KEY_DOCUMENT))
        for kid, k in signers
    )
    return ServerKeyDocument(body, sigs, ())


@pytest.fixture(scope="module")
def k1() -> SigPrivateKey:
    return _key()


@pytest.fixture(scope="module")
def k2() -> SigPrivateKey:
    return _key()


def test_good_document_verifies_and_feeds_the_keyring(k1: SigPrivateKey) -> None:
    doc = _doc([(b"k1", k1)], [_entry(k1, b"k1")])
    assert verify_document(encode(doc), "EXAMPLE.test", NOW) == doc
    keyring = PinnedKeyring()
    keyring.pin(doc)
    (key,) = keyring.server_keys("example.test")
    assert (key.key_id, key.public) == (b"k1", SUITE.sig.public_key_bytes(k1))
    assert keyring.server_keys("other.test") == ()


def test_refusals(k1: SigPrivateKey, k2: SigPrivateKey) -> None:
    good = _doc([(b"k1", k1)], [_entry(k1, b"k1")])
    cases = {
        "other domain": (encode(good), "other.test", NOW),
        "expired": (encode(good), "example.test", NOW + 8 * DAY),
        "garbage": (b"\x00garbage", "example.test", NOW),
        "signed by another key": (
            encode(_doc([(b"k1", k2)], [_entry(k1, b"k1")])),
            "example.test",
            NOW,
        ),
        "current key did not sign": (
            encode(_doc([(b"k1", k1)], [_entry(k1, b"k1"), _entry(k2, b"k2")])),
            "example.test",
            NOW,
        ),
        "unsigned": (encode(_doc([], [_entry(k1, b"k1")])), "example.test", NOW),
        "signer not listed": (
            encode(_doc([(b"k1", k1), (b"k9", k2)], [_entry(k1, b"k1")])),
            "example.test",
            NOW,
        ),
    }
    for data, domain, now in cases.values():
        with pytest.raises(ServerKeyError):
            verify_document(data, domain, now)


def test_tampered_body_refused(k1: SigPrivateKey, k2: SigPrivateKey) -> None:
    doc = _doc([(b"k1", k1)], [_entry(k1, b"k1")])
    swapped = replace(doc, body=replace(doc.body, verify_keys=(_entry(k2, b"k1"),)))
    with pytest.raises(ServerKeyError):
        verify_document(encode(swapped), "example.test", NOW)


def test_retired_key_need_not_sign(k1: SigPrivateKey, k2: SigPrivateKey) -> None:
    doc = _doc([(b"k2", k2)], [_entry(k1, b"k1", not_after=NOW - 1), _entry(k2, b"k2")])
    assert verify_document(encode(doc), "example.test", NOW) == doc


def test_refresh_needs_a_pinned_signer(k1: SigPrivateKey, k2: SigPrivateKey) -> None:
    pinned = _doc([(b"k1", k1)], [_entry(k1, b"k1")])
    later = NOW + 4 * DAY
    same_key = _doc([(b"k1", k1)], [_entry(k1, b"k1", later + 7 * DAY)], issued=later)
    assert accept_refresh(pinned, encode(same_key), "example.test", later) == same_key
    rotated = _doc(
        [(b"k1", k1), (b"k2", k2)],
        [_entry(k1, b"k1", later + DAY), _entry(k2, b"k2")],
        issued=later,
    )
    assert accept_refresh(pinned, encode(rotated), "example.test", later) == rotated
    takeover = _doc([(b"k1", k2)], [_entry(k2, b"k1", later + 7 * DAY)], issued=later)
    with pytest.raises(ServerKeyError, match="changed"):
        accept_refresh(pinned, encode(takeover), "example.test", later)


def test_needs_refresh_after_half_life(k1: SigPrivateKey) -> None:
    doc = _doc([(b"k1", k1)], [_entry(k1, b"k1")])
    assert not needs_refresh(doc, NOW + 3 * DAY)
    assert needs_refresh(doc, NOW + 4 * DAY)


def test_refresh_refuses_an_older_document(k1: SigPrivateKey) -> None:
    older = _doc([(b"k1", k1)], [_entry(k1, b"k1", NOW + 30 * DAY)], issued=NOW - DAY)
    pinned = _doc([(b"k1", k1)], [_entry(k1, b"k1", NOW + 30 * DAY)], issued=NOW)
    with pytest.raises(ServerKeyError, match="older"):
        accept_refresh(pinned, encode(older), "example.test", NOW + DAY)
    # the same issue time (a node serving the pinned document again) is accepted
    assert accept_refresh(pinned, encode(pinned), "example.test", NOW + DAY) == pinned


def _with_kems(doc: ServerKeyDocument, k1: SigPrivateKey, *kems: ServerKemKey) -> bytes:
    body = replace(doc.body, kem_keys=kems)
    sig = SUITE.sig.sign(k1, encode(body), labels.CTX_SERVER_KEY_DOCUMENT)
    return encode(ServerKeyDocument(body, (DocumentSignature(b"k1", sig),), ()))


def test_a_kem_key_of_another_suite_is_refused(k1: SigPrivateKey) -> None:
    """The drift between the client's and the node's copies of the check: a document
    signed by its pinned key that lists a KEM key of another suite (a downgrade of the
    routing layer) is refused by the client as by a node, by one rule (trust.documents)."""
    pinned = _doc([(b"k1", k1)], [_entry(k1, b"k1")])
    own = ServerKemKey(b"x1", SUITE.suite_id, SUITE.kem.generate().public, NOW + 7 * DAY)
    cnsa2 = get_suite("cnsa2")
    other = ServerKemKey(b"c1", cnsa2.suite_id, cnsa2.kem.generate().public, NOW + 7 * DAY)
    good = _with_kems(pinned, k1, own)
    assert verify_document(good, "example.test", NOW).body.kem_keys == (own,)  # control
    downgraded = _with_kems(pinned, k1, own, other)
    with pytest.raises(ServerKeyError, match="another suite"):
        verify_document(downgraded, "example.test", NOW)
    with pytest.raises(ServerKeyError, match="another suite"):
        accept_refresh(pinned, downgraded, "example.test", NOW)
    with pytest.raises(KeyDocumentError, match="another suite"):  # the node's keyring
        documents.verify_document(downgraded, "example.test", NOW)


def test_a_document_is_refreshed_within_seven_days_whatever_its_valid_until(
    k1: SigPrivateKey,
) -> None:
    """``valid_until`` is never trusted more than 7 days ahead (MAX_CACHE_MS), as by a
    node's keyring: a document valid for 30 days is refreshed after 7, not 15."""
    doc = _doc([(b"k1", k1)], [_entry(k1, b"k1", NOW + 30 * DAY)])
    long_lived = replace(doc, body=replace(doc.body, valid_until=NOW + 30 * DAY))
    assert not needs_refresh(long_lived, NOW + MAX_CACHE_MS - 1)
    assert needs_refresh(long_lived, NOW + MAX_CACHE_MS)
