"""SFrame (RFC 9605): end-to-end encryption of media frames, as a pure (sans-I/O) module.

What is where, by RFC 9605 section:

* 4.3 header: :func:`encode_header`, :func:`decode_header` (config byte ``X|K|Y|C``, then the
  KID and CTR as minimal big-endian integers of up to 8 bytes when they are 8 or more).
* 4.4.2 key derivation: :func:`derive_key_salt` (HKDF with the labels
  :data:`suites.labels.SFRAME_KEY_LABEL` / :data:`~suites.labels.SFRAME_SALT_LABEL`, the KID as
  8 bytes and the cipher suite id as 2 bytes).
* 4.4.3 / 4.4.4 encryption and decryption: :func:`encrypt`, :func:`decrypt` (nonce = salt
  XOR CTR, AAD = header || metadata, output = header || AEAD ciphertext).
* 4.5 cipher suites 1..5, and 4.5.1 the AES-CTR + HMAC AEAD: :func:`aead_seal`,
  :func:`aead_open`.
* Appendix A (example API): :class:`SFrameContext`, which holds send and receive keys,
  assigns counters and refuses to reuse one (section 9.1 "Header Value Uniqueness"), with
  an optional anti-replay hook (section 9.3; :class:`ReplayWindow` is an RFC 3711
  section 3.3.2 style sliding window).

Errors: every protocol or usage problem raises a subclass of :class:`SFrameError` (with a
stable ``code``); a frame that does not authenticate raises
:class:`suites.errors.DecryptionFailed`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, NamedTuple, Protocol

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from suites import labels
from suites.aead import Aead
from suites.errors import DecryptionFailed, SuiteError
from suites.kdf import Kdf, constant_time_equal

MAX_VALUE: Final = (1 << 64) - 1
"""KID and CTR are unsigned 64-bit integers (section 4.3)."""

_KID_LEN: Final = 8  # section 4.4.2: the KID in the labels is 8 bytes
_SUITE_ID_LEN: Final = 2  # section 4.4.2: the cipher suite id is 2 bytes
_CTR_BLOCK_SUFFIX: Final = bytes(4)  # section 4.5.1: initial counter = nonce || 0x00000000
_AES_BLOCK: Final = 16
_MAX_CTR_PLAINTEXT: Final = (1 << 32) * _AES_BLOCK  # the 32-bit block counter must not wrap


# --- errors ---------------------------------------------------------------------------------


class SFrameError(SuiteError):
    """Base of every SFrame error except authentication failure (``DecryptionFailed``)."""

    code = "sframe.error"


class HeaderError(SFrameError):
    """A header that is truncated or not minimally encoded, or a KID/CTR out of range."""

    code = "sframe.bad_header"


class UnknownKidError(SFrameError):
    """No key for this KID; RFC 9605 4.4.4 allows buffering the frame until one arrives."""

    code = "sframe.unknown_kid"


class KeyUsageError(SFrameError):
    """A send key used to receive or the other way round, or a KID added twice."""

    code = "sframe.key_usage"


class CounterError(SFrameError):
    """A CTR that was already used with this key, or an exhausted counter."""

    code = "sframe.counter"


class ReplayError(SFrameError):
    """The replay guard has already accepted this (KID, CTR)."""

    code = "sframe.replay"


class CipherSuiteError(SFrameError):
    """A cipher suite id this module does not implement."""

    code = "sframe.unsupported_cipher_suite"


# --- cipher suites (section 4.5, IANA registry of section 8.1) -------------------------------


@dataclass(frozen=True)
class CipherSuite:
    """One SFrame cipher suite; sizes in bytes as in RFC 9605 Table 2.

    ``nk`` key, ``nn`` nonce, ``nt`` tag, ``nh`` hash output, ``nka`` the AES key inside
    the AES-CTR + HMAC AEAD (``None`` for the AES-GCM suites).
    """

    suite_id: int
    name: str
    hash_name: str
    nh: int
    nk: int
    nt: int
    nka: int | None
    nn: int = 12


AES_128_CTR_HMAC_SHA256_80: Final = CipherSuite(
    1, "AES_128_CTR_HMAC_SHA256_80", "sha256", 32, 48, 10, 16
)
AES_128_CTR_HMAC_SHA256_64: Final = CipherSuite(
    2, "AES_128_CTR_HMAC_SHA256_64", "sha256", 32, 48, 8, 16
)
AES_128_CTR_HMAC_SHA256_32: Final = CipherSuite(
    3, "AES_128_CTR_HMAC_SHA256_32", "sha256", 32, 48, 4, 16
)
AES_128_GCM_SHA256_128: Final = CipherSuite(4, "AES_128_GCM_SHA256_128", "sha256", 32, 16, 16, None)
AES_256_GCM_SHA512_128: Final = CipherSuite(5, "AES_256_GCM_SHA512_128", "sha512", 64, 32, 16, None)

CIPHER_SUITES: Final = {
    cs.suite_id: cs
    for cs in (
        AES_128_CTR_HMAC_SHA256_80,
        AES_128_CTR_HMAC_SHA256_64,
        AES_128_CTR_HMAC_SHA256_32,
        AES_128_GCM_SHA256_128,
        AES_256_GCM_SHA512_128,
    )
}


def cipher_suite(suite_id: int) -> CipherSuite:
    """The suite with IANA id ``suite_id``; :class:`CipherSuiteError` if not implemented."""
    try:
        return CIPHER_SUITES[suite_id]
    except (KeyError, TypeError):
        raise CipherSuiteError(f"unsupported SFrame cipher suite {suite_id!r}") from None


# --- header (section 4.3) ---------------------------------------------------------------------


class Header(NamedTuple):
    """A decoded SFrame header; ``encoded`` is its exact bytes (part of the AAD)."""

    kid: int
    ctr: int
    encoded: bytes


def _check_u64(value: int, what: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_VALUE:
        raise HeaderError(f"{what} must be an integer in 0..2^64-1")


def _encode_field(value: int) -> tuple[int, bytes]:
    """(4-bit nibble ``flag|3 bits``, trailing bytes) for one header value."""
    if value < 8:
        return value, b""
    length = (value.bit_length() + 7) // 8
    return 0x8 | (length - 1), value.to_bytes(length, "big")


def encode_header(kid: int, ctr: int) -> bytes:
    """The SFrame header for ``kid`` and ``ctr`` (1 to 17 bytes), minimally encoded."""
    _check_u64(kid, "KID")
    _check_u64(ctr, "CTR")
    kid_nibble, kid_bytes = _encode_field(kid)
    ctr_nibble, ctr_bytes = _encode_field(ctr)
    return bytes([kid_nibble << 4 | ctr_nibble]) + kid_bytes + ctr_bytes


def _decode_field(data: bytes, pos: int, nibble: int) -> tuple[int, int]:
    """(value, next position) for one header value whose config nibble is ``nibble``."""
    if not nibble & 0x8:
        return nibble, pos
    length = (nibble & 0x7) + 1
    raw = data[pos : pos + length]
    if len(raw) != length:
        raise HeaderError("truncated SFrame header")
    value = int.from_bytes(raw, "big")
    if value < 8 or raw[0] == 0:
        raise HeaderError("SFrame header value not minimally encoded")
    return value, pos + length


def decode_header(data: bytes) -> Header:
    """Parse the header at the start of ``data``; raises only :class:`HeaderError`.

    Non-minimal encodings (a value below 8 in extended form, or a leading zero byte) are
    refused, so each (KID, CTR) has exactly one header.
    """
    if not isinstance(data, bytes | bytearray | memoryview) or len(data) == 0:
        raise HeaderError("empty SFrame header")
    data = bytes(data)
    config = data[0]
    kid, pos = _decode_field(data, 1, config >> 4)
    ctr, pos = _decode_field(data, pos, config & 0xF)
    return Header(kid, ctr, data[:pos])


# --- key derivation (section 4.4.2) ------------------------------------------------------------


def derive_key_salt(suite: CipherSuite, kid: int, base_key: bytes) -> tuple[bytes, bytes]:
    """``(sframe_key, sframe_salt)`` of ``nk`` and ``nn`` bytes for ``kid``'s ``base_key``."""
    _check_u64(kid, "KID")
    kdf = Kdf(suite.hash_name)
    secret = kdf.extract(b"", base_key)
    suffix = kid.to_bytes(_KID_LEN, "big") + suite.suite_id.to_bytes(_SUITE_ID_LEN, "big")
    key = kdf.expand(secret, labels.SFRAME_KEY_LABEL + suffix, suite.nk)
    salt = kdf.expand(secret, labels.SFRAME_SALT_LABEL + suffix, suite.nn)
    return key, salt


