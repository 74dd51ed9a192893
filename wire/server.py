"""A domain's server key document, served at ``/.well-known/sealrelay/server`` (DESIGN
section 6).

The body names the server (its domain), its suite, its signing keys (current and old, each
with the time after which it no longer signs), its HPKE KEM keys for the routing layer,
the node endpoints and ``valid_until``. It is signed by every current signing key under
``CTX_SERVER_KEY_DOCUMENT``; clients and peers verify it with ``suites`` alone and then
trust sender certificates signed by a key it lists. Times are Unix milliseconds.

Version 2 of the body (:class:`ServerKeyDocumentBodyV2`) adds ``media``: the node's QUIC
endpoint for calls (DESIGN section 9), a UDP port on the host of the document's endpoint
and the SHA-256 pin of its QUIC certificate key, covered by the same signatures. A node
without a QUIC endpoint signs a version 1 body, byte for byte what nodes signed before,
so documents without ``media`` keep decoding and verifying everywhere; a node that
predates version 2 refuses a version 2 body (``wire.bad_version``). ``trust.media``
holds the rules of the field (``trust.documents.verify_document`` applies them).

The node-to-node link messages (:class:`LinkChallenge`, :class:`LinkProof`,
:class:`LinkProofBody`) authenticate the connecting node of a QUIC link by its server
signing key (``trust.peerlink``).
"""

from __future__ import annotations

from typing import Annotated, Final, TypeAlias

from wire.e2e import Key, Sig, Suite
from wire.schema import message
from wire.types import U16, U64, Bytes32, MaxLen

KeyId = Annotated[bytes, MaxLen(64)]
Domain = Annotated[str, MaxLen(253)]
Url = Annotated[str, MaxLen(2048)]


@message("server.verify-key")
class ServerVerifyKeyEntry:
    """A signing key: ``not_after`` ends its use for new signatures and certificates."""

    id: KeyId
    suite: Suite
    public: Key
    not_after: U64


@message("server.kem-key")
class ServerKemKey:
    """An HPKE KEM key (the suite's hybrid KEM) for the routing layer."""

    id: KeyId
    suite: Suite
    public: Key
    not_after: U64


@message("server.doc-body")
class ServerKeyDocumentBody:
    server: Domain
    suite: Suite
    verify_keys: Annotated[tuple[ServerVerifyKeyEntry, ...], MaxLen(16)]
    kem_keys: Annotated[tuple[ServerKemKey, ...], MaxLen(16)]
    endpoints: Annotated[tuple[Url, ...], MaxLen(16)]
    issued: U64
    valid_until: U64


QuicPin = Annotated[bytes, MaxLen(64)]
"""Bounded loosely here; ``trust.media`` requires exactly 32 bytes (SHA-256)."""


@message("server.media")
class ServerMedia:
    """The node's QUIC endpoint for call media: ``port`` (UDP) on the host of the
    document's endpoint, ``pin`` the SHA-256 of its certificate's DER SubjectPublicKeyInfo
    (``transport.identity.PinnedKey``)."""

    port: U16
    pin: QuicPin


@message("server.doc-body", version=2)
class ServerKeyDocumentBodyV2:
    """Version 1's fields and the node's QUIC endpoint (``media``)."""

    server: Domain
    suite: Suite
    verify_keys: Annotated[tuple[ServerVerifyKeyEntry, ...], MaxLen(16)]
    kem_keys: Annotated[tuple[ServerKemKey, ...], MaxLen(16)]
    endpoints: Annotated[tuple[Url, ...], MaxLen(16)]
    issued: U64
    valid_until: U64
    media: ServerMedia


KeyDocumentBody: TypeAlias = ServerKeyDocumentBody | ServerKeyDocumentBodyV2
"""Either body version; every field of version 1 is on both."""


@message("server.doc-sig")
class DocumentSignature:
    key_id: KeyId
    signature: Sig


RootKey = Annotated[bytes, MaxLen(128)]
RootSig = Annotated[bytes, MaxLen(64 * 1024)]
Algorithm = Annotated[str, MaxLen(64)]


@message("server.root-cert-body")
class RootCertificationBody:
    """What an agency's offline root key vouches for: that ``verify_key`` (an encoded
    signing public key of ``server``) may sign for that domain until ``not_after``."""

    server: Domain
    verify_key: Key
    issued: U64
    not_after: U64


@message("server.root-cert")
class RootCertification:
    """``body`` signed by the agency root key ``root_public`` (``algorithm``, SLH-DSA)."""

    body: RootCertificationBody
    algorithm: Algorithm
    root_public: RootKey
    signature: RootSig


@message("server.doc")
class ServerKeyDocument:
    """``body`` signed by each of its current verify keys; ``certifications`` are the
    agency root's statements about those keys (empty when the domain has no root)."""

    body: ServerKeyDocumentBody | ServerKeyDocumentBodyV2
    signatures: Annotated[tuple[DocumentSignature, ...], MaxLen(16)]
    certifications: Annotated[tuple[RootCertification, ...], MaxLen(16)]


Fingerprint = Annotated[str, MaxLen(128)]
MAX_PEER_DOMAINS: Final = 1024
MAX_PEER_ROOTS: Final = 8


@message("server.peer-root")
class PeerRoot:
    """A peer domain and the fingerprints (``sha256:<hex>`` of the encoded public key)
    of the agency roots whose certifications of its server keys are trusted."""

    domain: Domain
    roots: Annotated[tuple[Fingerprint, ...], MaxLen(MAX_PEER_ROOTS)]


@message("server.peer-roots-body")
class PeerRootsBody:
    """What an agency's offline root tells its own clients: ``server`` (the agency's
    domain) vouches that each listed peer domain's keys are those its roots certify,
    from ``issued`` until ``valid_until`` (Unix ms)."""

    server: Domain
    peers: Annotated[tuple[PeerRoot, ...], MaxLen(MAX_PEER_DOMAINS)]
    issued: U64
    valid_until: U64


@message("server.peer-roots")
class PeerRootsStatement:
    """``body`` signed by the home agency's root key ``root_public`` (``algorithm``,
    SLH-DSA) under ``CTX_PEER_ROOTS``. A node's online keys cannot make one."""

    body: PeerRootsBody
    algorithm: Algorithm
    root_public: RootKey
    signature: RootSig


@message("server.link-challenge")
class LinkChallenge:
    """First message of a node-to-node QUIC link, from the accepting node: a fresh random
    ``challenge`` (``trust.peerlink``)."""

    challenge: Bytes32


@message("server.link-proof")
class LinkProof:
    """The connecting node's answer: its domain (``origin``) and a signature by its verify
    key ``key_id`` over the :class:`LinkProofBody` the accepting node rebuilds."""

    origin: Domain
    key_id: KeyId
    signature: Sig


@message("server.link-proof-body")
class LinkProofBody:
    """What a :class:`LinkProof` signs (under ``CTX_PEER_LINK``): the challenge, the pin of
    the accepting node's QUIC certificate key, and both domains, lower case."""

    challenge: Bytes32
    accepter_pin: Bytes32
    origin: Domain
    target: Domain
