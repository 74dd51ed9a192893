"""``client.domaintrust``, rule by rule: which roots a document's certifications give, the
peer-roots statement, the remote check, and the statement's fetching and keeping. The
client's whole path under a forging home node is in ``test_home_node_forgery``."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from client import domaintrust, persist
from client.errors import ServerKeyError, UntrustedDomain
from client.store.memory import MemoryStore
from node.keys import ServerKeys
from tests.client.pairs import DAY_MS
from tests.client.trustfakes import (
    certification,
    document,
    fingerprint,
    root,
    server_keys,
    statement,
)
from trust import documents
from wire import decode, encode
from wire.relay import GetPeerRoots, PeerRoots
from wire.server import PeerRootsStatement, ServerKeyDocument

HOME = "bravo.test"
PEER = "alpha.test"
NOW = 1_800_000_000_000


def _doc(keys: ServerKeys, domain: str = PEER) -> ServerKeyDocument:
    return decode(document(keys, domain, NOW), ServerKeyDocument)


def _with(keys: ServerKeys, *certs: Any) -> ServerKeyDocument:
    """``keys``' document for alpha with exactly ``certs``."""
    return dataclasses.replace(_doc(keys), certifications=certs)


@pytest.fixture(scope="module")
def alpha() -> ServerKeys:
    return server_keys(PEER, None, NOW)


@pytest.fixture(scope="module")
def peers() -> bytes:
    return statement(root("bravo"), HOME, {PEER: root("alpha")}, NOW)


# --- certifications ------------------------------------------------------------------------


def test_a_certification_of_a_signing_key_for_the_domain_counts(alpha: ServerKeys) -> None:
    doc = _with(alpha, certification(root("alpha"), PEER, alpha.sig_public, NOW))
    assert domaintrust.certified_roots(doc, NOW) == {fingerprint(root("alpha")): root("alpha")[0]}
    assert domaintrust.home_roots(doc, NOW) == (root("alpha")[0],)


def test_certifications_that_do_not_count(alpha: ServerKeys) -> None:
    other = server_keys(PEER, None, NOW)
    cases = {
        "another domain": certification(root("alpha"), HOME, alpha.sig_public, NOW),
        "a key that did not sign": certification(root("alpha"), PEER, other.sig_public, NOW),
        "expired": certification(root("alpha"), PEER, alpha.sig_public, NOW - 31 * DAY_MS),
    }
    for what, cert in cases.items():
        doc = _with(alpha, cert)
        assert domaintrust.certified_roots(doc, NOW) == {}, what
        assert domaintrust.home_roots(doc, NOW) == (), what
        # One rule for client and node: the node's root pin reads the same.
        assert documents.certified_roots(doc, NOW) == {}, what
    good = _with(alpha, certification(root("alpha"), PEER, alpha.sig_public, NOW))
    assert documents.certified_roots(good, NOW) == domaintrust.certified_roots(good, NOW)


def test_a_certification_that_does_not_verify_is_an_error(alpha: ServerKeys) -> None:
    cert = certification(root("alpha"), PEER, alpha.sig_public, NOW)
    bad = dataclasses.replace(cert, root_public=root("bravo")[0])
    with pytest.raises(ServerKeyError):
        domaintrust.certified_roots(_with(alpha, bad), NOW)


# --- the statement -------------------------------------------------------------------------


def test_the_statement_verifies_with_the_pinned_home_root(peers: bytes) -> None:
    body = domaintrust.verify_statement(peers, HOME, (root("bravo")[0],), NOW)
    assert domaintrust.listed_roots(body, PEER) == {fingerprint(root("alpha"))}
    assert domaintrust.listed_roots(body, "ALPHA.test") == {fingerprint(root("alpha"))}
    assert domaintrust.listed_roots(body, "charlie.test") == frozenset()


def test_statements_that_are_refused(peers: bytes) -> None:
    pinned = (root("bravo")[0],)
    parsed = decode(peers, PeerRootsStatement)
    tampered = encode(dataclasses.replace(parsed, root_public=root("alpha")[0]))
    forged_sig = dataclasses.replace(parsed, signature=bytes(len(parsed.signature)))
    cases = {
        "by a root not pinned": (statement(root("node"), HOME, {PEER: root("node")}, NOW), HOME),
        "claiming another root": (tampered, HOME),
        "a signature that does not verify": (encode(forged_sig), HOME),
        "for another home domain": (peers, "charlie.test"),
        "expired": (statement(root("bravo"), HOME, {PEER: root("alpha")}, NOW, 1), HOME),
        "garbage": (b"\x93garbage", HOME),
    }
    later = {"expired": NOW + DAY_MS}
    assert domaintrust.verify_statement(peers, HOME, pinned, NOW)  # control
    for what, (data, home) in cases.items():
        with pytest.raises(UntrustedDomain):
            domaintrust.verify_statement(data, home, pinned, later.get(what, NOW))
    with pytest.raises(UntrustedDomain, match="no agency root"):
        domaintrust.verify_statement(peers, HOME, (), NOW)


# --- the remote check ----------------------------------------------------------------------


