"""``trust.peerlink``: on a node-to-node QUIC link the connecting node proves, by its
server signing key, that it is its domain, to this accepter, over this TLS peer's key."""

from __future__ import annotations

import os

import pytest

from node.keys import ServerKeys, generate
from suites import get_suite, labels
from trust import peerlink
from trust.errors import FED_AUTH, LinkRefused
from wire import encode
from wire.server import LinkChallenge, LinkProof, ServerKeyDocument

NOW = 1_800_000_000_000
LIFETIME_S = 86_400
A, B, C = "a.example", "b.example", "c.example"


@pytest.fixture(scope="module")
def a_keys() -> ServerKeys:
    return generate(get_suite("xwing"))


@pytest.fixture(scope="module")
def b_keys() -> ServerKeys:
    return generate(get_suite("cnsa2"))


@pytest.fixture(scope="module")
def c_keys() -> ServerKeys:
    return generate(get_suite("xwing"))


def _doc(keys: ServerKeys, domain: str) -> ServerKeyDocument:
    return keys.sign_document(domain, (f"https://{domain}",), NOW, LIFETIME_S, 7443)


def _challenge(b_keys: ServerKeys, now: int = NOW) -> peerlink.Challenge:
    return peerlink.issue(os.urandom(peerlink.CHALLENGE_SIZE), B, b_keys.quic_pin, now)


def _prove(
    keys: ServerKeys,
    challenge: peerlink.Challenge,
    *,
    origin: str = A,
    target: str = B,
    pin: bytes | None = None,
) -> LinkProof:
    data = peerlink.prove(
        challenge.message(),
        origin=origin,
        target=target,
        target_pin=challenge.pin if pin is None else pin,
        suite=keys.suite,
        sig_key=keys.sig_key,
        key_id=keys.sig_key_id,
    )
    return peerlink.read_proof(data)


def _refused(
    challenge: peerlink.Challenge, proof: LinkProof, doc: ServerKeyDocument, now: int = NOW
) -> LinkRefused:
    with pytest.raises(LinkRefused) as caught:
        challenge.check(proof, doc, now)
    assert caught.value.code == FED_AUTH
    return caught.value


def test_the_connecting_node_proves_its_domain(a_keys: ServerKeys, b_keys: ServerKeys) -> None:
    """Across suites too: a's key is X-Wing's, b checks with a's document."""
    challenge = _challenge(b_keys)
    proof = _prove(a_keys, challenge)
    assert proof.origin == A
    assert challenge.check(proof, _doc(a_keys, A), NOW + peerlink.PROOF_WINDOW_MS) == A


def test_domains_are_compared_in_lower_case(a_keys: ServerKeys, b_keys: ServerKeys) -> None:
    challenge = peerlink.issue(os.urandom(32), "B.Example", b_keys.quic_pin, NOW)
    proof = _prove(a_keys, challenge, origin="A.EXAMPLE", target="b.EXAMPLE")
    assert challenge.check(proof, _doc(a_keys, "a.Example"), NOW) == A


def test_a_proof_for_another_target_domain_is_refused(
    a_keys: ServerKeys, b_keys: ServerKeys
) -> None:
    """a meant to authenticate to c; b cannot reuse that answer."""
    challenge = _challenge(b_keys)
    _refused(challenge, _prove(a_keys, challenge, target=C), _doc(a_keys, A))


def test_a_document_of_another_domain_does_not_check_a_proof(
    a_keys: ServerKeys, b_keys: ServerKeys, c_keys: ServerKeys
) -> None:
    challenge = _challenge(b_keys)
    proof = _prove(a_keys, challenge)
    error = _refused(challenge, proof, _doc(c_keys, C))
    assert "not its own" in error.message


def test_a_node_claiming_another_domain_is_refused(
    b_keys: ServerKeys, c_keys: ServerKeys, a_keys: ServerKeys
) -> None:
    """c, with its own key, says it is a; b checks with a's document and refuses."""
    challenge = _challenge(b_keys)
    forged = LinkProof(A, a_keys.sig_key_id, _prove(c_keys, challenge, origin=A).signature)
    _refused(challenge, forged, _doc(a_keys, A))
    # and c's key id is not in a's document
    challenge = _challenge(b_keys)
    _refused(challenge, _prove(c_keys, challenge, origin=A), _doc(a_keys, A))