def make_nonce(salt: bytes, ctr: int) -> bytes:
    """salt XOR CTR, the CTR as an ``len(salt)``-byte big-endian integer (section 4.4.3)."""
    _check_u64(ctr, "CTR")
    value = int.from_bytes(salt, "big") ^ ctr
    return value.to_bytes(len(salt), "big")


# --- AEAD (section 4.5; 4.5.1 for AES-CTR + HMAC) ---------------------------------------------


def _ctr_hmac_tag(
    suite: CipherSuite, auth_key: bytes, nonce: bytes, aad: bytes, ct: bytes
) -> bytes:
    """compute_tag of section 4.5.1, truncated to ``nt`` bytes."""
    auth_data = b"".join(
        (
            len(aad).to_bytes(8, "big"),
            len(ct).to_bytes(8, "big"),
            suite.nt.to_bytes(8, "big"),
            nonce,
            aad,
            ct,
        )
    )
    return Kdf(suite.hash_name).hmac(auth_key, auth_data)[: suite.nt]


def _aes_ctr(enc_key: bytes, nonce: bytes, data: bytes) -> bytes:
    if len(data) > _MAX_CTR_PLAINTEXT:
        raise SFrameError("frame too long for AES-CTR")
    ctx = Cipher(algorithms.AES(enc_key), modes.CTR(nonce + _CTR_BLOCK_SUFFIX)).encryptor()
    return ctx.update(data) + ctx.finalize()


