"""The fuzz corpus replayed: every kept input (seeds, crashes found once, inputs that
reached new coverage) lets nothing but its parser's own error out of its target, and the
seeds still reach the code behind each parser (so they are worth fuzzing from)."""

from __future__ import annotations

import pytest

from client.content import CallNote, unpack_call, unpack_pairwise
from client.groupnet import parse, unwrap
from client.groups.group import Group
from client.identity import verify_bundle
from client.sealed import verify_certificate
from federation.documents import verify_document
from federation.routing import open_layer
from node.calls import Drop, DropReason, Forward
from tests.fuzz import corpus
from tests.fuzz.cursor import Cursor
from tests.fuzz.replay import failures
from tests.fuzz.targets import TARGETS
from tests.fuzz.targets.calls import (
    ACCEPTER_PIN,
    CHALLENGE,
    CONNS,
    PROOF_DELAY_MS,
    STEP_MS,
    calls,
)
from tests.fuzz.targets.links import bridges
from tests.fuzz.world import DOMAIN, NOW_MS, OTHER_DOMAIN, World, world
from trust.media import media_endpoint
from trust.peerlink import issue, read_proof
from wire import decode
from wire.calls import CallOffer, decode_signal
from wire.e2e import PrekeyBundle, SenderCertificate
from wire.media import MediaKind, decode_datagram
from wire.media_link import (
    LinkHello,
    LinkJoined,
    LinkJoinRefused,
    decode_bridge_message,
    decode_link_message,
)


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_corpus_lets_only_the_package_error_out(target: str) -> None:
    assert corpus.files(target), f"{target} has no corpus: python -m tests.fuzz seeds"
    assert failures(target) == []


def _seed(target: str, index: int) -> bytes:
    return (corpus.directory(target) / f"seed-{index:02d}").read_bytes()


@pytest.fixture
def fresh() -> World:
    """A world of its own: a seed envelope opens only once per world."""
    return world.__wrapped__()


def test_seed_envelopes_open(fresh: World) -> None:
    received = fresh.bob.decrypt(_seed("sealed_envelope", 0)[1:], sent_ms=NOW_MS)
    assert received.plaintext == b"first message"


def test_seed_documents_and_certificates_verify(fresh: World) -> None:
    doc = verify_document(_seed("key_document", 0)[1:], DOMAIN, NOW_MS)
    assert doc.body.server == DOMAIN
    cert = decode(_seed("sender_certificate", 0)[1:], SenderCertificate)
    verify_certificate(fresh.suite, cert, fresh.keyring, NOW_MS)
    verify_bundle(fresh.suite, decode(_seed("prekey_bundle", 0)[1:], PrekeyBundle))


def test_seed_layers_and_group_messages_open(fresh: World) -> None:
    layer = open_layer(DOMAIN, fresh.server.kem_private, _seed("routing_layer", 0)[1:])
    assert len(layer.recipients) == 2
    envelope = parse(_seed("group_message", 0)[1:])
    assert envelope is not None
    inner = unwrap(fresh.suite.suite_id, fresh.group_key, envelope)
    assert inner is not None
    message = Group.from_bytes(fresh.alice.identity, fresh.group).decrypt(inner)
    assert message.plaintext == b"to the group"


def test_seed_version_2_documents_verify_with_their_quic_endpoint() -> None:
    for target in ("key_document", "key_document_client"):
        doc = verify_document(_seed(target, 2)[1:], DOMAIN, NOW_MS)
        endpoint = media_endpoint(doc)
        assert endpoint is not None
        assert endpoint.port == 4433
        assert len(endpoint.pin) == 32


def test_seed_datagrams_signals_and_notes_decode() -> None:
    header, payload = decode_datagram(_seed("media_datagram", 0))
    assert header.stream.kind is MediaKind.AUDIO
    assert payload == b"sframe ciphertext"
    assert decode_datagram(_seed("media_datagram", 1))[0].stream.layer == 2
    assert isinstance(decode_signal(_seed("call_signal", 0)), CallOffer)
    note = unpack_call(_seed("call_note", 0))
    assert isinstance(note.signal, CallOffer)
    assert isinstance(unpack_pairwise(_seed("call_note", 0)), CallNote)


def test_seed_link_proof_checks_out(fresh: World) -> None:
    challenge = issue(CHALLENGE, OTHER_DOMAIN, ACCEPTER_PIN, NOW_MS)
    proof = read_proof(_seed("peer_link", 0)[1:])
    assert challenge.check(proof, fresh.doc, NOW_MS + PROOF_DELAY_MS) == DOMAIN


def _decisions(seed: bytes) -> list[Forward | Drop]:
    c, cursor = calls(), Cursor(seed)
    now, decisions = NOW_MS, []
    while cursor.at < len(seed):
        conn = CONNS[cursor.byte() % len(CONNS)]
        now += cursor.byte() * STEP_MS
        decisions.append(c.relay.on_datagram(conn, cursor.chunk(), now))
    return decisions


def test_seed_datagrams_are_forwarded_along_every_bridge_and_dropped_for_each_reason() -> None:
    along = _decisions(_seed("call_relay", 0))
    assert [type(d) for d in along] == [Forward] * 5
    drops = _decisions(_seed("call_relay", 1))
    assert [d.reason for d in drops if isinstance(d, Drop)] == [
        DropReason.PEER_NOT_BOUND,
        DropReason.NO_PEER,
        DropReason.NO_LEG,
        DropReason.STREAM_NOT_BOUND,
        DropReason.MALFORMED,
    ]
    idle = _decisions(_seed("call_relay", 2))
    assert isinstance(idle[0], Forward)
    assert idle[1] == Drop(DropReason.EXPIRED)


def test_seed_link_messages_decode_and_runs_join_answer_and_end() -> None:
    assert isinstance(decode_link_message(_seed("media_link", 0)), LinkHello)
    b, cursor = bridges(), Cursor(_seed("link_bridges", 0))
    steps = []
    while cursor.at < len(cursor.data):
        steps.append(b.link.receive(decode_bridge_message(cursor.chunk()), NOW_MS))
    replies = [type(r) for s in steps for r in s.replies]
    assert replies == [LinkJoined] * 3 + [LinkJoinRefused]
    assert [a.code for s in steps for a in s.answers] == [None]  # our join, answered
    assert [e.remote for s in steps for e in s.ended] == [True, False]  # then ended
