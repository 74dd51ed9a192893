"""Media keys of a 1:1 call: a call secret, per-direction epoch chains, SFrame contexts.

The caller draws a random 32-byte call secret and sends it inside the post-quantum ratchet
session (DESIGN section 9). Both sides expand it, for each direction, into a chain of epoch
secrets with HKDF-SHA512 (RFC 5869, through :class:`suites.kdf.Kdf`, i.e. ``cryptography``'s
HKDF) and the labels of :mod:`suites.labels`::

    chain_0     = HKDF(call secret, info = CALL_DIRECTION_INFO || direction)
    chain_n+1   = HKDF(chain_n,     info = CALL_NEXT_EPOCH_INFO)
    base_key_n  = HKDF(chain_n,     info = CALL_SFRAME_BASE_INFO)      (64 bytes)

``base_key_n`` is the RFC 9605 section 4.4.2 ``base_key`` of KID :func:`kid` (epoch, direction)
under ``AES_256_GCM_SHA512_128``; :mod:`suites.sframe` derives the SFrame key and salt from it
and does all encryption. A sender moves to the next epoch every :data:`REKEY_INTERVAL` seconds
of its own clock and forgets the previous chain secret, so a key taken later does not open
earlier media. A receiver follows when a frame of a newer epoch authenticates, and keeps the
previous epoch's key for :data:`EPOCH_GRACE` seconds for frames still in flight.

Pure: the clock (``now``, seconds) and the randomness (``random_bytes``) are parameters.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Final, Protocol

from client.calls.errors import MediaKeyError
from suites import labels, sframe
from suites.kdf import Kdf
from wire.calls import CALL_SECRET_LEN

BASE_KEY_LEN: Final = 64
"""Bytes of each epoch's SFrame base key and chain secret (SHA-512 output, Nh)."""
SUITE: Final = sframe.AES_256_GCM_SHA512_128
"""The SFrame cipher suite of calls (RFC 9605 section 4.5, id 5)."""
REKEY_INTERVAL: Final = 300.0
"""Seconds between epochs (5 minutes)."""
EPOCH_GRACE: Final = 10.0
"""Seconds a receiver keeps the previous epoch's key after moving to a newer one."""
MAX_EPOCH_SKIP: Final = 4
"""Most epochs a receiver derives ahead for one frame (bounds the work a forged KID costs)."""
REPLAY_WINDOW: Final = 1024
"""Counters of the SFrame anti-replay window (RFC 9605 section 9.3), per KID."""

_HKDF: Final = Kdf("sha512")


class Direction(IntEnum):
    """Which way media flows; the low bit of every KID."""

    CALLER_TO_CALLEE = 0
    CALLEE_TO_CALLER = 1

    @property
    def reverse(self) -> Direction:
        """The other direction."""
        return Direction(1 - self)


def kid(epoch: int, direction: Direction) -> int:
    """The SFrame KID of ``direction``'s keys in ``epoch``: ``epoch * 2 + direction``."""
    if epoch < 0:
        raise MediaKeyError("epoch must not be negative")
    return epoch << 1 | direction


def kid_epoch(key_id: int) -> int:
    """The epoch of a KID made by :func:`kid`."""
    return key_id >> 1


def kid_direction(key_id: int) -> Direction:
    """The direction of a KID made by :func:`kid`."""
    return Direction(key_id & 1)


class FrameCrypto(Protocol):
    """What the packetizer and the receiver need of a frame cipher: :class:`MediaCrypto`
    here, and the meetings' per-participant keys (``client.meetings.framing``)."""

    def protect(self, metadata: bytes, plaintext: bytes, *, now: float) -> bytes: ...

    def unprotect(self, frame: bytes, metadata: bytes, *, now: float) -> bytes: ...


@dataclass(frozen=True)
class CallSecret:
    """The 32-byte random secret of one call; its ``repr`` shows no key material."""

    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.secret, bytes) or len(self.secret) != CALL_SECRET_LEN:
            raise MediaKeyError(f"a call secret is {CALL_SECRET_LEN} bytes")

    @classmethod
    def generate(cls, random_bytes: Callable[[int], bytes]) -> CallSecret:
        """A fresh secret from ``random_bytes`` (``os.urandom`` outside tests)."""
        return cls(random_bytes(CALL_SECRET_LEN))

    @classmethod
    def from_bytes(cls, data: bytes) -> CallSecret:
        """The secret carried in a call offer."""
        return cls(bytes(data))


def chain_start(secret: CallSecret, direction: Direction) -> bytes:
    """``chain_0`` of ``direction`` (64 bytes)."""
    info = labels.CALL_DIRECTION_INFO + bytes([direction])
    return _HKDF.derive(secret.secret, b"", info, BASE_KEY_LEN)