def _gcm(suite: CipherSuite) -> Aead:
    return Aead("aes-128-gcm" if suite.nk == 16 else "aes-256-gcm")


def _check_key_nonce(suite: CipherSuite, key: bytes, nonce: bytes) -> None:
    if len(key) != suite.nk or len(nonce) != suite.nn:
        raise SFrameError(f"{suite.name} needs a {suite.nk}-byte key and {suite.nn}-byte nonce")


def aead_seal(suite: CipherSuite, key: bytes, nonce: bytes, aad: bytes, pt: bytes) -> bytes:
    """AEAD.Encrypt(key, nonce, aad, pt): ciphertext || tag (``nt`` bytes)."""
    _check_key_nonce(suite, key, nonce)
    if suite.nka is None:
        return _gcm(suite).seal(key, nonce, pt, aad)
    enc_key, auth_key = key[: suite.nka], key[suite.nka :]
    ct = _aes_ctr(enc_key, nonce, pt)
    return ct + _ctr_hmac_tag(suite, auth_key, nonce, aad, ct)


def aead_open(suite: CipherSuite, key: bytes, nonce: bytes, aad: bytes, ct: bytes) -> bytes:
    """AEAD.Decrypt; raises :class:`DecryptionFailed` unless the tag verifies."""
    _check_key_nonce(suite, key, nonce)
    if suite.nka is None:
        return _gcm(suite).open(key, nonce, ct, aad)
    if len(ct) < suite.nt:
        raise DecryptionFailed()
    inner, tag = ct[: -suite.nt], ct[-suite.nt :]
    enc_key, auth_key = key[: suite.nka], key[suite.nka :]
    if not constant_time_equal(tag, _ctr_hmac_tag(suite, auth_key, nonce, aad, inner)):
        raise DecryptionFailed()
    return _aes_ctr(enc_key, nonce, inner)


# --- frames (sections 4.4.3 and 4.4.4) ----------------------------------------------------------


def encrypt(
    suite: CipherSuite, key: bytes, salt: bytes, kid: int, ctr: int, metadata: bytes, pt: bytes
) -> bytes:
    """An SFrame ciphertext: header || AEAD.Encrypt(key, salt XOR ctr, header || metadata, pt).

    The caller guarantees that (key, ``ctr``) is never used twice; :class:`SFrameContext`
    does.
    """
    header = encode_header(kid, ctr)
    return header + aead_seal(suite, key, make_nonce(salt, ctr), header + metadata, pt)


def decrypt(
    suite: CipherSuite, key: bytes, salt: bytes, header: Header, frame: bytes, metadata: bytes
) -> bytes:
    """The plaintext of ``frame`` (which starts with ``header``), or :class:`DecryptionFailed`."""
    ct = frame[len(header.encoded) :]
    return aead_open(suite, key, make_nonce(salt, header.ctr), header.encoded + metadata, ct)


# --- context (Appendix A) -----------------------------------------------------------------------


class ReplayGuard(Protocol):
    """Optional receiver anti-replay hook (RFC 9605 section 9.3)."""

    def check(self, kid: int, ctr: int) -> bool:
        """True if a frame with (``kid``, ``ctr``) may still be accepted."""
        ...

    def accept(self, kid: int, ctr: int) -> None:
        """Record (``kid``, ``ctr``); called only after the frame authenticated."""
        ...


class ReplayWindow:
    """A per-KID sliding window of ``size`` counters (RFC 3711 section 3.3.2 style).

    A CTR is refused if it was seen, or if it is ``size`` or more below the highest seen.
    """

    def __init__(self, size: int = 128) -> None:
        if size < 1:
            raise ValueError("replay window size must be positive")
        self.size = size
        self._state: dict[int, tuple[int, int]] = {}  # kid -> (highest ctr, seen bitmap)

    def check(self, kid: int, ctr: int) -> bool:
        if kid not in self._state:
            return True
        highest, bitmap = self._state[kid]
        if ctr > highest:
            return True
        offset = highest - ctr
        return offset < self.size and not (bitmap >> offset) & 1

    def accept(self, kid: int, ctr: int) -> None:
        highest, bitmap = self._state.get(kid, (ctr, 0))
        if ctr > highest:
            bitmap <<= ctr - highest
            highest = ctr
        bitmap = (bitmap | 1 << (highest - ctr)) & ((1 << self.size) - 1)
        self._state[kid] = (highest, bitmap)


