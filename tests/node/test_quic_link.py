"""A node's QUIC endpoint, authenticated through its key document, over loopback UDP:
the client takes the pin from the node's verified document (``trust.media``); a peer
node then proves its own domain on the control stream (``trust.peerlink``)."""

from __future__ import annotations

import os

import pytest
import trio

from node.keys import ServerKeys, generate
from suites import get_suite
from transport import PeerKeyMismatch, PinnedKey, QuicServer, connect_quic
from trust import documents, peerlink
from trust.errors import LinkRefused
from trust.media import media_endpoint
from wire import encode

LOOPBACK = "127.0.0.1"
STEP_TIMEOUT = 5.0
LIFETIME_S = 86_400
A, B, C = "a.example", "b.example", "c.example"
NOW = 1_800_000_000_000


def _now_ms() -> int:
    """A fixed wall-clock time: documents and proofs are pure of the clock."""
    return NOW


@pytest.fixture(scope="module")
def a_keys() -> ServerKeys:
    return generate(get_suite("xwing"))


@pytest.fixture(scope="module")
def b_keys() -> ServerKeys:
    return generate(get_suite("cnsa2"))


async def _serve(nursery: trio.Nursery, keys: ServerKeys) -> tuple[QuicServer, int]:
    """b's QUIC endpoint, with b's identity as node.keys loaded it."""
    server = QuicServer(keys.quic)
    address = await nursery.start(server.serve, LOOPBACK, 0)
    return server, address[1]


def _verified_document(keys: ServerKeys, domain: str, port: int) -> bytes:
    """What a client or peer fetched from ``/.well-known/sealrelay/server``."""
    doc = keys.key_document(domain, (f"https://{domain}",), _now_ms(), LIFETIME_S, port)
    return encode(doc)


async def test_a_client_pins_the_key_its_node_document_lists(b_keys: ServerKeys) -> None:
    async with trio.open_nursery() as nursery:
        server, port = await _serve(nursery, b_keys)
        doc = documents.verify_document(_verified_document(b_keys, B, port), B, _now_ms())
        endpoint = media_endpoint(doc)
        assert endpoint is not None
        with trio.fail_after(STEP_TIMEOUT):
            client = await connect_quic(
                nursery, LOOPBACK, endpoint.port, pin=PinnedKey.from_sha256(endpoint.pin)
            )
            accepted = await server.accept()
            await client.send_datagram(b"media")
            assert await accepted.receive_datagram() == b"media"
        await client.aclose()
        nursery.cancel_scope.cancel()


async def test_a_document_of_rotated_keys_no_longer_matches(b_keys: ServerKeys) -> None:
    """The node rotated; a party holding the old document fails the pin check (and then
    fetches the document again)."""
    rotated = b_keys.rotated(_now_ms(), 3600)
    async with trio.open_nursery() as nursery:
        _, port = await _serve(nursery, rotated)
        old = documents.verify_document(_verified_document(b_keys, B, port), B, _now_ms())
        endpoint = media_endpoint(old)
        assert endpoint is not None
        with trio.fail_after(STEP_TIMEOUT), pytest.raises(PeerKeyMismatch):
            await connect_quic(nursery, LOOPBACK, port, pin=PinnedKey.from_sha256(endpoint.pin))
        fresh = documents.verify_document(_verified_document(rotated, B, port), B, _now_ms())
        fresh_endpoint = media_endpoint(fresh)
        assert fresh_endpoint is not None
        with trio.fail_after(STEP_TIMEOUT):
            client = await connect_quic(
                nursery, LOOPBACK, port, pin=PinnedKey.from_sha256(fresh_endpoint.pin)
            )
        await client.aclose()
        nursery.cancel_scope.cancel()


async def _link(a_keys: ServerKeys, b_keys: ServerKeys, claimed: str) -> str:
    """a connects to b by b's document, b challenges, a proves ``claimed``; b checks the
    proof with the verified document of the domain it names; b's verdict."""
    known = {A: a_keys, C: generate(get_suite("xwing"))}
    async with trio.open_nursery() as nursery:
        server, port = await _serve(nursery, b_keys)
        b_doc = documents.verify_document(_verified_document(b_keys, B, port), B, _now_ms())
        endpoint = media_endpoint(b_doc)
        assert endpoint is not None
        with trio.fail_after(STEP_TIMEOUT):
            client = await connect_quic(
                nursery, LOOPBACK, port, pin=PinnedKey.from_sha256(endpoint.pin)
            )
            accepted = await server.accept()
            # b: a fresh challenge, bound to its own QUIC key
            challenge = peerlink.issue(os.urandom(32), B, b_keys.quic_pin, _now_ms())
            await accepted.send_control(challenge.message())
            # a: answers with the pin it connected with, to the domain it meant to reach
            answer = peerlink.prove(
                await client.receive_control(),
                origin=claimed,
                target=B,
                target_pin=endpoint.pin,
                suite=a_keys.suite,
                sig_key=a_keys.sig_key,
                key_id=a_keys.sig_key_id,
            )
            await client.send_control(answer)
            proof = peerlink.read_proof(await accepted.receive_control())
        await client.aclose()
        nursery.cancel_scope.cancel()
    # b: the claimed domain's document, as its federation keyring would verify it
    data = _verified_document(known[proof.origin], proof.origin, 7443)
    origin_doc = documents.verify_document(data, proof.origin, _now_ms())
    return challenge.check(proof, origin_doc, _now_ms())


async def test_both_ends_of_a_node_link_are_authenticated(
    a_keys: ServerKeys, b_keys: ServerKeys
) -> None:
    assert await _link(a_keys, b_keys, A) == A


async def test_a_node_link_claiming_another_domain_is_refused(
    a_keys: ServerKeys, b_keys: ServerKeys
) -> None:
    with pytest.raises(LinkRefused, match="no current key"):
        await _link(a_keys, b_keys, C)
