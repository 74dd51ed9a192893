"""Seed inputs of the call targets (``tests.fuzz.targets.calls``) and the version 2 key
documents (with a QUIC endpoint, ``trust.media``) of the key document targets: valid
encodings made with the project's own encoders, and a few near misses each (one field
off), so the fuzzer starts on both sides of each rule. Registered in
``tests.fuzz.seeds.SEEDS``."""

from __future__ import annotations

from dataclasses import fields

from client.content import CallNote, Content, pack, pack_call
from tests.fuzz.targets.calls import (
    ACCEPTER_PIN,
    AS_BYTEARRAY,
    CHALLENGE,
    CONNS,
    LINK,
    PENDING_LINK,
    _signed_proof,
    call_senders,
)
from tests.fuzz.targets.client import _signed_document
from tests.fuzz.world import DOMAIN, NOW_MS, OTHER_DOMAIN, World, seeded
from trust.peerlink import proof_body
from wire import encode
from wire.calls import (
    CallAnswer,
    CallBusy,
    CallHangup,
    CallKeyUpdate,
    CallOffer,
    CallReject,
    CallRinging,
    CallSignal,
    LegRef,
    RejectReason,
)
from wire.media import (
    MAX_DATAGRAM,
    MediaHeader,
    MediaKind,
    StreamId,
    encode_datagram,
    signature_header,
)
from wire.server import LinkChallenge, ServerKeyDocumentBodyV2, ServerMedia

CALL_ID = bytes(range(32, 48))
TOKEN = b"t" * 16
MAILBOX = bytes(range(16, 32))
QUIC_PORT = 4433
QUIC_PIN = seeded("quic-pin", 32)


def _datagram(sender: int, payload: bytes = b"sframe ciphertext", *, video: bool = False) -> bytes:
    if video:
        stream = StreamId(sender, MediaKind.VIDEO, 2)
        header = MediaHeader(stream, 9, 3, 120, 1, 3)
    else:
        stream = StreamId(sender, MediaKind.AUDIO)
        header = MediaHeader(stream, 41, 0, 41, 0, 1, keyframe=True, audio_level=30, voice=True)
    return encode_datagram(header, payload)


def media_datagram(w: World) -> list[bytes]:
    audio = _datagram(7)
    return [
        audio,
        _datagram(0xFFFF_FFFF, b"v" * 200, video=True),
        audio[:21],  # a header without payload
        bytes([0x21]) + audio[1:],  # version 2
        audio[:1] + bytes([audio[1] | 0x01]) + audio[2:],  # a reserved flag bit
        audio[:1] + bytes([0x00]) + audio[2:],  # object 0 but not a keyframe
        audio + bytes(MAX_DATAGRAM),  # too large
        encode_datagram(signature_header(StreamId(7, MediaKind.AUDIO), 3, 0, 2), b"s" * 300),
    ]


def _signals() -> list[CallSignal]:
    offer = CallOffer(CALL_ID, bytes(range(32)), True, NOW_MS, NOW_MS + 60_000)
    return [
        offer,
        CallRinging(CALL_ID),
        CallAnswer(CALL_ID, LegRef(OTHER_DOMAIN, bytes(16))),
        CallReject(CALL_ID, RejectReason.UNAVAILABLE),
        CallBusy(CALL_ID),
        CallHangup(CALL_ID),
        CallKeyUpdate(CALL_ID, 3),
    ]


def call_signal(w: World) -> list[bytes]:
    signals = [encode(s) for s in _signals()]
    return [*signals, signals[0][:-1]]  # and an offer cut short


def call_note(w: World) -> list[bytes]:
    offer, *_, hangup, _ = _signals()
    content = Content("hello", NOW_MS, TOKEN, MAILBOX, None, ())
    note = pack_call(CallNote(offer, TOKEN, MAILBOX))
    return [
        note,
        pack_call(CallNote(hangup, None, None)),
        pack(content),
        note[:-3],
    ]


def key_documents_v2(w: World) -> list[bytes]:
    """Mode 0 documents and mode 1 bodies of version 2: valid, a port of 0, a short pin."""
    v1 = w.doc.body
    values = {f.name: getattr(v1, f.name) for f in fields(v1)}
    body = ServerKeyDocumentBodyV2(**values, media=ServerMedia(QUIC_PORT, QUIC_PIN))
    no_port = ServerKeyDocumentBodyV2(**values, media=ServerMedia(0, QUIC_PIN))
    short_pin = ServerKeyDocumentBodyV2(**values, media=ServerMedia(QUIC_PORT, QUIC_PIN[:31]))
    return [
        b"\x00" + _signed_document(encode(body)),
        b"\x01" + encode(body),
        b"\x00" + _signed_document(encode(no_port)),
        b"\x01" + encode(short_pin),
    ]


def peer_link(w: World) -> list[bytes]:
    """Mode 0 proofs, mode 1 proof bodies, mode 2 challenges: valid and near misses."""
    body = proof_body(CHALLENGE, ACCEPTER_PIN, DOMAIN, OTHER_DOMAIN)
    other_pin = proof_body(CHALLENGE, bytes(32), DOMAIN, OTHER_DOMAIN)
    other_target = proof_body(CHALLENGE, ACCEPTER_PIN, DOMAIN, "third.example")
    challenge = encode(LinkChallenge(CHALLENGE))
    return [
        b"\x00" + _signed_proof(encode(body)),
        b"\x01" + encode(body),
        b"\x02" + challenge,
        b"\x00" + _signed_proof(encode(other_target)),
        b"\x01" + encode(other_pin),
        b"\x02" + challenge[:-1],
    ]


def _step(conn: str, datagram: bytes, *, seconds: int = 0, as_bytearray: bool = False) -> bytes:
    pick = CONNS.index(conn) | (AS_BYTEARRAY if as_bytearray else 0)
    return bytes([pick, seconds, len(datagram)]) + datagram


def call_relay(w: World) -> list[bytes]:
    """Datagrams along every bridge; then every kind of drop; then an idle leg expiring."""
    s = call_senders()
    along = [
        _step("alice", _datagram(s["alice"])),
        _step("bob", _datagram(s["bob"], video=True), as_bytearray=True),
        _step("carol", _datagram(s["carol"])),
        _step(LINK, _datagram(s[LINK], video=True)),
        _step(PENDING_LINK, _datagram(s[PENDING_LINK])),
    ]
    drops = [
        _step("erin", _datagram(s["erin"])),  # bridged to a leg not bound
        _step("frank", _datagram(s["frank"])),  # the peer node has not joined
        _step("stranger", _datagram(s["alice"])),  # no leg on that connection
        _step("alice", _datagram(s["bob"])),  # another connection's stream
        _step("alice", _datagram(s["alice"])[:21]),  # malformed
    ]
    idle = [_step("alice", _datagram(s["alice"])), _step("bob", _datagram(s["bob"]), seconds=40)]
    return [b"".join(along), b"".join(drops), b"".join(idle)]
