"""Server key documents to a client and to a node: the cases, each the bytes a hostile
server (or network) serves for ``bravo.example`` where a genuine document is pinned.

bravo's keys are certified by its agency root (the pin a node holds); a client has pinned
bravo's genuine current document. A case that needs a document *signed by bravo's own
keys* plays a malicious or compromised bravo node (downgrades, malformed KEM keys); the
others play anyone else (a stranger's keys, replays, confusions).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from client.entropy import SYSTEM_ENTROPY
from client.identity import Identity
from node.keys import ServerKeys, generate, key_id
from node.rootkeys import certify
from suites import Suite, get_suite, labels, rootsig
from tests.hostile import mutate
from tests.hostile.table import (
    BAD_POINT,
    CROSS_PROTOCOL,
    FORGED_CERT,
    KEY_DOCUMENT_CLIENT,
    KEY_DOCUMENT_NODE,
    REPLAY,
    SIZE_BOMB,
    STRIPPED_PQ,
    SWAPPED_KEY,
    WRONG_LENGTH,
    Case,
)
from wire import encode
from wire.e2e import IdentityKey
from wire.federation import NotaryAnswer, NotaryStatement
from wire.server import (
    DocumentSignature,
    RootCertification,
    RootCertificationBody,
    ServerKemKey,
    ServerKeyDocument,
    ServerKeyDocumentBody,
)

DOMAIN: Final = "bravo.example"
OTHER_DOMAIN: Final = "charlie.example"
NOW_MS: Final = 1_800_000_000_000
HOUR_MS: Final = 3_600_000
LIFETIME_S: Final = 7 * 86_400
BAD_SERVER_KEY: Final = "client.bad_server_key"
KEY_DOCUMENT: Final = "fed.key_document"
PIN_MISMATCH: Final = "fed.pin_mismatch"


@dataclass
class DocWorld:
    suite: Suite
    keys: ServerKeys
    """The domain's keys, root-certified."""
    root: tuple[bytes, bytes]
    stranger: ServerKeys
    """Keys of no one's, certified by the same root for ``OTHER_DOMAIN``."""
    domain: str = DOMAIN
    now_ms: int = NOW_MS
    genuine: bytes = b""
    """The domain's current document (signed once: signatures are randomised)."""

    @property
    def pin(self) -> str:
        return rootsig.fingerprint(self.root[0])

    def document(self, age_ms: int = 0, lifetime_s: int = LIFETIME_S) -> ServerKeyDocument:
        return self.keys.sign_document(self.domain, (), self.now_ms - age_ms, lifetime_s)


def make_doc_world(
    suite_name: str,
    keys: ServerKeys | None = None,
    root: tuple[bytes, bytes] | None = None,
    domain: str = DOMAIN,
    now_ms: int = NOW_MS,
) -> DocWorld:
    """A world of fresh keys at a fixed time, or of a running domain's (``keys``, ``root``)."""
    suite = get_suite(suite_name)
    root = root or rootsig.generate()
    keys = keys or certify(generate(suite), domain, root, now_ms - HOUR_MS, 365)
    stranger = certify(generate(suite), OTHER_DOMAIN, root, now_ms - HOUR_MS, 365)
    world = DocWorld(suite, keys, root, stranger, domain, now_ms)
    world.genuine = encode(world.document())
    return world


def resign(
    w: DocWorld,
    body: ServerKeyDocumentBody,
    keys: ServerKeys | None = None,
    context: bytes = labels.CTX_SERVER_KEY_DOCUMENT,
    certifications: tuple[RootCertification, ...] | None = None,
) -> bytes:
    """``body`` signed by ``keys`` (bravo's own unless given) under ``context``."""
    k = keys or w.keys
    sig = DocumentSignature(
        key_id(k.sig_public), k.suite.sig.sign(k.sig_key, encode(body), context)
    )
    certs = k.certifications if certifications is None else certifications
    return encode(ServerKeyDocument(body=body, signatures=(sig,), certifications=certs))


def _signature_edit(edit: Callable[[Suite, bytes], bytes]) -> Callable[[DocWorld], bytes]:
    def build(w: DocWorld) -> bytes:
        doc = w.document()
        (sig,) = doc.signatures
        bad = dataclasses.replace(sig, signature=edit(w.suite, sig.signature))
        return encode(dataclasses.replace(doc, signatures=(bad,)))

    return build


def _kem_key_edit(
    edit: Callable[[DocWorld, ServerKemKey], ServerKemKey],
) -> Callable[[DocWorld], bytes]:
    """bravo itself signs a document whose KEM key ``edit`` changed."""

    def build(w: DocWorld) -> bytes:
        body = w.document().body
        kem_keys = tuple(edit(w, k) for k in body.kem_keys)
        return resign(w, dataclasses.replace(body, kem_keys=kem_keys))

    return build


def _kem_public(edit: Callable[[Suite, bytes], bytes]) -> Callable[[DocWorld], bytes]:
    return _kem_key_edit(lambda w, k: dataclasses.replace(k, public=edit(w.suite, k.public)))


def _other_suite_kem(w: DocWorld, k: ServerKemKey) -> ServerKemKey:
    other = get_suite(
        labels.SUITE_XWING if w.suite.name == labels.SUITE_CNSA2 else labels.SUITE_CNSA2
    )
    return dataclasses.replace(k, suite=other.suite_id, public=other.kem.generate().public)


def _bomb(w: DocWorld) -> bytes:
    return os.urandom(2 << 20)


