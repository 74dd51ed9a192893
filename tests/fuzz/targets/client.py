"""Fuzz targets for what a client reads: node frames, sealed envelopes, sender
certificates, prekey bundles, the home domain's key document, group changes and group
messages, attachment ciphertext and its own saved records.

Where a signature or an AEAD stands between the parser and the code behind it, a target
has a second mode that takes the fuzz input as the *signed or sealed content* and signs
or seals it with the world's real keys (as a malicious peer holding its own keys can),
so the fuzzer also reaches what runs after the check.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TypeVar

from client import attachments, groupnet, savedfiles
from client.content import unpack_payload
from client.errors import ClientError
from client.groups.control import unpack_control
from client.groups.group import Group
from client.identity import verify_bundle
from client.inbox import decode_stored
from client.net import MAX_FRAME
from client.routing import current_kem_key, seal_for_domain
from client.sealed import verify_certificate
from client.serverkeys import PinnedKeyring, accept_refresh, verify_document
from suites import labels
from tests.fuzz.cursor import Cursor
from tests.fuzz.targets.base import Target, refusing
from tests.fuzz.world import DOMAIN, NOW_MS, world
from trust.media import MAX_PORT, MIN_PORT, PIN_SIZE, media_endpoint, media_pin
from wire import WireError, decode, encode
from wire.e2e import (
    PrekeyBundle,
    PrekeyPayload,
    SealedEnvelope,
    SenderCertificate,
    SenderCertificateBody,
)
from wire.group import GroupChange, GroupChangeBody
from wire.relay import PUSHES, RESPONSES
from wire.server import (
    DocumentSignature,
    ServerKeyDocument,
    ServerKeyDocumentBody,
    ServerKeyDocumentBodyV2,
)

M = TypeVar("M")


def node_frames(data: bytes) -> None:
    """``client.net``'s read of a node's frame (every response and push type)."""
    with refusing(WireError):
        frame = decode(data, RESPONSES + PUSHES, max_size=MAX_FRAME)
        assert encode(frame) == data


def sealed_envelope(data: bytes) -> None:
    """``Device.decrypt`` (``client.sealed.unseal``, the sender descriptor, certificate,
    PQXDH and ratchet message): mode 0 the body as it came, mode 1 the input sealed to
    Bob's sealed-sender key as the ``SealedContent`` plaintext."""
    w = world()
    cursor = Cursor(data)
    body = cursor.rest() if cursor.byte() & 1 == 0 else _sealed_to_bob(cursor.rest())
    with refusing(ClientError):
        w.bob.decrypt(body, sent_ms=NOW_MS)


def _sealed_to_bob(content: bytes) -> bytes:
    w = world()
    key = w.bob.pool.sealed_key_public()
    suite = w.suite
    aad = labels.SEALED_SENDER_AAD + bytes([suite.suite_id]) + key.id.to_bytes(4, "big")
    sealed = suite.hpke.seal(key.public, labels.SEALED_SENDER_INFO, aad, content)
    return suite.pad(encode(SealedEnvelope(v=suite.suite_id, i=key.id, c=sealed)))


def sender_certificate(data: bytes) -> None:
    """``client.sealed.verify_certificate`` against the domain's key: mode 0 a whole
    certificate, mode 1 a certificate body signed with the domain's real server key."""
    w = world()
    cursor = Cursor(data)
    mode, rest = cursor.byte() & 1, cursor.rest()
    if mode == 0:
        cert = decoded(rest, SenderCertificate)
    elif (body := decoded(rest, SenderCertificateBody)) is not None:
        sig = w.suite.sig.sign(w.server.sig_key, rest, labels.CTX_SENDER_CERTIFICATE)
        cert = SenderCertificate(body=body, signature=sig)
    else:
        return
    if cert is not None:
        with refusing(ClientError):
            verify_certificate(w.suite, cert, w.keyring, NOW_MS)


def decoded(data: bytes, cls: type[M]) -> M | None:
    """The message of class ``cls`` in ``data``, or None when it does not decode (which
    the product answers with its own error before any of what a target drives next)."""
    try:
        return decode(data, cls)
    except WireError:
        return None


def prekey_bundle(data: bytes) -> None:
    """``verify_bundle`` then ``Device.start_session`` (PQXDH with the bundle's keys):
    mode 0 a bundle as fetched, mode 1 its prekeys signed by Bob's real identity."""
    w = world()
    cursor = Cursor(data)
    mode, rest = cursor.byte() & 1, cursor.rest()
    bundle = decoded(rest, PrekeyBundle)
    if bundle is None:
        return
    if mode == 1:
        bundle = _signed_by_bob(bundle)
    with refusing(ClientError):
        verify_bundle(w.suite, bundle)
        try:
            w.alice.start_session(bundle)
        finally:
            w.alice.sessions.pop((bundle.address, bundle.device), None)
            w.alice.trust.pop(bundle.address, None)


