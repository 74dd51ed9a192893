"""Seed inputs for every fuzz target, made with the project's own encoders from the fixed
world of ``tests.fuzz.world`` (so a seed that was valid when written is valid when the
corpus is replayed: the world is the same in every process).

``python -m tests.fuzz seeds`` writes them to ``tests/fuzz/corpus/TARGET/seed-NN``. The
check that they are right: the replay test runs them, and ``test_seeds_reach_success``
asserts that the seeds of the targets with a success path do get past their parser.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from client import groupnet
from client.content import AttachmentPointer
from client.groups.control import pack_control
from client.groups.group import Group
from client.inbox import SavedAttachment, SavedFile, StoredMessage
from client.sealed import unseal
from federation.routing import seal_layer
from node.wsframes import OP_BINARY, OP_CLOSE, OP_CONTINUATION, OP_PING, OP_TEXT, unmask
from tests.fuzz import seeds_calls, seeds_links
from tests.fuzz.targets.federation import HEADERS, _signed_headers
from tests.fuzz.targets.session import node
from tests.fuzz.world import DOMAIN, NOW_MS, OTHER_DOMAIN, World, world
from wire import encode
from wire.federation import (
    RoutingLayer,
    RoutingRecipient,
    Transaction,
    TransactionItem,
    TransactionResult,
)
from wire.group import OpRename
from wire.relay import (
    Ack,
    Auth,
    Deliver,
    DeviceBundle,
    Envelope,
    Error,
    FetchPrekeys,
    Forward,
    GetCertificate,
    GetPrekeyStatus,
    GetServerKeys,
    Hello,
    Introduce,
    Ping,
    PrekeyBundles,
    PublishPrekeys,
    Register,
    RequestBlobUpload,
    Send,
    SendBatch,
    SendShared,
    Sent,
    SentBatch,
    SentShared,
    ServerKeys,
    SetDeliveryToken,
    SetIntroductions,
    SharedRecipient,
)

EID = bytes(range(16))
MAILBOX = bytes(range(16, 32))
TOKEN = b"t" * 16


def chunk(data: bytes | str) -> bytes:
    """A value as ``Cursor.chunk`` reads it."""
    raw = data.encode("latin-1") if isinstance(data, str) else data
    if len(raw) < 255:
        return bytes([len(raw)]) + raw
    return b"\xff" + len(raw).to_bytes(2, "big") + raw


def _shared(w: World) -> SendShared:
    recipients = (SharedRecipient(MAILBOX, TOKEN), SharedRecipient(EID, None))
    return SendShared(id=7, eid=EID, ttl=60, recipients=recipients, body=b"group body")


def client_frames(w: World) -> list[bytes]:
    upload = w.bob.pool.upload()
    upload = replace(upload, one_time=upload.one_time[:1], kem_one_time=upload.kem_one_time[:1])
    send = Send(id=3, mailbox=MAILBOX, eid=EID, token=TOKEN, ttl=60, body=b"sealed")
    frames = [
        Ping(1),
        Register(2, "INVITE-CODE", "alice", w.alice.identity.public, b"s" * 64),
        Auth(2, w.alice.address, 1, b"s" * 64),
        PublishPrekeys(4, upload),
        FetchPrekeys(5, w.bob.address),
        send,
        SendBatch(6, (send, replace(send, id=7, token=None))),
        Introduce(8, MAILBOX, EID, 60, b"hello"),
        _shared(w),
        Forward(9, OTHER_DOMAIN, EID, 60, b"layer"),
        GetServerKeys(10, OTHER_DOMAIN),
        Ack(11, (EID, MAILBOX)),
        RequestBlobUpload(12, 1000, 3600),
    ]
    return [encode(f) for f in frames]


def node_session(w: World) -> list[bytes]:
    """Requests of Alice's to the relay of ``tests.fuzz.targets.session`` (mode 0), and
    logins on a fresh connection (mode 1)."""
    n = node()
    to_bob = Send(id=3, mailbox=n.bob_mailbox, eid=EID, token=n.bob_token, ttl=60, body=b"x")
    shared = SendShared(
        7,
        MAILBOX,
        60,
        (SharedRecipient(n.bob_mailbox, n.bob_token), SharedRecipient(EID, None)),
        b"group body",
    )
    upload = w.alice.pool.upload()
    upload = replace(upload, one_time=upload.one_time[:1], kem_one_time=upload.kem_one_time[:1])
    frames = [
        to_bob,
        shared,
        SendBatch(4, (to_bob, replace(to_bob, id=5, eid=MAILBOX))),
        Introduce(8, n.bob_mailbox, EID, 60, b"hello"),
        FetchPrekeys(5, w.bob.address),
        PublishPrekeys(6, upload),
        Ack(11, (EID,)),
        GetCertificate(12),
        SetIntroductions(13, True),
        SetDeliveryToken(14, bytes(32)),
        GetPrekeyStatus(15),
        RequestBlobUpload(16, 1000, 3600),
        Forward(17, OTHER_DOMAIN, EID, 60, b"layer"),
        GetServerKeys(18, DOMAIN),
    ]
    logins = [
        Auth(1, w.alice.address, 1, b"s" * 64),
        Register(1, "AAAA-BBBB-CCCC-DDDD", "carol", w.alice.identity.public, b"s" * 64),
    ]
    return [b"\x00" + encode(f) for f in frames] + [b"\x01" + encode(f) for f in logins]


def shared_sends(w: World) -> list[bytes]:
    return [encode(_shared(w)), encode(replace(_shared(w), recipients=()))]


def _ws_frame(opcode: int, payload: bytes, final: bool = True) -> bytes:
    mask = b"\x11\x22\x33\x44"
    size = len(payload)
    first = (0x80 if final else 0) | opcode
    if size < 126:
        head = bytes((first, 0x80 | size))
    else:
        head = bytes((first, 0x80 | 126)) + size.to_bytes(2, "big")
    return head + mask + unmask(payload, mask)


def ws_frames(w: World) -> list[bytes]:
    stream = (
        _ws_frame(OP_BINARY, encode(Ping(1)))
        + _ws_frame(OP_TEXT, "héllo".encode())
        + _ws_frame(OP_BINARY, b"a" * 200, final=False)
        + _ws_frame(OP_PING, b"p")
        + _ws_frame(OP_CONTINUATION, b"b" * 10)
        + _ws_frame(OP_CLOSE, (1000).to_bytes(2, "big") + b"bye")
    )
    return [b"\x02\x07" + stream, b"\x01\xff" + stream, b"\x00\x00" + stream[:40]]


def ws_upgrade(w: World) -> list[bytes]:
    head = (
        b"GET /v1/client HTTP/1.1\r\nHost: fuzz.example\r\nUpgrade: websocket\r\n"
        b"Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n"
    )
    return [head + b"\x82\x80\0\0\0\0", b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"]


def blob_request(w: World) -> list[bytes]:
    path = "00112233445566778899aabbccddeeff"
    headers = [
        (b"authorization", b"Bearer " + b"ab" * 32),
        (b"content-length", b"1040"),
        (b"content-type", b"application/octet-stream"),
    ]
    pairs = b"".join(chunk(n) + chunk(v) for n, v in headers)
    return [chunk(path) + bytes([len(headers)]) + pairs]


def node_frames(w: World) -> list[bytes]:
    envelope = Envelope(EID, NOW_MS, NOW_MS + 1000, DOMAIN, None, b"sealed")
    bundle = DeviceBundle(1, MAILBOX, w.bob.pool.bundle(w.bob.address, 1))
    frames = [
        Hello(1, DOMAIN, w.suite.suite_id, bytes(32), NOW_MS),
        Deliver((envelope, replace(envelope, sender=w.alice.address))),
        Error(3, "send.bad_token", "no", 0),
        Sent(4, EID, False),
        SentBatch(5, (Sent(1, EID, True), Error(2, "limit.rate", "slow down", 100))),
        SentShared(6, EID, ("", "duplicate", "send.no_mailbox")),
        PrekeyBundles(7, (bundle,)),
        ServerKeys(8, DOMAIN, w.document),
    ]
    return [encode(f) for f in frames]


def sealed_envelope(w: World) -> list[bytes]:
    alice, bob = w.alice, w.bob
    alice.start_session(bob.pool.bundle(bob.address, 1))
    first = alice.encrypt(bob.address, 1, b"first message")
    second = alice.encrypt(bob.address, 1, b"second message")
    content = encode(unseal(w.suite, bob._sealed_key, first))
    return [b"\x00" + first, b"\x00" + second, b"\x01" + content]


def sender_certificate(w: World) -> list[bytes]:
    cert = w.alice.certificate
    return [b"\x00" + encode(cert), b"\x01" + encode(cert.body)]


def prekey_bundle(w: World) -> list[bytes]:
    bundle = encode(w.bob.pool.bundle(w.bob.address, 1))
    return [b"\x00" + bundle, b"\x01" + bundle]


def key_documents(w: World) -> list[bytes]:
    """Version 1 (as the world's server signs it), then version 2 with a QUIC endpoint."""
    v1 = [b"\x00" + w.document, b"\x01" + encode(w.doc.body)]
    return v1 + seeds_calls.key_documents_v2(w)


def group_change(w: World) -> list[bytes]:
    group = Group.from_bytes(w.alice.identity, w.group)
    change, _ = group.propose(OpRename(name="renamed"))
    return [
        b"\x00" + change,
        b"\x01" + encode(_change_body(change)),
        b"\x02" + group.welcome(),
        b"\x03" + pack_control(group.state.group_id, change),
        b"\x04" + w.group,
    ]


def _change_body(change: bytes) -> object:
    from wire import decode
    from wire.group import GroupChange

    return decode(change, GroupChange).body


def group_message(w: World) -> list[bytes]:
    message = Group.from_bytes(w.bob.identity, w.bob_group).encrypt(b"to the group")
    body = groupnet.wrap(w.suite.suite_id, w.group_key, message, bytes(12))
    return [b"\x00" + body, b"\x01" + message]


def attachment_chunks(w: World) -> list[bytes]:
    """Size (3 bytes), claimed-size flag, mutation, step."""
    return [b"\x00\x01\x00\x01", b"\x00\x00\x10\x01\x00\x00\x01\x00\x00", b"\x01\xff\xff\x01\x02"]


def saved_records(w: World) -> list[bytes]:
    pointer = AttachmentPointer(EID, bytes(32), bytes(32), 5, 1040, "../photo.jpg", "image/jpeg")
    saved = SavedAttachment(pointer, "/tmp/x/photo.jpg", bytes(32), None, SavedFile(1, 2, 5, 3))
    msg = StoredMessage(EID, w.alice.address, 1, "hi", NOW_MS, NOW_MS, 60, NOW_MS, (saved,), False)
    return [encode(msg), "/../../.ssh/authorized_keys\u202e.txt".encode()]


def routing_layer(w: World) -> list[bytes]:
    layer = RoutingLayer(
        DOMAIN, EID, 60, (RoutingRecipient(MAILBOX, TOKEN), RoutingRecipient(EID, None)), b"body"
    )
    server = w.server
    sealed = seal_layer(w.suite.suite_id, server.kem_key_id, server.kem_public, layer)
    return [b"\x00" + sealed, b"\x01" + encode(layer)]


def transaction(w: World) -> list[bytes]:
    layer = routing_layer(w)[0][1:]
    items = (TransactionItem(EID, NOW_MS + 1000, layer), TransactionItem(MAILBOX, 1, b"x"))
    return [
        encode(Transaction(OTHER_DOMAIN, DOMAIN, items)),
        encode(TransactionResult(EID, (0, 1, 2))),
    ]


def request_signature(w: World) -> list[bytes]:
    method, path, body = "PUT", "/federation/v1/send/" + EID.hex(), b"transaction"
    headers = _signed_headers(method, path, body)
    fields = b"".join(chunk(headers[name]) for name in HEADERS)
    return [
        b"\x00" + chunk(method) + chunk(path) + fields + body,
        b"\x05" + chunk(method) + chunk(path) + chunk("12345") + fields + body,
    ]


SEEDS: dict[str, Callable[[World], list[bytes]]] = {
    "client_frames": client_frames,
    "shared_sends": shared_sends,
    "node_session": node_session,
    "ws_upgrade": ws_upgrade,
    "ws_frames": ws_frames,
    "blob_request": blob_request,
    "node_frames": node_frames,
    "sealed_envelope": sealed_envelope,
    "sender_certificate": sender_certificate,
    "prekey_bundle": prekey_bundle,
    "key_document_client": key_documents,
    "group_change": group_change,
    "group_message": group_message,
    "attachment_chunks": attachment_chunks,
    "saved_records": saved_records,
    "routing_layer": routing_layer,
    "transaction": transaction,
    "request_signature": request_signature,
    "key_document": key_documents,
    "media_datagram": seeds_calls.media_datagram,
    "call_signal": seeds_calls.call_signal,
    "call_note": seeds_calls.call_note,
    "peer_link": seeds_calls.peer_link,
    "call_relay": seeds_calls.call_relay,
    "media_link": seeds_links.media_link,
    "link_bridges": seeds_links.link_bridges,
}


def seeds(target: str) -> list[bytes]:
    return SEEDS[target](world())
