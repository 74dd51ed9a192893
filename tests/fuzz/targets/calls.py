"""Fuzz targets for what calls read (DESIGN section 9, issue 17): a media datagram's clear
header, call signals and the call notes that carry them, a node-to-node link proof, and
the node's per-datagram forwarding decision.

The link proof has a second mode, as the signature-guarded targets of
``tests.fuzz.targets.client`` do: the input is taken as the signed ``LinkProofBody`` and
signed with the world's real server key, as a peer node holding its own key can.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cache

from client.content import CallNote, unpack_call, unpack_pairwise
from client.errors import ClientError
from node.calls import CallRelay, Drop, Forward
from node.calls.legs import pack_sender
from suites import labels
from tests.fuzz.cursor import Cursor
from tests.fuzz.targets.base import Target, refusing
from tests.fuzz.world import DOMAIN, NOW_MS, OTHER_DOMAIN, seeded, world
from trust import peerlink
from trust.errors import LinkRefused
from wire import WireError, decode, encode
from wire.calls import decode_signal
from wire.media import (
    HEADER_SIZE,
    MAX_PAYLOAD,
    TYPE_MEDIA,
    decode_datagram,
    frame_metadata,
    peek_route,
    peek_sender,
    replace_sender,
)
from wire.server import LinkProof, LinkProofBody

CHALLENGE = seeded("link-challenge", peerlink.CHALLENGE_SIZE)
"""The challenge the accepting node (``OTHER_DOMAIN``) sent."""
ACCEPTER_PIN = seeded("link-pin", 32)
"""The accepting node's QUIC pin, as it knows it and as the connecting node pinned it."""
PROOF_DELAY_MS = 1_000
"""When the proof arrives after the challenge (within ``PROOF_WINDOW_MS``)."""

FAR_CHANNEL = 0x0A0B0C0D
"""The channel the peer node chose for the datagrams this node sends it."""
MAX_STEPS = 16
"""Most datagrams one input feeds the relay."""
STEP_MS = 1_000
"""A step's time byte advances the clock by that many times this (so legs can expire)."""
AS_BYTEARRAY = 0x80
"""A step's connection byte with this bit hands the datagram over as a ``bytearray``."""


def media_datagram(data: bytes) -> None:
    """``wire.media.decode_datagram``: what it accepts encodes back to the same bytes; the
    forwarding fast path (``peek_route`` of bytes; ``peek_sender`` of a bytearray, media
    datagrams only) accepts exactly what it accepts, with the same values, and
    ``replace_sender`` moves only the sender."""
    route = peek_route(data)
    media = route is not None and route[6] == TYPE_MEDIA  # a 1:1 relay forwards frames only
    assert peek_sender(bytearray(data)) == (route[0] if route is not None and media else None)
    header = None
    with refusing(WireError):
        header, payload = decode_datagram(data)
        assert 0 < len(payload) <= MAX_PAYLOAD
        assert header.encode() + payload == data, "a datagram the node accepts is canonical"
        assert len(frame_metadata(header)) < HEADER_SIZE
    assert (route is None) == (header is None), "the fast path and decode_datagram disagree"
    if header is not None:
        s = header.stream
        assert route == (
            s.sender,
            s.kind,
            s.layer,
            header.keyframe,
            header.audio_level,
            header.voice,
            header.datagram_type,
        )
        moved = replace_sender(memoryview(data), pack_sender(FAR_CHANNEL))
        assert decode_datagram(moved)[0] == replace(header, stream=replace(s, sender=FAR_CHANNEL))


def call_signal(data: bytes) -> None:
    """``wire.calls.decode_signal`` (every signal type)."""
    with refusing(WireError):
        signal = decode_signal(data)
        assert encode(signal) == data
        assert len(signal.call_id) == 16


def call_note(data: bytes) -> None:
    """``client.content.unpack_pairwise`` and ``unpack_call``: what a client makes of a
    decrypted pairwise plaintext; the two agree on a call note."""
    note = None
    with refusing(ClientError):
        note = unpack_call(data)
        assert encode(note) == data
    with refusing(ClientError):
        payload = unpack_pairwise(data)
        assert (note is not None) == isinstance(payload, CallNote)
        assert note is None or payload == note


def peer_link(data: bytes) -> None:
    """``trust.peerlink``: mode 0 ``read_proof`` and ``Challenge.check`` against the
    origin's real key document; mode 1 the input as the ``LinkProofBody``, signed with the
    origin's real key; mode 2 the input as the challenge the connecting node answers
    (``prove``)."""
    w = world()
    cursor = Cursor(data)
    mode, rest = cursor.byte() % 3, cursor.rest()
    if mode == 2:
        with refusing(LinkRefused):
            proof = read_proof_of(rest)
            assert proof.origin == DOMAIN
        return
    signed = None
    if mode == 1:
        with refusing(WireError):
            signed = decode(rest, LinkProofBody)
            rest = _signed_proof(rest)
    challenge = peerlink.issue(CHALLENGE, OTHER_DOMAIN, ACCEPTER_PIN, NOW_MS)
    with refusing(LinkRefused):
        proof = peerlink.read_proof(rest)
        assert encode(proof) == rest
        origin = challenge.check(proof, w.doc, NOW_MS + PROOF_DELAY_MS)
        assert origin == DOMAIN, "only the world's own domain holds a key of its document"
        if signed is not None:
            expected = peerlink.proof_body(CHALLENGE, ACCEPTER_PIN, DOMAIN, OTHER_DOMAIN)
            assert signed == expected, "a proof of another body checks out"