def _expired(w: DocWorld) -> bytes:
    return encode(w.document(age_ms=8 * 86_400_000))


def _older(w: DocWorld) -> bytes:
    return encode(w.document(age_ms=HOUR_MS))


def _stranger_signed(w: DocWorld) -> bytes:
    """A stranger's keys for bravo, certified by bravo's root, but for charlie."""
    body = w.stranger.sign_document(w.domain, (), w.now_ms, LIFETIME_S).body
    return resign(w, body, keys=w.stranger)


def _certificate_as_root_certification(w: DocWorld) -> bytes:
    """A stranger's document carrying, as the root's certification of its key, a sender
    certificate's signature (made by bravo's key under CTX_SENDER_CERTIFICATE)."""
    body = w.stranger.sign_document(w.domain, (), w.now_ms, LIFETIME_S).body
    identity = _some_identity(w)
    cert = w.keys.issue_certificate(f"user@{w.domain}", 1, identity, w.now_ms, 3600)
    claim = RootCertificationBody(w.domain, w.stranger.sig_public, w.now_ms, w.now_ms + HOUR_MS)
    forged = RootCertification(claim, rootsig.ALGORITHM, w.root[0], cert.signature)
    return resign(w, body, keys=w.stranger, certifications=(forged,))


def _some_identity(w: DocWorld) -> IdentityKey:
    return Identity.generate(w.suite, SYSTEM_ENTROPY).public


def _under_certificate_context(w: DocWorld) -> bytes:
    return resign(w, w.document().body, context=labels.CTX_SENDER_CERTIFICATE)


def _other_domain(w: DocWorld) -> bytes:
    return encode(w.keys.sign_document(OTHER_DOMAIN, (), w.now_ms, LIFETIME_S))


def _notary_answer(w: DocWorld) -> bytes:
    statement = NotaryStatement(w.domain, w.domain, bytes(32), w.now_ms, w.keys.sig_key_id)
    signature = w.suite.sig.sign(w.keys.sig_key, encode(statement), labels.CTX_NOTARY)
    return encode(NotaryAnswer(statement, signature, w.genuine))


@dataclass(frozen=True)
class Spec:
    name: str
    category: str
    what: str
    client: str
    node: str
    build: Callable[[DocWorld], bytes]


# fmt: off
SPECS: Final = (
    Spec("document-2mib", SIZE_BOMB, "2 MiB of random bytes as a key document",
         BAD_SERVER_KEY, KEY_DOCUMENT, _bomb),
    Spec("signature-short", WRONG_LENGTH, "a document signature one byte short",
         BAD_SERVER_KEY, KEY_DOCUMENT, _signature_edit(lambda s, sig: sig[:-1])),
    Spec("kem-key-other-suite", SWAPPED_KEY, "bravo lists a KEM key of the other suite",
         BAD_SERVER_KEY, KEY_DOCUMENT, _kem_key_edit(_other_suite_kem)),
    Spec("signature-mldsa-stripped", STRIPPED_PQ, "a document signature without ML-DSA",
         BAD_SERVER_KEY, KEY_DOCUMENT, _signature_edit(mutate.strip_pq_sig)),
    Spec("signature-mldsa-zeroed", STRIPPED_PQ, "a document signature with ML-DSA zeroed",
         BAD_SERVER_KEY, KEY_DOCUMENT, _signature_edit(mutate.zero_pq_sig)),
    Spec("kem-key-mlkem-stripped", STRIPPED_PQ, "bravo lists a KEM key without ML-KEM",
         BAD_SERVER_KEY, KEY_DOCUMENT, _kem_public(mutate.strip_pq_kem)),
    Spec("kem-key-bad-point", BAD_POINT, "bravo lists a KEM key with a bad group element",
         BAD_SERVER_KEY, KEY_DOCUMENT, _kem_public(mutate.bad_group_element)),
    Spec("document-expired", REPLAY, "a genuine document past its valid_until",
         BAD_SERVER_KEY, KEY_DOCUMENT, _expired),
    Spec("document-rolled-back", REPLAY, "a genuine document older than the one held",
         BAD_SERVER_KEY, KEY_DOCUMENT, _older),
    Spec("stranger-keys", FORGED_CERT, "a document of a stranger's keys for bravo",
         BAD_SERVER_KEY, PIN_MISMATCH, _stranger_signed),
    Spec("certificate-as-root-certification", CROSS_PROTOCOL, "a sender cert as root cert",
         BAD_SERVER_KEY, KEY_DOCUMENT, _certificate_as_root_certification),
    Spec("signed-under-certificate-context", CROSS_PROTOCOL, "signed under the cert context",
         BAD_SERVER_KEY, KEY_DOCUMENT, _under_certificate_context),
    Spec("document-of-another-domain", CROSS_PROTOCOL, "bravo's keys' document for charlie",
         BAD_SERVER_KEY, KEY_DOCUMENT, _other_domain),
    Spec("notary-answer-as-document", CROSS_PROTOCOL, "a notary answer as a key document",
         BAD_SERVER_KEY, KEY_DOCUMENT, _notary_answer),
)
# fmt: on

DocCase = Case[DocWorld, bytes]
CLIENT_CASES: Final = tuple(
    Case(s.name, s.category, KEY_DOCUMENT_CLIENT, s.what, s.client, s.build) for s in SPECS
)
NODE_CASES: Final = tuple(
    Case(s.name, s.category, KEY_DOCUMENT_NODE, s.what, s.node, s.build) for s in SPECS
)
