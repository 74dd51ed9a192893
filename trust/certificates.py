"""Sender certificates (DESIGN section 4): what a node signs and what a client checks.

A certificate is a :class:`~wire.e2e.SenderCertificateBody` signed by a server key of the
sender's home domain under ``CTX_SENDER_CERTIFICATE`` (:func:`sign_certificate`; a node
issues them, tests and tools too). :func:`verify_certificate` checks it against the keys
a :class:`Keyring` returns for the domain *of the address in the certificate*, so a domain
can only vouch for its own users: of the checking suite, not expired, and signed by a key
with its id, of that suite, whose ``not_after`` has not passed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from suites import Suite, SuiteError, labels
from suites.sig import SigPrivateKey
from trust.errors import CertificateRefused, CertificateSuiteRefused
from wire import encode
from wire.e2e import SenderCertificate, SenderCertificateBody


@dataclass(frozen=True)
class ServerVerifyKey:
    """A domain's server signing key as the keyring vouches for it (times in Unix ms)."""

    key_id: bytes
    suite: int
    public: bytes
    not_after: int


class Keyring(Protocol):
    """Resolves a domain's server keys, having verified the domain's key document
    against its pins."""

    def server_keys(self, domain: str) -> Sequence[ServerVerifyKey]: ...


def domain_of(address: str) -> str:
    """The domain part of ``name@domain``; :class:`CertificateRefused` if there is none."""
    name, sep, domain = address.rpartition("@")
    if not sep or not name or not domain:
        raise CertificateRefused(f"not an address: {address!r}")
    return domain.lower()


def sign_certificate(
    suite: Suite, server_key: SigPrivateKey, body: SenderCertificateBody
) -> SenderCertificate:
    """``body`` signed by ``server_key`` (of ``suite``) under ``CTX_SENDER_CERTIFICATE``."""
    signature = suite.sig.sign(server_key, encode(body), labels.CTX_SENDER_CERTIFICATE)
    return SenderCertificate(body=body, signature=signature)


def verify_certificate(
    suite: Suite, cert: SenderCertificate, keyring: Keyring, now_ms: int
) -> None:
    """Check the signature by a current key of the address's own domain, and the expiry;
    :class:`CertificateSuiteRefused` for a certificate of another suite,
    :class:`CertificateRefused` for any other failure."""
    body = cert.body
    if body.suite != suite.suite_id:
        raise CertificateSuiteRefused("sender certificate of another suite")
    if now_ms >= body.expires:
        raise CertificateRefused("sender certificate expired")
    domain = domain_of(body.address)
    for key in keyring.server_keys(domain):
        if key.key_id != body.key_id or key.suite != suite.suite_id or now_ms >= key.not_after:
            continue
        try:
            suite.sig.verify(
                key.public, encode(body), cert.signature, labels.CTX_SENDER_CERTIFICATE
            )
        except SuiteError:
            break
        return
    raise CertificateRefused(f"sender certificate not signed by a current key of {domain}")