def test_a_proof_over_another_pin_is_refused(a_keys: ServerKeys, b_keys: ServerKeys) -> None:
    """a signed the pin of the node it talked to (a relay m), not b's: m cannot pass it on."""
    challenge = _challenge(b_keys)
    relay_pin = bytes(b ^ 0xFF for b in b_keys.quic_pin)
    _refused(challenge, _prove(a_keys, challenge, pin=relay_pin), _doc(a_keys, A))


def test_a_recorded_proof_does_not_answer_a_new_challenge(
    a_keys: ServerKeys, b_keys: ServerKeys
) -> None:
    first = _challenge(b_keys)
    recorded = _prove(a_keys, first)
    assert first.check(recorded, _doc(a_keys, A), NOW) == A
    later = _challenge(b_keys, NOW + 1)
    _refused(later, recorded, _doc(a_keys, A), NOW + 1)


def test_a_challenge_is_checked_once(a_keys: ServerKeys, b_keys: ServerKeys) -> None:
    challenge = _challenge(b_keys)
    proof = _prove(a_keys, challenge)
    assert challenge.check(proof, _doc(a_keys, A), NOW) == A
    assert "already answered" in _refused(challenge, proof, _doc(a_keys, A)).message
    # a failed check spends it too: no second guess
    challenge = _challenge(b_keys)
    _refused(challenge, _prove(a_keys, challenge, target=C), _doc(a_keys, A))
    _refused(challenge, _prove(a_keys, challenge), _doc(a_keys, A))


def test_a_late_proof_is_refused(a_keys: ServerKeys, b_keys: ServerKeys) -> None:
    challenge = _challenge(b_keys)
    proof = _prove(a_keys, challenge)
    _refused(challenge, proof, _doc(a_keys, A), NOW + peerlink.PROOF_WINDOW_MS + 1)
    challenge = _challenge(b_keys)
    _refused(challenge, _prove(a_keys, challenge), _doc(a_keys, A), NOW - 1)


def test_a_signature_by_the_wrong_key_or_context_is_refused(
    a_keys: ServerKeys, b_keys: ServerKeys
) -> None:
    challenge = _challenge(b_keys)
    body = peerlink.proof_body(challenge.challenge, challenge.pin, A, B)
    other_context = a_keys.suite.sig.sign(
        a_keys.sig_key, encode(body), labels.CTX_SERVER_KEY_DOCUMENT
    )
    _refused(challenge, LinkProof(A, a_keys.sig_key_id, other_context), _doc(a_keys, A))
    challenge = _challenge(b_keys)
    _refused(challenge, LinkProof(A, a_keys.sig_key_id, b"\x00" * 64), _doc(a_keys, A))


def test_a_retired_key_no_longer_proves(a_keys: ServerKeys, b_keys: ServerKeys) -> None:
    """After a rotation, the old key is listed until its overlap ends, then refused."""
    rotated = a_keys.rotated(NOW, 60)
    doc = rotated.sign_document(A, ("https://a.example",), NOW, LIFETIME_S)
    challenge = _challenge(b_keys)
    assert challenge.check(_prove(a_keys, challenge), doc, NOW) == A  # in the overlap
    late = NOW + 61_000
    challenge = _challenge(b_keys, late)
    _refused(challenge, _prove(a_keys, challenge), doc, late)
    challenge = _challenge(b_keys, late)
    assert challenge.check(_prove(rotated, challenge), doc, late) == A


def test_an_expired_document_does_not_check_a_proof(a_keys: ServerKeys, b_keys: ServerKeys) -> None:
    doc = a_keys.sign_document(A, ("https://a.example",), NOW - LIFETIME_S * 1000, LIFETIME_S)
    challenge = _challenge(b_keys)
    _refused(challenge, _prove(a_keys, challenge), doc)


def test_malformed_messages_are_refused(a_keys: ServerKeys) -> None:
    for data in (b"", b"\x93", encode(LinkChallenge(bytes(32)))):
        with pytest.raises(LinkRefused):
            peerlink.read_proof(data)
    with pytest.raises(LinkRefused):
        peerlink.prove(
            b"\x00",
            origin=A,
            target=B,
            target_pin=bytes(32),
            suite=a_keys.suite,
            sig_key=a_keys.sig_key,
            key_id=a_keys.sig_key_id,
        )


def test_a_challenge_needs_fresh_bytes_and_a_pin(b_keys: ServerKeys) -> None:
    with pytest.raises(ValueError, match="random bytes"):
        peerlink.issue(bytes(16), B, b_keys.quic_pin, NOW)
    with pytest.raises(ValueError, match="pin"):
        peerlink.issue(bytes(32), B, bytes(20), NOW)