def _signed_by_bob(bundle: PrekeyBundle) -> PrekeyBundle:
    w = world()
    identity = w.bob.identity

    def sign(key_id: int, public: bytes, context: bytes) -> bytes:
        payload = PrekeyPayload(suite=bundle.suite, id=key_id, public=public)
        return identity.sign(encode(payload), context)

    kem = bundle.kem_prekey
    kem_ctx = labels.CTX_LAST_RESORT_KEM_PREKEY if kem.last_resort else labels.CTX_KEM_PREKEY
    spk, sealed = bundle.signed_prekey, bundle.sealed_key
    return replace(
        bundle,
        identity=identity.public,
        signed_prekey=replace(spk, signature=sign(spk.id, spk.public, labels.CTX_SIGNED_PREKEY)),
        kem_prekey=replace(kem, signature=sign(kem.id, kem.public, kem_ctx)),
        sealed_key=replace(
            sealed, signature=sign(sealed.id, sealed.public, labels.CTX_SEALED_SENDER_KEY)
        ),
    )


def key_document_client(data: bytes) -> None:
    """``client.serverkeys.verify_document`` / ``accept_refresh`` and what a client does
    with an accepted document (pin it, seal a routing layer to its KEM key, read its QUIC
    endpoint): mode 0 a document as served, mode 1 a document body (version 1 or 2)
    signed with the domain's real key."""
    w = world()
    cursor = Cursor(data)
    mode, rest = cursor.byte() & 1, cursor.rest()
    if mode == 1:
        with refusing(WireError):
            rest = _signed_document(rest)
    with refusing(ClientError):
        doc = accept_refresh(w.doc, rest, DOMAIN, NOW_MS)
        verify_document(rest, DOMAIN, NOW_MS)
        keyring = PinnedKeyring()
        keyring.pin(doc)
        keyring.server_keys(DOMAIN)
        current_kem_key(doc, NOW_MS)
        seal_for_domain(doc, NOW_MS, mailbox=bytes(16), token=None, eid=bytes(16), ttl=1, body=b"")
        check_media_endpoint(doc)


def check_media_endpoint(doc: ServerKeyDocument) -> None:
    """A verified document's QUIC endpoint (``trust.media``), if it lists one, is usable:
    a UDP port and a pin of :data:`~trust.media.PIN_SIZE` bytes."""
    endpoint = media_endpoint(doc)
    if endpoint is None:
        assert not isinstance(doc.body, ServerKeyDocumentBodyV2)
        return
    assert MIN_PORT <= endpoint.port <= MAX_PORT
    assert len(endpoint.pin) == PIN_SIZE
    assert media_pin(doc) == endpoint.pin


def _signed_document(body_bytes: bytes) -> bytes:
    """The document of this body (version 1 or 2), signed by the world's server key (as
    its own)."""
    w = world()
    body = decode(body_bytes, (ServerKeyDocumentBody, ServerKeyDocumentBodyV2))
    sig = w.suite.sig.sign(w.server.sig_key, body_bytes, labels.CTX_SERVER_KEY_DOCUMENT)
    signature = DocumentSignature(key_id=w.server.sig_key_id, signature=sig)
    return encode(ServerKeyDocument(body=body, signatures=(signature,), certifications=()))


def group_change(data: bytes) -> None:
    """Alice's group receiving administration: mode 0 ``Group.receive_change``, 1 a change
    body signed by Alice (an admin) with her real key, 2 ``Group.join`` (a welcome), 3 a
    pairwise plaintext through ``unpack_payload`` / ``unpack_control`` and
    ``receive_control``, 4 ``Group.from_bytes`` (the stored group)."""
    w = world()
    cursor = Cursor(data)
    mode, rest = cursor.byte() % 5, cursor.rest()
    alice = w.alice
    with refusing(ClientError):
        group = Group.from_bytes(alice.identity, w.group)
        if mode == 0:
            group.receive_change(rest)
        elif mode == 1:
            body = decoded(rest, GroupChangeBody)
            if body is not None:
                sig = alice.identity.sign(rest, labels.CTX_GROUP_CHANGE)
                change = GroupChange(body=body, key=alice.identity.public.sig, sig=sig)
                group.receive_change(encode(change))
        elif mode == 2:
            Group.join(w.bob.identity, w.bob.address, 1, rest, _NoEntropy())
        elif mode == 3:
            unpack_payload(rest)
            group.receive_control(w.bob.address, 1, unpack_control(rest))
        else:
            Group.from_bytes(alice.identity, rest)


class _NoEntropy:
    """Deterministic stand-in: a join makes a sender key from it."""

    def random_bytes(self, n: int) -> bytes:
        return bytes(range(n % 256)) + bytes(max(0, n - n % 256))

    def mlkem_encapsulate(self, kem: object, public_key: bytes) -> tuple[bytes, bytes]:
        raise AssertionError("a group join encapsulates nothing")