def test_a_remote_document_needs_a_root_the_statement_lists(
    alpha: ServerKeys, peers: bytes
) -> None:
    body = domaintrust.verify_statement(peers, HOME, (root("bravo")[0],), NOW)
    genuine = _with(alpha, certification(root("alpha"), PEER, alpha.sig_public, NOW))
    assert domaintrust.check_remote(genuine, body, NOW) == fingerprint(root("alpha"))
    refused = {
        "uncertified": _with(alpha),
        "certified by another root": _with(
            alpha, certification(root("node"), PEER, alpha.sig_public, NOW)
        ),
        "a domain the statement does not list": dataclasses.replace(
            genuine, body=dataclasses.replace(genuine.body, server="charlie.test")
        ),
    }
    for what, doc in refused.items():
        with pytest.raises(UntrustedDomain) as exc:
            domaintrust.check_remote(doc, body, NOW)
        assert exc.value.code == "client.untrusted_domain", what


# --- fetching and keeping the statement ----------------------------------------------------


class Node:
    """A ``request`` callable answering ``GetPeerRoots`` with ``statement``."""

    def __init__(self, statement: bytes | None) -> None:
        self.statement = statement
        self.asked = 0

    async def __call__(self, frame: Any) -> Any:
        assert isinstance(frame, GetPeerRoots)
        self.asked += 1
        return PeerRoots(frame.id, self.statement)


def _home(roots: tuple[bytes, ...] | None) -> tuple[MemoryStore, ServerKeyDocument]:
    store = MemoryStore()
    if roots is not None:
        persist.save_home_roots(store, roots)
    return store, _doc(server_keys(HOME, root("bravo"), NOW), HOME)


async def test_the_statement_is_fetched_kept_and_reused(peers: bytes) -> None:
    store, home_doc = _home((root("bravo")[0],))
    node = Node(peers)
    first = await domaintrust.peer_roots(node, store, home_doc, PEER, NOW)
    again = await domaintrust.peer_roots(node, store, home_doc, PEER, NOW + DAY_MS)
    assert first == again
    assert node.asked == 1
    assert persist.load_peer_roots(store) == peers
    # A domain it does not list, or half its life gone: asked again.
    await domaintrust.peer_roots(node, store, home_doc, "charlie.test", NOW)
    await domaintrust.peer_roots(node, store, home_doc, PEER, NOW + 200 * DAY_MS)
    assert node.asked == 3


async def test_the_held_statement_serves_while_the_node_serves_none(peers: bytes) -> None:
    store, home_doc = _home((root("bravo")[0],))
    await domaintrust.peer_roots(Node(peers), store, home_doc, PEER, NOW)
    aging = NOW + 200 * DAY_MS
    held = await domaintrust.peer_roots(Node(None), store, home_doc, PEER, aging)
    assert domaintrust.listed_roots(held, PEER) == {fingerprint(root("alpha"))}
    with pytest.raises(UntrustedDomain):  # not for a domain it does not list
        await domaintrust.peer_roots(Node(None), store, home_doc, "charlie.test", aging)
    with pytest.raises(UntrustedDomain):  # nor once it expired
        await domaintrust.peer_roots(Node(None), store, home_doc, PEER, NOW + 366 * DAY_MS)


async def test_an_older_statement_than_the_one_held_is_refused(peers: bytes) -> None:
    store, home_doc = _home((root("bravo")[0],))
    newer = statement(root("bravo"), HOME, {"charlie.test": root("alpha")}, NOW + 1)
    await domaintrust.peer_roots(Node(newer), store, home_doc, "charlie.test", NOW + 2)
    with pytest.raises(UntrustedDomain, match="older"):
        await domaintrust.peer_roots(Node(peers), store, home_doc, PEER, NOW + 2)
    assert persist.load_peer_roots(store) == newer


async def test_without_a_statement_or_a_home_root_no_other_domain(peers: bytes) -> None:
    store, home_doc = _home((root("bravo")[0],))
    with pytest.raises(UntrustedDomain, match="serves no peer-roots statement"):
        await domaintrust.peer_roots(Node(None), store, home_doc, PEER, NOW)
    rootless, home_doc = _home(())
    node = Node(peers)
    with pytest.raises(UntrustedDomain, match="no agency root"):
        await domaintrust.peer_roots(node, rootless, home_doc, PEER, NOW)
    assert node.asked == 0


async def test_a_store_from_before_roots_pins_them_from_its_home_document() -> None:
    store, home_doc = _home(None)
    assert domaintrust.pinned_home_roots(store, home_doc, NOW) == (root("bravo")[0],)
    assert persist.load_home_roots(store) == (root("bravo")[0],)


def test_stored_documents_are_trusted_only_as_the_held_statement_allows(
    alpha: ServerKeys, peers: bytes
) -> None:
    store, home_doc = _home((root("bravo")[0],))
    genuine = _with(alpha, certification(root("alpha"), PEER, alpha.sig_public, NOW))
    persist.save_domain_document(store, PEER, encode(genuine))
    persist.save_domain_document(store, "charlie.test", encode(_doc(alpha, "charlie.test")))
    assert domaintrust.trusted_stored(store, home_doc, NOW) == []  # no statement held yet
    persist.save_peer_roots(store, peers)
    assert domaintrust.trusted_stored(store, home_doc, NOW) == [genuine]
    assert domaintrust.trusted_stored(store, home_doc, NOW + 366 * DAY_MS) == []
