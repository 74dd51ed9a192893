"""``trust.certificates``: a sender certificate a node issues (``node.keys``) checks with
the rule a client applies (``client.sealed``), and each refusal maps to the client's
error."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import pytest

from client.entropy import SYSTEM_ENTROPY
from client.errors import CertificateError, SuiteMismatch
from client.identity import Identity
from client.sealed import verify_certificate as client_verify
from node.keys import ServerKeys, generate
from suites import get_suite
from trust.certificates import ServerVerifyKey, domain_of, verify_certificate
from trust.errors import CertificateRefused, CertificateSuiteRefused
from wire.e2e import SenderCertificate

NOW = 1_800_000_000_000
SUITE = get_suite("xwing")


class Keys:
    def __init__(self, keys: dict[str, Sequence[ServerVerifyKey]]) -> None:
        self._keys = keys

    def server_keys(self, domain: str) -> Sequence[ServerVerifyKey]:
        return self._keys.get(domain, ())


@pytest.fixture(scope="module")
def server() -> ServerKeys:
    return generate(SUITE)


def _keyring(server: ServerKeys, not_after: int = NOW + 86_400_000) -> Keys:
    key = ServerVerifyKey(server.sig_key_id, SUITE.suite_id, server.sig_public, not_after)
    return Keys({"a.example": [key]})


def _cert(server: ServerKeys, address: str = "alice@a.example") -> SenderCertificate:
    identity = Identity.generate(SUITE, SYSTEM_ENTROPY).public
    return server.issue_certificate(address, 1, identity, NOW, 3600)


def test_a_certificate_the_node_issued_verifies(server: ServerKeys) -> None:
    verify_certificate(SUITE, _cert(server), _keyring(server), NOW)
    client_verify(SUITE, _cert(server), _keyring(server), NOW)


def test_refusals(server: ServerKeys) -> None:
    cert = _cert(server)
    forged = replace(cert, body=replace(cert.body, device=2))
    cases = {
        "expired": (cert, _keyring(server), NOW + 3600 * 1000),
        "key retired": (cert, _keyring(server, not_after=NOW), NOW),
        "another domain's user": (_cert(server, "bob@b.example"), _keyring(server), NOW),
        "tampered": (forged, _keyring(server), NOW),
        "no such key": (cert, Keys({}), NOW),
    }
    for c, keyring, now in cases.values():
        with pytest.raises(CertificateRefused):
            verify_certificate(SUITE, c, keyring, now)
        with pytest.raises(CertificateError):
            client_verify(SUITE, c, keyring, now)


def test_a_certificate_of_another_suite(server: ServerKeys) -> None:
    other = get_suite("cnsa2")
    with pytest.raises(CertificateSuiteRefused):
        verify_certificate(other, _cert(server), _keyring(server), NOW)
    with pytest.raises(SuiteMismatch):
        client_verify(other, _cert(server), _keyring(server), NOW)


def test_domain_of() -> None:
    assert domain_of("alice@A.Example") == "a.example"
    for bad in ("alice", "@a.example", "alice@"):
        with pytest.raises(CertificateRefused):
            domain_of(bad)
