"""Attachment encryption: authenticated 64 KiB chunks, padded, digest over the ciphertext.

Pure: the caller supplies a fresh random 32-byte key per attachment (never reused) and does
the reading, upload, download and writing. The key, the digest and the sizes travel inside
the end-to-end message (``client.content.AttachmentPointer``)::

    chunk_key || base_nonce = HKDF-SHA-256(key, info=ATTACHMENT_KEYS_INFO)     32 + 12 bytes
    padded   = plaintext || 0x80 || 0x00*   to padded_size(len(plaintext))
    chunk i  = AES-256-GCM(chunk_key, base_nonce XOR i, padded[i*64Ki : (i+1)*64Ki],
                           aad = ATTACHMENT_CHUNK_AAD || u64(i) || u8(final))
    ciphertext = chunk 0 || chunk 1 || ...       (every chunk but the last is 64 KiB + 16)
    digest   = SHA-256(ciphertext)

This is the STREAM construction of Hoang, Reyhanitabar, Rogaway and Vizár ("Online
Authenticated-Encryption and its Nonce-Reuse Misuse-Resistance", CRYPTO 2015) over
AES-256-GCM, with the counter and the last-chunk flag in the associated data (and the
counter in the nonce): a reordered chunk fails, and so does a ciphertext cut at a chunk
boundary (or extended past its end), since its last chunk was not sealed as the final one.

Two interfaces produce and accept the same bytes:

- :func:`encrypt` / :func:`decrypt` on whole buffers (small attachments, tests);
  :func:`decrypt` checks the digest before it decrypts anything.
- :class:`ChunkSealer` / :class:`ChunkOpener` on a stream, holding at most one chunk:
  the sealer takes the plaintext in pieces and yields ciphertext as chunks fill; the
  opener takes the ciphertext in pieces and gives back the plaintext of every chunk that
  authenticated (never the padding). Its output must stay unexposed until
  :meth:`ChunkOpener.finish` has checked the length, the final chunk, the padding and the
  digest.

Sizes: up to 64 KiB the envelope buckets of ``suites.padding``; above, steps growing by
about 5% (rounded up to 64 KiB), so a size reveals little more than its order of magnitude.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
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


def chunk_count(size: int) -> int:
    """The number of chunks of a plaintext of ``size`` bytes."""
    return -(-padded_size(size) // CHUNK_SIZE)


class ChunkSealer:
    """Encrypts an attachment of ``size`` plaintext bytes as it is read: :meth:`push` the
    plaintext in pieces of any length, then iterate :meth:`finish` for the rest and the
    padding. The ciphertext equals :func:`encrypt`'s; :attr:`digest` is valid after
    ``finish``. :class:`AttachmentError` if more or fewer than ``size`` bytes come."""

    def __init__(self, key: bytes, size: int) -> None:
        if size > MAX_SIZE:
            raise AttachmentError("attachment too large")
        self._chunk_key, self._base_nonce = _keys(key)
        self._size = size
        self._count = chunk_count(size)
        self._index = 0
        self._seen = 0
        self._pending = bytearray()
        self._hash = hashlib.sha256()

    @property
    def digest(self) -> bytes:
        if self._index != self._count:
            raise AttachmentError("the attachment is not sealed yet")
        return self._hash.digest()

    def push(self, data: bytes) -> bytes:
        """The ciphertext of the chunks ``data`` completes (possibly empty)."""
        self._seen += len(data)
        if self._seen > self._size:
            raise AttachmentError("the file grew while it was read")
        self._pending += data
        out = bytearray()
        while len(self._pending) >= CHUNK_SIZE:  # never the final chunk: it holds the marker
            out += self._seal(bytes(self._pending[:CHUNK_SIZE]))
            del self._pending[:CHUNK_SIZE]
        return bytes(out)

    def finish(self) -> Iterator[bytes]:
        """The remaining chunks, one at a time (the padding is made as it goes)."""
        if self._seen != self._size:
            raise AttachmentError("the file shrank while it was read")
        self._pending.append(_MARKER)
        while self._index < self._count:
            part = bytes(self._pending[:CHUNK_SIZE])
            del self._pending[:CHUNK_SIZE]
            last = self._index == self._count - 1
            want = padded_size(self._size) - (self._count - 1) * CHUNK_SIZE if last else CHUNK_SIZE
            yield self._seal(part + bytes(want - len(part)))

    def _seal(self, part: bytes) -> bytes:
        final = self._index == self._count - 1
        nonce = _nonce(self._base_nonce, self._index)
        sealed = _AEAD.seal(self._chunk_key, nonce, part, _aad(self._index, final))
        self._index += 1
        self._hash.update(sealed)
        return sealed


class ChunkOpener:
    """Decrypts the ciphertext of a pointer (``key``, ``digest``, plaintext ``size``) as it
    arrives: :meth:`push` gives the plaintext of each chunk that authenticated, then
    :meth:`finish` checks that nothing is missing and the digest. Any failure is one
    :class:`AttachmentError`; what was given back before it must then be thrown away."""

    def __init__(self, key: bytes, digest: bytes, size: int) -> None:
        if len(digest) != DIGEST_LEN or size > MAX_SIZE:
            raise AttachmentError("attachment does not open")
        self._chunk_key, self._base_nonce = _keys(key)
        self._digest = digest
        self._count = chunk_count(size)
        self._last_len = cipher_size(size) - (self._count - 1) * (CHUNK_SIZE + TAG_LEN)
        self._left = size  # plaintext bytes still to give back
        self._marker_seen = False
        self._index = 0
        self._pending = bytearray()
        self._hash = hashlib.sha256()

    def push(self, data: bytes) -> bytes:
        """The plaintext of the chunks ``data`` completes (possibly empty)."""
        self._hash.update(data)
        self._pending += data
        out = bytearray()
        while self._index < self._count and len(self._pending) >= self._need():
            need = self._need()
            out += self._open(bytes(self._pending[:need]))
            del self._pending[:need]
        if self._index == self._count and self._pending:
            raise AttachmentError("attachment does not open")  # bytes after the final chunk
        return bytes(out)

    def finish(self) -> None:
        """Check that the final chunk came and nothing after it, and the digest."""
        if self._index != self._count or self._pending or not self._marker_seen:
            raise AttachmentError("attachment does not open")
        if not constant_time_equal(self._hash.digest(), self._digest):
            raise AttachmentError("attachment digest mismatch")

    def _need(self) -> int:
        return self._last_len if self._index == self._count - 1 else CHUNK_SIZE + TAG_LEN

    def _open(self, part: bytes) -> bytes:
        final = self._index == self._count - 1
        nonce = _nonce(self._base_nonce, self._index)
        try:
            padded = _AEAD.open(self._chunk_key, nonce, part, _aad(self._index, final))
        except DecryptionFailed:
            raise AttachmentError("attachment does not open") from None
        self._index += 1
        keep = min(self._left, len(padded))
        self._left -= keep
        self._check_padding(padded[keep:])
        return padded[:keep]

    def _check_padding(self, pad: bytes) -> None:
        if pad and not self._marker_seen:
            if pad[0] != _MARKER:
                raise AttachmentError("attachment does not open")
            self._marker_seen = True
            pad = pad[1:]
        if pad.count(0) != len(pad):
            raise AttachmentError("attachment does not open")


def _keys(key: bytes) -> tuple[bytes, bytes]:
    if len(key) != KEY_LEN:
        raise AttachmentError("an attachment key is 32 bytes")
    okm = _KDF.derive(key, b"", labels.ATTACHMENT_KEYS_INFO, KEY_LEN + NONCE_LEN)
    return okm[:KEY_LEN], okm[KEY_LEN:]


def _nonce(base: bytes, index: int) -> bytes:
    return (int.from_bytes(base, "big") ^ index).to_bytes(NONCE_LEN, "big")


def _aad(index: int, final: bool) -> bytes:
    return labels.ATTACHMENT_CHUNK_AAD + index.to_bytes(8, "big") + bytes([final])
