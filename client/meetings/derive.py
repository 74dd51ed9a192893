"""The key derivations of a meeting's key schedule (``client.meetings.keys`` tells the
schedule and re-exports these): the ratchet of a join, each sender's SFrame base key, the
KID. HKDF-SHA512 (RFC 5869, no salt, through :class:`suites.kdf.Kdf`) with the labels of
:mod:`suites.labels`. Pure."""

from __future__ import annotations

import struct
from typing import Final

from client.meetings.errors import MeetingKeyError
from suites import labels, sframe
from suites.kdf import Kdf
from wire.meeting import EPOCH_SECRET_LEN

SUITE: Final = sframe.AES_256_GCM_SHA512_128
"""The SFrame cipher suite of meetings (RFC 9605 section 4.5, id 5)."""
BASE_KEY_LEN: Final = 64
"""Bytes of a sender's SFrame base key (SHA-512 output, Nh)."""
PID_BITS: Final = 32

_HKDF: Final = Kdf("sha512")
_U32: Final = struct.Struct(">I")


def check_secret(secret: bytes) -> bytes:
    """``secret`` if it is :data:`EPOCH_SECRET_LEN` bytes; :class:`MeetingKeyError` if not."""
    if not isinstance(secret, bytes) or len(secret) != EPOCH_SECRET_LEN:
        raise MeetingKeyError(f"an epoch secret is {EPOCH_SECRET_LEN} bytes")
    return secret


def ratchet(secret: bytes, meeting: bytes) -> bytes:
    """The next epoch's secret after a join (one-way: it does not give ``secret`` back)."""
    info = labels.MEETING_RATCHET_INFO + meeting
    return _HKDF.derive(check_secret(secret), b"", info, EPOCH_SECRET_LEN)


def sender_base_key(secret: bytes, epoch: int, pid: int) -> bytes:
    """The SFrame ``base_key`` of participant ``pid`` in ``epoch`` (64 bytes)."""
    info = labels.MEETING_SENDER_INFO + _U32.pack(epoch) + _U32.pack(pid)
    return _HKDF.derive(check_secret(secret), b"", info, BASE_KEY_LEN)


def kid(epoch: int, pid: int) -> int:
    """The SFrame KID of ``pid``'s frames in ``epoch``."""
    if not (0 <= epoch < 1 << 31 and 0 <= pid < 1 << PID_BITS):
        raise MeetingKeyError("an epoch is 0..2^31-1 and a pid 32 bits")
    return epoch << PID_BITS | pid


def kid_parts(key_id: int) -> tuple[int, int]:
    """``(epoch, pid)`` of a KID made by :func:`kid`."""
    return key_id >> PID_BITS, key_id & (1 << PID_BITS) - 1
