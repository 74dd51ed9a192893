"""Attachment encryption: authenticated 64 KiB chunks, padded, digest over the ciphertext.

Pure: the caller supplies a fresh random 32-byte key per attachment (never reused) and does
the upload and download. The key, the digest and the sizes travel inside the end-to-end
message (``client.content.AttachmentPointer``)::

    chunk_key || base_nonce = HKDF-SHA-256(key, info=ATTACHMENT_KEYS_INFO)     32 + 12 bytes
    padded   = plaintext || 0x80 || 0x00*   to padded_size(len(plaintext))
    chunk i  = AES-256-GCM(chunk_key, base_nonce XOR i, padded[i*64Ki : (i+1)*64Ki],
                           aad = ATTACHMENT_CHUNK_AAD || u64(i) || u8(final))
    ciphertext = chunk 0 || chunk 1 || ...       (every chunk but the last is 64 KiB + 16)
    digest   = SHA-256(ciphertext)

The index in nonce and associated data makes a reordered chunk fail; the final flag makes
a ciphertext cut at a chunk boundary (or extended past its end) fail. :func:`decrypt`
checks the digest before it decrypts anything, then the chunks, then the padding.

Sizes: up to 64 KiB the envelope buckets of ``suites.padding``; above, steps growing by
about 5% (rounded up to 64 KiB), so a size reveals little more than its order of magnitude.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Final

from client.errors import AttachmentError
from suites import DecryptionFailed, labels, padding
from suites.aead import Aead
from suites.kdf import Kdf, constant_time_equal

CHUNK_SIZE: Final = 64 * 1024
KEY_LEN: Final = 32
DIGEST_LEN: Final = 32
TAG_LEN: Final = 16
NONCE_LEN: Final = 12
MAX_SIZE: Final = 1 << 32
"""Largest plaintext accepted (4 GiB)."""
_GROWTH: Final = (21, 20)  # each large bucket is at least 5% above the previous one
_MARKER: Final = 0x80

_AEAD: Final = Aead("aes-256-gcm")
_KDF: Final = Kdf("sha256")


@dataclass(frozen=True)
class SealedAttachment:
    """What to upload (``ciphertext``) and what the message carries about it."""

    ciphertext: bytes
    digest: bytes
    size: int


def padded_size(size: int) -> int:
    """The padded plaintext size for ``size`` bytes (the marker needs one byte)."""
    needed = size + 1
    if needed <= CHUNK_SIZE:
        return padding.bucket_for(size)
    bucket = CHUNK_SIZE
    while bucket < needed:
        grown = -(-bucket * _GROWTH[0] // _GROWTH[1])
        bucket = -(-grown // CHUNK_SIZE) * CHUNK_SIZE
    return bucket


def cipher_size(size: int) -> int:
    """The ciphertext size for a plaintext of ``size`` bytes."""
    padded = padded_size(size)
    return padded + TAG_LEN * -(-padded // CHUNK_SIZE)


def digest_of(ciphertext: bytes) -> bytes:
    return hashlib.sha256(ciphertext).digest()


def encrypt(plaintext: bytes, key: bytes) -> SealedAttachment:
    """Pad, chunk and encrypt ``plaintext`` under the fresh ``key``."""
    if len(plaintext) > MAX_SIZE:
        raise AttachmentError("attachment too large")
    size = len(plaintext)
    padded = plaintext + bytes([_MARKER]) + bytes(padded_size(size) - size - 1)
    ciphertext = seal_chunks(key, padded)
    return SealedAttachment(ciphertext, digest_of(ciphertext), size)


def decrypt(ciphertext: bytes, key: bytes, digest: bytes, size: int) -> bytes:
    """The plaintext, after checking the digest, every chunk and the padding.

    Any failure is one :class:`AttachmentError` (which check failed is not said).
    """
    if len(digest) != DIGEST_LEN or not constant_time_equal(digest_of(ciphertext), digest):
        raise AttachmentError("attachment digest mismatch")
    if len(ciphertext) != cipher_size(size):
        raise AttachmentError("attachment does not open")
    padded = open_chunks(key, ciphertext)
    if padded[size] != _MARKER or padded[size + 1 :].count(0) != len(padded) - size - 1:
        raise AttachmentError("attachment does not open")
    return padded[:size]


def seal_chunks(key: bytes, padded: bytes) -> bytes:
    """The chunked ciphertext of ``padded`` (non-empty)."""
    chunk_key, base_nonce = _keys(key)
    count = -(-len(padded) // CHUNK_SIZE)
    out = bytearray()
    for index in range(count):
        part = padded[index * CHUNK_SIZE : (index + 1) * CHUNK_SIZE]
        final = index == count - 1
        out += _AEAD.seal(chunk_key, _nonce(base_nonce, index), part, _aad(index, final))
    return bytes(out)


def open_chunks(key: bytes, ciphertext: bytes) -> bytes:
    """The padded plaintext; :class:`AttachmentError` if any chunk fails, a chunk is
    missing at the end, or something follows the final chunk."""
    chunk_key, base_nonce = _keys(key)
    step = CHUNK_SIZE + TAG_LEN
    count = -(-len(ciphertext) // step)
    if count == 0 or len(ciphertext) - (count - 1) * step <= TAG_LEN:
        raise AttachmentError("attachment does not open")
    out = bytearray()
    try:
        for index in range(count):
            part = ciphertext[index * step : (index + 1) * step]
            final = index == count - 1
            out += _AEAD.open(chunk_key, _nonce(base_nonce, index), part, _aad(index, final))
    except DecryptionFailed:
        raise AttachmentError("attachment does not open") from None
    return bytes(out)


def _keys(key: bytes) -> tuple[bytes, bytes]:
    if len(key) != KEY_LEN:
        raise AttachmentError("an attachment key is 32 bytes")
    okm = _KDF.derive(key, b"", labels.ATTACHMENT_KEYS_INFO, KEY_LEN + NONCE_LEN)
    return okm[:KEY_LEN], okm[KEY_LEN:]


def _nonce(base: bytes, index: int) -> bytes:
    return (int.from_bytes(base, "big") ^ index).to_bytes(NONCE_LEN, "big")


def _aad(index: int, final: bool) -> bytes:
    return labels.ATTACHMENT_CHUNK_AAD + index.to_bytes(8, "big") + bytes([final])
