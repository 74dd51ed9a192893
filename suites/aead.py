"""AEAD for a suite: AES-256-GCM (both suites), with a uniform, opaque failure."""

from __future__ import annotations

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from suites.errors import DecryptionFailed, InvalidKey


class Aead:
    """An AEAD with ``key_len``-byte keys, ``nonce_len``-byte nonces and ``tag_len``-byte tags.

    ``open`` raises :class:`suites.errors.DecryptionFailed` on any authentication failure.
    """

    def __init__(self, name: str) -> None:
        self._cls: type[AESGCM] | type[ChaCha20Poly1305]
        if name == "aes-256-gcm":
            self.key_len, self._cls = 32, AESGCM
        elif name == "aes-128-gcm":
            self.key_len, self._cls = 16, AESGCM
        elif name == "chacha20-poly1305":
            self.key_len, self._cls = 32, ChaCha20Poly1305
        else:
            raise ValueError(f"unsupported AEAD {name!r}")
        self.name = name
        self.nonce_len = 12
        self.tag_len = 16

    def _cipher(self, key: bytes) -> AESGCM | ChaCha20Poly1305:
        if len(key) != self.key_len:
            raise InvalidKey(f"{self.name} key must be {self.key_len} bytes")
        return self._cls(key)

    def seal(self, key: bytes, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
        """Ciphertext with the tag appended (``len(plaintext) + tag_len`` bytes)."""
        if len(nonce) != self.nonce_len:
            raise InvalidKey(f"{self.name} nonce must be {self.nonce_len} bytes")
        return self._cipher(key).encrypt(nonce, plaintext, aad)

    def open(self, key: bytes, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
        """The plaintext, or :class:`DecryptionFailed`."""
        if len(nonce) != self.nonce_len:
            raise DecryptionFailed()
        try:
            return self._cipher(key).decrypt(nonce, ciphertext, aad)
        except InvalidTag:
            raise DecryptionFailed() from None
