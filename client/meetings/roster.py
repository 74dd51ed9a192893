"""The signed participant list of a meeting (issue 18: "the leader signs the participant
list") and the rules a participant checks before it trusts one.

A roster body (``wire.meeting.RosterBody``) is signed by the leader's identity signing key
(the hybrid signature of the client's suite, ``suites.sig``, as for group changes) under
``CTX_MEETING_ROSTER``, over its canonical encoding. A participant accepts a new roster when

* the signature verifies under the key the roster carries, and that key's fingerprint is
  the leader's entry's;
* it names the same meeting and a later epoch than the last one accepted;
* the leader is the previous roster's leader with the same key, or, when the previous
  leader is gone, the rightful successor: the earliest-joined participant of the previous
  roster still present (the smallest pid, pids being given out in joining order), with the
  key the previous roster listed for it. The participant must itself know that the
  previous leader and everyone who joined before the successor have left (``departed``:
  their ``MeetingLeave``, or the node telling it they went), so that a participant cannot
  take over by leaving earlier ones out of its roster.

The first roster a participant sees is vouched for by the leader's pairwise
``MeetingEpochKey``; the shell checks that the session's identity key is the roster's ``key``
(:func:`check_roster` takes it as ``first_leader_key``).

The roster itself travels once for everyone (``wire.meeting.SealedRoster``, one shared
upload): the encoded ``SignedRoster`` under AES-256-GCM (``suites.aead``) with
:func:`roster_key`, derived from the epoch's secret, so that only holders of that epoch open
it; the pairwise key message carries :func:`roster_hash` of the body, which the participant
compares in constant time before it trusts the roster. Pure: the nonce is an argument.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable
from typing import Final, Protocol

from client.meetings.errors import RosterError
from suites import labels
from suites.aead import Aead
from suites.errors import DecryptionFailed
from suites.kdf import Kdf
from suites.padding import PaddingError, pad, unpad
from wire import WireError, decode, encode
from wire.meeting import MAX_SEALED_ROSTER, RosterBody, RosterEntry, SealedRoster, SignedRoster

ROSTER_KEY_LEN: Final = 32
"""Bytes of a roster key (AES-256-GCM)."""
_AEAD: Final = Aead("aes-256-gcm")
_HKDF: Final = Kdf("sha512")
_U32: Final = struct.Struct(">I")

Verify = Callable[[bytes, bytes, bytes, bytes], None]
"""``verify(public_key, message, signature, context)``: returns, or raises on a bad
signature (``suites.sig.HybridSig.verify`` of the participant's suite)."""


class Signer(Protocol):
    """What signs for a participant: ``client.identity.Identity`` is one."""

    def sign(self, message: bytes, context: bytes) -> bytes: ...


def key_fingerprint(key: bytes) -> bytes:
    """SHA-384(``MEETING_KEY_FP_INFO`` || identity signing key): a roster entry's ``fp``."""
    return hashlib.sha384(labels.MEETING_KEY_FP_INFO + key).digest()


def sign_roster(body: RosterBody, key: bytes, signer: Signer) -> SignedRoster:
    """``body`` signed by the leader (``key`` is its identity signing public key)."""
    return SignedRoster(body, key, signer.sign(encode(body), labels.CTX_MEETING_ROSTER))


def roster_hash(body: RosterBody, encoded: bytes | None = None) -> bytes:
    """SHA-384(``MEETING_ROSTER_HASH_INFO`` || encoded ``body``): what the pairwise
    ``MeetingEpochKey`` names the epoch's roster by (``encoded``: ``encode(body)`` if the
    caller has it already)."""
    data = encode(body) if encoded is None else encoded
    return hashlib.sha384(labels.MEETING_ROSTER_HASH_INFO + data).digest()


def roster_key(secret: bytes, epoch: int) -> bytes:
    """HKDF-SHA512(epoch ``secret``, info = ``MEETING_ROSTER_KEY_INFO`` || ``epoch`` u32): the
    key that seals ``epoch``'s roster (RFC 5869, no salt)."""
    info = labels.MEETING_ROSTER_KEY_INFO + _U32.pack(epoch)
    return _HKDF.derive(secret, b"", info, ROSTER_KEY_LEN)


def seal_roster(roster: SignedRoster, secret: bytes, epoch: int, nonce: bytes) -> SealedRoster:
    """``roster`` sealed for the holders of ``epoch``'s ``secret`` (``nonce``: 12 random
    bytes; the key is the epoch's own, so a nonce never meets the same key twice)."""
    c = _AEAD.seal(roster_key(secret, epoch), nonce, encode(roster), labels.MEETING_ROSTER_AAD)
    return SealedRoster(nonce, c)


def open_roster(sealed: SealedRoster, secret: bytes, epoch: int) -> SignedRoster | None:
    """The roster in ``sealed`` if it opens under ``epoch``'s ``secret``; None if it does not
    (another epoch's); :class:`RosterError` if it opens but is no roster."""
    try:
        plain = _AEAD.open(
            roster_key(secret, epoch), sealed.nonce, sealed.c, labels.MEETING_ROSTER_AAD
        )
    except DecryptionFailed:
        return None
    try:
        return decode(plain, SignedRoster, max_size=MAX_SEALED_ROSTER)
    except WireError:
        raise RosterError("a sealed roster that is no roster") from None


def sealed_body(sealed: SealedRoster) -> bytes:
    """The envelope body of a sealed roster's shared upload: padded to its bucket, like any
    envelope body (DESIGN section 3)."""
    return pad(encode(sealed))


def parse_sealed(body: bytes) -> SealedRoster | None:
    """The sealed roster an envelope body carries (:func:`sealed_body`), None if it is not
    one (a pairwise or group envelope)."""
    try:
        return decode(unpad(body), SealedRoster, max_size=MAX_SEALED_ROSTER + 1024)
    except (PaddingError, WireError):
        return None


def entry(body: RosterBody, pid: int) -> RosterEntry | None:
    """The participant ``pid`` of ``body``, if it is one."""
    for participant in body.participants:
        if participant.pid == pid:
            return participant
    return None


def successor(body: RosterBody, present: set[int]) -> int | None:
    """Who takes over from ``body``'s leader: the earliest-joined other participant of
    ``body`` that is in ``present``; None if nobody is."""
    for participant in body.participants:
        if participant.pid != body.leader and participant.pid in present:
            return participant.pid
    return None


def check_roster(
    roster: SignedRoster,
    verify: Verify,
    *,
    previous: RosterBody | None = None,
    first_leader_key: bytes | None = None,
    departed: frozenset[int] | set[int] = frozenset(),
    encoded: bytes | None = None,
) -> RosterBody:
    """The body of ``roster`` if a participant may accept it (module docstring);
    :class:`RosterError` otherwise. ``encoded``: ``encode(roster.body)`` if the caller has
    it already (the signature is over it)."""
    body = roster.body
    leader = entry(body, body.leader)
    if leader is None or leader.fp != key_fingerprint(roster.key):
        raise RosterError("the roster's key is not its leader's")
    try:
        signed = encode(body) if encoded is None else encoded
        verify(roster.key, signed, roster.sig, labels.CTX_MEETING_ROSTER)
    except Exception:
        raise RosterError("the roster's signature does not verify") from None
    if previous is None:
        if first_leader_key is None or first_leader_key != roster.key:
            raise RosterError("the first roster must come from its leader")
        return body
    _check_continuity(body, previous, leader, departed)
    return body


def _check_continuity(
    body: RosterBody, previous: RosterBody, leader: RosterEntry, departed: frozenset[int] | set[int]
) -> None:
    if body.meeting != previous.meeting:
        raise RosterError("a roster of another meeting")
    if body.epoch <= previous.epoch:
        raise RosterError("the roster's epoch does not move forward")
    if body.leader != previous.leader:
        present = {p.pid for p in body.participants}
        earlier = {p.pid for p in previous.participants if p.pid < body.leader}
        if previous.leader in present or successor(previous, present) != body.leader:
            raise RosterError("the leader is not the rightful successor")
        if not earlier | {previous.leader} <= set(departed):
            raise RosterError("the leader is not the rightful successor: earlier ones are here")
    before = entry(previous, body.leader)
    if before is None or before.fp != leader.fp:
        raise RosterError("the leader's key changed")