@dataclass
class _SendKey:
    key: bytes
    salt: bytes
    next_ctr: int


@dataclass(frozen=True)
class _RecvKey:
    key: bytes
    salt: bytes


class SFrameContext:
    """Send and receive keys of one cipher suite, by KID (RFC 9605 Appendix A).

    Pure: no I/O, clock or randomness. A KID is either a send key or a receive key, never
    both (section 4.4.1). Send counters start at 0 (or at a value restored from storage)
    and only move forward, so no (key, CTR) pair is ever used twice.
    """

    def __init__(
        self, suite: int | CipherSuite, *, replay_guard: ReplayGuard | None = None
    ) -> None:
        self.suite = suite if isinstance(suite, CipherSuite) else cipher_suite(suite)
        self._replay_guard = replay_guard
        self._send: dict[int, _SendKey] = {}
        self._recv: dict[int, _RecvKey] = {}

    def add_send_key(self, kid: int, base_key: bytes, *, next_ctr: int = 0) -> None:
        """Use ``base_key`` to send under ``kid``, from counter ``next_ctr``.

        Refuses a KID that is already a send or receive key (re-adding a send key would
        restart its counter and reuse nonces); remove it first.
        """
        self._check_new(kid)
        _check_u64(next_ctr, "CTR")
        key, salt = derive_key_salt(self.suite, kid, base_key)
        self._send[kid] = _SendKey(key, salt, next_ctr)

    def add_recv_key(self, kid: int, base_key: bytes) -> None:
        """Use ``base_key`` to receive frames with ``kid``; replaces an older receive key."""
        if kid in self._send:
            raise KeyUsageError(f"KID {kid} is a send key")
        _check_u64(kid, "KID")
        self._recv[kid] = _RecvKey(*derive_key_salt(self.suite, kid, base_key))

    def remove_key(self, kid: int) -> None:
        """Forget the send or receive key for ``kid`` (no error if there is none)."""
        self._send.pop(kid, None)
        self._recv.pop(kid, None)

    def next_ctr(self, kid: int) -> int:
        """The counter the next :meth:`protect` under ``kid`` will use (to persist it first)."""
        return self._send_key(kid).next_ctr

    def protect(
        self, kid: int, metadata: bytes, plaintext: bytes, *, ctr: int | None = None
    ) -> bytes:
        """Encrypt ``plaintext`` under send key ``kid``; returns the SFrame ciphertext.

        Without ``ctr`` the next counter is used. An explicit ``ctr`` must not be below the
        next counter (:class:`CounterError`); the counter then continues after it.
        """
        send = self._send_key(kid)
        if ctr is not None:
            _check_u64(ctr, "CTR")
        use = send.next_ctr if ctr is None else ctr
        if use < send.next_ctr or use > MAX_VALUE:
            raise CounterError(f"CTR {use} already used or exhausted for KID {kid}")
        frame = encrypt(self.suite, send.key, send.salt, kid, use, metadata, plaintext)
        send.next_ctr = use + 1
        return frame

    def unprotect(self, frame: bytes, metadata: bytes) -> tuple[int, int, bytes]:
        """``(kid, ctr, plaintext)`` of ``frame``.

        Raises :class:`HeaderError`, :class:`UnknownKidError`, :class:`KeyUsageError`,
        :class:`ReplayError` or :class:`DecryptionFailed`.
        """
        header = decode_header(frame)
        recv = self._recv.get(header.kid)
        if recv is None:
            if header.kid in self._send:
                raise KeyUsageError(f"KID {header.kid} is a send key")
            raise UnknownKidError(f"no receive key for KID {header.kid}")
        guard = self._replay_guard
        if guard is not None and not guard.check(header.kid, header.ctr):
            raise ReplayError(f"replayed frame KID {header.kid} CTR {header.ctr}")
        plaintext = decrypt(self.suite, recv.key, recv.salt, header, bytes(frame), metadata)
        if guard is not None:
            guard.accept(header.kid, header.ctr)
        return header.kid, header.ctr, plaintext

    def _check_new(self, kid: int) -> None:
        _check_u64(kid, "KID")
        if kid in self._send or kid in self._recv:
            raise KeyUsageError(f"KID {kid} already has a key")

    def _send_key(self, kid: int) -> _SendKey:
        send = self._send.get(kid)
        if send is None:
            if kid in self._recv:
                raise KeyUsageError(f"KID {kid} is a receive key")
            raise UnknownKidError(f"no send key for KID {kid}")
        return send
