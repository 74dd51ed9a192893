"""The fuzz corpus replayed: every kept input (seeds, crashes found once, inputs that
reached new coverage) lets nothing but its parser's own error out of its target, and the
seeds still reach the code behind each parser (so they are worth fuzzing from)."""

from __future__ import annotations

import pytest

from client.groupnet import parse, unwrap
from client.groups.group import Group
from client.identity import verify_bundle
from client.sealed import verify_certificate
from federation.documents import verify_document
from federation.routing import open_layer
from tests.fuzz import corpus
from tests.fuzz.replay import failures
from tests.fuzz.targets import TARGETS
from tests.fuzz.world import DOMAIN, NOW_MS, World, world
from wire import decode
from wire.e2e import PrekeyBundle, SenderCertificate


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