def next_chain(chain: bytes) -> bytes:
    """``chain_n+1`` from ``chain_n`` (64 bytes)."""
    return _HKDF.derive(chain, b"", labels.CALL_NEXT_EPOCH_INFO, BASE_KEY_LEN)


def base_key(chain: bytes) -> bytes:
    """The SFrame ``base_key`` of the epoch whose chain secret is ``chain`` (64 bytes)."""
    return _HKDF.derive(chain, b"", labels.CALL_SFRAME_BASE_INFO, BASE_KEY_LEN)


def epoch_base_key(secret: CallSecret, direction: Direction, epoch: int) -> bytes:
    """``base_key_epoch`` of ``direction`` computed from the call secret (tests, audits)."""
    chain = chain_start(secret, direction)
    for _ in range(epoch):
        chain = next_chain(chain)
    return base_key(chain)


class MediaCrypto:
    """One side's SFrame keys of a call: it sends in ``send`` and receives the reverse.

    :meth:`protect` and :meth:`unprotect` wrap :class:`suites.sframe.SFrameContext` (with a
    :class:`~suites.sframe.ReplayWindow`), adding epoch changes. ``unprotect`` raises what
    ``SFrameContext.unprotect`` raises: ``DecryptionFailed``, ``ReplayError``,
    ``UnknownKidError``, ``KeyUsageError``, ``HeaderError``.
    """

    def __init__(
        self,
        secret: CallSecret,
        send: Direction,
        *,
        now: float,
        rekey_interval: float = REKEY_INTERVAL,
        grace: float = EPOCH_GRACE,
    ) -> None:
        if rekey_interval <= 0 or grace < 0:
            raise MediaKeyError("rekey interval must be positive and grace not negative")
        self.send_direction = send
        self.recv_direction = send.reverse
        self._start = now
        self._interval = rekey_interval
        self._grace = grace
        self._ctx = sframe.SFrameContext(SUITE, replay_guard=sframe.ReplayWindow(REPLAY_WINDOW))
        self._send_epoch = 0
        self._send_chain = chain_start(secret, send)
        self._recv_epoch = 0
        self._recv_chain = chain_start(secret, self.recv_direction)
        self._retiring: dict[int, float] = {}  # receive KID -> time it is removed
        self._ctx.add_send_key(kid(0, send), base_key(self._send_chain))
        self._ctx.add_recv_key(kid(0, self.recv_direction), base_key(self._recv_chain))

    @property
    def send_epoch(self) -> int:
        """The epoch :meth:`protect` currently encrypts under."""
        return self._send_epoch

    @property
    def recv_epoch(self) -> int:
        """The newest epoch a received frame has authenticated under."""
        return self._recv_epoch

    def protect(self, metadata: bytes, plaintext: bytes, *, now: float) -> bytes:
        """The SFrame ciphertext of ``plaintext`` under the epoch current at ``now``."""
        self._advance_send(int((now - self._start) // self._interval))
        return self._ctx.protect(kid(self._send_epoch, self.send_direction), metadata, plaintext)

    def unprotect(self, frame: bytes, metadata: bytes, *, now: float) -> bytes:
        """The plaintext of an SFrame ciphertext from the peer (see the class docstring)."""
        self._expire(now)
        header = sframe.decode_header(frame)
        epoch = kid_epoch(header.kid)
        ahead = epoch - self._recv_epoch
        is_peer = kid_direction(header.kid) is self.recv_direction
        if is_peer and 0 < ahead <= MAX_EPOCH_SKIP:
            return self._unprotect_next(header.kid, ahead, frame, metadata, now)
        return self._ctx.unprotect(frame, metadata)[2]

    def _advance_send(self, epoch: int) -> None:
        if epoch <= self._send_epoch:
            return
        self._ctx.remove_key(kid(self._send_epoch, self.send_direction))
        for _ in range(epoch - self._send_epoch):
            self._send_chain = next_chain(self._send_chain)
        self._send_epoch = epoch
        self._ctx.add_send_key(kid(epoch, self.send_direction), base_key(self._send_chain))

    def _unprotect_next(
        self, key_id: int, ahead: int, frame: bytes, metadata: bytes, now: float
    ) -> bytes:
        """Try a newer epoch's key; keep it (and retire the current one) only if it opens."""
        chain = self._recv_chain
        for _ in range(ahead):
            chain = next_chain(chain)
        self._ctx.add_recv_key(key_id, base_key(chain))
        try:
            plaintext = self._ctx.unprotect(frame, metadata)[2]
        except Exception:
            self._ctx.remove_key(key_id)
            raise
        self._retiring[kid(self._recv_epoch, self.recv_direction)] = now + self._grace
        self._recv_chain = chain
        self._recv_epoch = kid_epoch(key_id)
        return plaintext

    def _expire(self, now: float) -> None:
        for key_id, until in list(self._retiring.items()):
            if now >= until:
                self._ctx.remove_key(key_id)
                del self._retiring[key_id]