def read_proof_of(challenge: bytes) -> LinkProof:
    """The world's server answering ``challenge`` from ``OTHER_DOMAIN``, read back."""
    w = world()
    server = w.server
    proof = peerlink.prove(
        challenge,
        origin=DOMAIN,
        target=OTHER_DOMAIN,
        target_pin=ACCEPTER_PIN,
        suite=w.suite,
        sig_key=server.sig_key,
        key_id=server.sig_key_id,
    )
    return peerlink.read_proof(proof)


def _signed_proof(body_bytes: bytes) -> bytes:
    """The proof of this body, signed by the world's server key (as the origin's own)."""
    w = world()
    body = decode(body_bytes, LinkProofBody)
    sig = w.suite.sig.sign(w.server.sig_key, body_bytes, labels.CTX_PEER_LINK)
    return encode(LinkProof(body.origin, w.server.sig_key_id, sig))


class _Draws:
    """Deterministic randomness for the relay: the n-th draw is a fixed function of n."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, size: int) -> bytes:
        self.count += 1
        return seeded(f"relay/{self.count}", size)


@dataclass(frozen=True)
class Calls:
    """A relay holding every kind of leg, and the media connections the fuzzer picks from
    (``conns``): a bridge of two bound client legs (alice, bob), a client leg bridged to a
    peer node over ``link`` (carol), a client leg bridged to an unbound one (erin), one
    waiting for the peer node to join (frank: what comes from the peer node over
    ``frank-link`` reaches frank, nothing goes back yet), and a connection bound to
    nothing."""

    relay: CallRelay
    conns: tuple[str, ...]
    senders: dict[str, int]
    """The sender id bound to each connection (on ``link``: this node's channel)."""
    routes: dict[str, str]
    """Where a forwarded datagram from each connection goes."""


LINK = "link"
PENDING_LINK = "frank-link"
CONNS = ("alice", "bob", "carol", LINK, "erin", "frank", PENDING_LINK, "stranger")


def calls() -> Calls:
    """A fresh :class:`Calls` (the relay's state changes with each datagram)."""
    relay = CallRelay(_Draws())
    now = NOW_MS
    legs = {name: relay.allocate(name, now) for name in ("alice", "bob", "carol", "dave")}
    legs |= {name: relay.allocate(name, now) for name in ("erin", "frank")}
    senders = {
        name: relay.bind(name, legs[name].leg_id, legs[name].leg_secret, now).sender
        for name in ("alice", "bob", "carol", "erin", "frank")
    }
    relay.join(legs["alice"].leg_id, legs["bob"].leg_id, now)
    relay.join(legs["erin"].leg_id, legs["dave"].leg_id, now)
    senders[LINK] = relay.bridge_remote(legs["carol"].leg_id, LINK, OTHER_DOMAIN, now)
    relay.remote_joined(LINK, senders[LINK], FAR_CHANNEL)
    senders[PENDING_LINK] = relay.bridge_remote(
        legs["frank"].leg_id, PENDING_LINK, OTHER_DOMAIN, now
    )
    routes = {"alice": "bob", "bob": "alice", "carol": LINK, LINK: "carol"}
    routes[PENDING_LINK] = "frank"
    return Calls(relay, CONNS, senders, routes)


@cache
def call_senders() -> dict[str, int]:
    """The sender ids of :func:`calls` (the same in every relay it builds), for seeds."""
    return calls().senders


def call_relay(data: bytes) -> None:
    """``node.calls.CallRelay.on_datagram`` over up to :data:`MAX_STEPS` datagrams, each
    a connection byte, a time byte and a chunk: it never raises, forwards only along a
    bridge, rewrites only the sender towards a peer node, and counts every datagram."""
    c = calls()
    cursor = Cursor(data)
    now, steps = NOW_MS, 0
    while cursor.at < len(data) and steps < MAX_STEPS:
        pick, now = cursor.byte(), now + cursor.byte() * STEP_MS
        conn, datagram = c.conns[pick % len(c.conns)], cursor.chunk()
        given = bytearray(datagram) if pick & AS_BYTEARRAY else datagram
        decision = c.relay.on_datagram(conn, given, now)  # type: ignore[arg-type]  # a buffer
        steps += 1
        _check_decision(c, conn, datagram, decision)
    stats = c.relay.stats()
    assert stats.forwarded + sum(stats.drops.values()) == steps


def _check_decision(c: Calls, conn: str, datagram: bytes, decision: Forward | Drop) -> None:
    if isinstance(decision, Drop):
        return
    assert isinstance(decision, Forward)
    assert decision.dest == c.routes.get(conn), "forwarded off the bridge"
    assert type(decision.data) is bytes
    if decision.dest == LINK:
        expected = datagram[:3] + pack_sender(FAR_CHANNEL) + datagram[7:]
        assert decision.data == expected, "only the sender is rewritten towards a peer node"
    else:
        assert decision.data == datagram, "a datagram to a client leaves as it came"
    header, _ = decode_datagram(decision.data)
    assert header.stream.sender in (c.senders[conn], FAR_CHANNEL)


TARGETS = (
    Target(
        "media_datagram",
        "wire.media.decode_datagram",
        "wire.WireError",
        media_datagram,
        max_len=2048,
    ),
    Target(
        "call_signal",
        "wire.calls.decode_signal",
        "wire.WireError",
        call_signal,
        max_len=1024,
    ),
    Target(
        "call_note",
        "client.content.unpack_pairwise / unpack_call",
        "client.errors.ClientError (BadContent)",
        call_note,
        max_len=4096,
    ),
    Target(
        "peer_link",
        "trust.peerlink.read_proof / Challenge.check / prove",
        "trust.errors.LinkRefused",
        peer_link,
        max_len=8192,
    ),
    Target(
        "call_relay",
        "node.calls.CallRelay.on_datagram",
        "nothing (Drop decisions)",
        call_relay,
        max_len=8192,
    ),
)
