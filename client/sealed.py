"""Sealed sender and sender certificates (DESIGN section 4).

The ratchet message and a sender descriptor are sealed together with the suite's HPKE
(RFC 9180 base mode, ``info = SEALED_SENDER_INFO``) to the recipient device's sealed-sender
key, and the resulting envelope is padded to a bucket (``suites.padding``). The node that
stores it learns neither the sender nor the content.

The descriptor names the sender's address and device and either carries its sender
certificate in full or names it by ``SHA-256(encode(certificate))``. A certificate is a
:class:`~wire.e2e.SenderCertificateBody` signed by a server key of the sender's home domain
under ``CTX_SENDER_CERTIFICATE``. :func:`verify_certificate` checks it against the keys an
injected :class:`Keyring` returns for the domain *of the address in the certificate*, so a
domain can only vouch for its own users: the rule of ``trust.certificates``, whose
refusals this module raises as the client's errors.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Final

from client.errors import CertificateError, DecryptionFailed, SuiteMismatch
from suites import Suite, SuiteError, labels
from suites.kem import KemPrivateKey
from suites.padding import PaddingError
from suites.sig import SigPrivateKey
from trust import certificates
from trust.certificates import Keyring as Keyring
from trust.certificates import ServerVerifyKey as ServerVerifyKey
from trust.errors import CertificateSuiteRefused, RefusalAs, TrustError
from wire import WireError, decode, encode
from wire.e2e import (
    IdentityKey,
    SealedContent,
    SealedEnvelope,
    SealedSenderKey,
    SenderCertificate,
    SenderCertificateBody,
    SenderDescriptor,
)

AS_CERTIFICATE_ERROR: Final = RefusalAs(
    {CertificateSuiteRefused: SuiteMismatch, TrustError: CertificateError}
)


class StaticKeyring:
    """A keyring from a fixed mapping (a single domain, tests, tools)."""

    def __init__(self, keys: dict[str, Sequence[ServerVerifyKey]]) -> None:
        self._keys = {domain: tuple(v) for domain, v in keys.items()}

    def server_keys(self, domain: str) -> Sequence[ServerVerifyKey]:
        return self._keys.get(domain, ())


def domain_of(address: str) -> str:
    """The domain part of ``name@domain``; :class:`CertificateError` if there is none."""
    with AS_CERTIFICATE_ERROR:
        return certificates.domain_of(address)


def certificate_hash(cert: SenderCertificate) -> bytes:
    return hashlib.sha256(encode(cert)).digest()


def issue_certificate(
    suite: Suite,
    server_key: SigPrivateKey,
    key_id: bytes,
    address: str,
    device: int,
    identity: IdentityKey,
    expires_ms: int,
) -> SenderCertificate:
    """Sign a sender certificate (what a node does; here for tests and tools)."""
    body = SenderCertificateBody(
        suite=suite.suite_id,
        address=address,
        device=device,
        identity=identity,
        expires=expires_ms,
        key_id=key_id,
    )
    return certificates.sign_certificate(suite, server_key, body)


def verify_certificate(
    suite: Suite, cert: SenderCertificate, keyring: Keyring, now_ms: int
) -> None:
    """Check the signature by a current key of the address's own domain, and the expiry
    (``trust.certificates``): :class:`SuiteMismatch` for a certificate of another suite,
    :class:`CertificateError` for any other failure."""
    with AS_CERTIFICATE_ERROR:
        certificates.verify_certificate(suite, cert, keyring, now_ms)


def seal(
    suite: Suite,
    recipient_key: SealedSenderKey,
    sender: SenderDescriptor,
    kind: int,
    payload: bytes,
) -> bytes:
    """The padded envelope body for ``payload`` from ``sender``."""
    content = encode(SealedContent(s=sender, k=kind, p=payload))
    aad = _aad(suite, recipient_key.id)
    sealed = suite.hpke.seal(recipient_key.public, labels.SEALED_SENDER_INFO, aad, content)
    return suite.pad(encode(SealedEnvelope(v=suite.suite_id, i=recipient_key.id, c=sealed)))


def unseal(
    suite: Suite, lookup: Callable[[int], KemPrivateKey | None], body: bytes
) -> SealedContent:
    """Open a padded envelope body with the sealed-sender key it names.

    Anything that does not open (bad padding, unknown key, tampering) raises the one
    opaque :class:`DecryptionFailed`; an envelope of another suite raises
    :class:`SuiteMismatch` (a downgrade attempt is refused, never tried under the other).
    """
    try:
        envelope = decode(suite.unpad(body), SealedEnvelope)
    except (PaddingError, WireError):
        raise DecryptionFailed() from None
    if envelope.v != suite.suite_id:
        raise SuiteMismatch("sealed envelope of another suite")
    key = lookup(envelope.i)
    if key is None:
        raise DecryptionFailed()
    try:
        content = suite.hpke.open(
            key, labels.SEALED_SENDER_INFO, _aad(suite, envelope.i), envelope.c
        )
        return decode(content, SealedContent)
    except (SuiteError, WireError):
        raise DecryptionFailed() from None


def _aad(suite: Suite, key_id: int) -> bytes:
    return labels.SEALED_SENDER_AAD + bytes([suite.suite_id]) + key_id.to_bytes(4, "big")