def group_message(data: bytes) -> None:
    """A group upload as a member receives it (``groupnet.parse``, ``unwrap`` with the
    transport key, ``Group.decrypt``): mode 0 the envelope body as stored, mode 1 the
    input wrapped under the real transport key as the sender-key message."""
    w = world()
    cursor = Cursor(data)
    mode, rest = cursor.byte() & 1, cursor.rest()
    suite_id = w.suite.suite_id
    if mode == 1:
        rest = groupnet.wrap(suite_id, w.group_key, rest, bytes(12))
    envelope = groupnet.parse(rest)
    if envelope is None:
        return
    inner = groupnet.unwrap(suite_id, w.group_key, envelope)
    if inner is None:
        return
    with refusing(ClientError):
        Group.from_bytes(w.alice.identity, w.group).decrypt(inner)


ATTACHMENT_KEY = bytes(range(32))


def attachment_chunks(data: bytes) -> None:
    """``ChunkOpener`` on a real attachment's ciphertext, cut, flipped or extended as the
    input says, pushed in pieces of the input's sizes; and ``attachments.decrypt``."""
    cursor = Cursor(data)
    size = cursor.int(3) % 140_000  # up to three chunks
    sealed = attachments.encrypt(bytes(size), ATTACHMENT_KEY)
    claimed = size if cursor.byte() & 1 else cursor.int(8)
    cipher = _mutated(sealed.ciphertext, cursor)
    step = max(cursor.int(3) % (len(cipher) + 1), len(cipher) // 64, 1)  # at most 64 pushes
    with refusing(ClientError):
        opener = attachments.ChunkOpener(ATTACHMENT_KEY, sealed.digest, claimed)
        out = b"".join(opener.push(cipher[at : at + step]) for at in range(0, len(cipher), step))
        opener.finish()
        assert out == bytes(size), "an attachment that opens is the one sealed"
    with refusing(ClientError):
        plain = attachments.decrypt(cipher, ATTACHMENT_KEY, sealed.digest, claimed)
        assert plain == bytes(size)


def _mutated(cipher: bytes, cursor: Cursor) -> bytes:
    how, at = cursor.byte() & 3, cursor.int(3) % (len(cipher) + 1)
    if how == 1:
        return cipher[:at]
    if how == 2 and at < len(cipher):
        return cipher[:at] + bytes([cipher[at] ^ (cursor.byte() | 1)]) + cipher[at + 1 :]
    if how == 3:
        return cipher + cursor.rest()
    return cipher


def saved_records(data: bytes) -> None:
    """The client's saved message records (``inbox.decode_stored``, both versions) and the
    file names it derives from a sender's attachment name (``savedfiles``)."""
    try:
        msg = decode_stored(data)
    except WireError:
        msg = None
    for att in msg.attachments if msg is not None else ():
        _check_names(att.pointer.name)
    if data[:1] == b"/":  # a name on its own (candidate_names makes 10,000 names: slow)
        _check_names(data[1:].decode("utf-8", "replace"))


def _check_names(name: str) -> None:
    names = savedfiles.candidate_names(name)[:3]
    for candidate in names:
        assert "/" not in candidate
        assert not candidate.startswith(".")
        assert 0 < len(candidate.encode()) <= savedfiles.NAME_MAX_BYTES


TARGETS = (
    Target(
        "node_frames",
        "client.net read: wire.decode of RESPONSES + PUSHES",
        "wire.WireError",
        node_frames,
        max_len=8192,
    ),
    Target(
        "sealed_envelope",
        "client.session.Device.decrypt (client.sealed.unseal)",
        "client.errors.ClientError",
        sealed_envelope,
        max_len=16384,
    ),
    Target(
        "sender_certificate",
        "client.sealed.verify_certificate",
        "wire.WireError (decode), client.errors.ClientError",
        sender_certificate,
        max_len=8192,
    ),
    Target(
        "prekey_bundle",
        "client.identity.verify_bundle, Device.start_session",
        "wire.WireError (decode), client.errors.ClientError",
        prekey_bundle,
        max_len=16384,
    ),
    Target(
        "key_document_client",
        "client.serverkeys.verify_document / accept_refresh",
        "client.errors.ClientError",
        key_document_client,
        max_len=16384,
    ),
    Target(
        "group_change",
        "client.groups.Group receive_change / join / receive_control",
        "client.errors.ClientError (GroupError)",
        group_change,
        max_len=16384,
    ),
    Target(
        "group_message",
        "client.groupnet.parse / unwrap, Group.decrypt",
        "client.errors.ClientError (None for not a group envelope)",
        group_message,
        max_len=8192,
    ),
    Target(
        "attachment_chunks",
        "client.attachments.ChunkOpener / decrypt",
        "client.errors.AttachmentError",
        attachment_chunks,
        max_len=1024,
    ),
    Target(
        "saved_records",
        "client.inbox.decode_stored, client.savedfiles names",
        "wire.WireError",
        saved_records,
        max_len=8192,
    ),
)
