"""Hash, HMAC and HKDF for a suite (SHA-384 for ``cnsa2``, SHA-256 for ``xwing``).

All callers pass a label constant from :mod:`suites.labels` as ``info``; nothing here
knows about protocol meaning.
"""

from __future__ import annotations

import hashlib
import hmac as _hmac

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF, HKDFExpand

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


class Kdf:
    """HKDF (RFC 5869) and HMAC over one hash function.

    ``hash_len`` is the output size in bytes (32 for SHA-256, 48 for SHA-384).
    """

    def __init__(self, hash_name: str) -> None:
        if hash_name not in _HASHES:
            raise ValueError(f"unsupported hash {hash_name!r}")
        self.hash_name = hash_name
        self._algorithm = _HASHES[hash_name]
        self.hash_len: int = hashlib.new(hash_name).digest_size

    def hash(self, data: bytes) -> bytes:
        """The digest of ``data`` (``hash_len`` bytes)."""
        return hashlib.new(self.hash_name, data).digest()

    def hmac(self, key: bytes, data: bytes) -> bytes:
        """HMAC(key, data), ``hash_len`` bytes."""
        return _hmac.digest(key, data, self.hash_name)

    def extract(self, salt: bytes, ikm: bytes) -> bytes:
        """HKDF-Extract (RFC 5869 section 2.2); an empty salt means HashLen zero bytes."""
        return self.hmac(salt or bytes(self.hash_len), ikm)

    def expand(self, prk: bytes, info: bytes, length: int) -> bytes:
        """HKDF-Expand (RFC 5869 section 2.3)."""
        return HKDFExpand(algorithm=self._algorithm(), length=length, info=info).derive(prk)

    def derive(self, ikm: bytes, salt: bytes, info: bytes, length: int) -> bytes:
        """HKDF (extract then expand) of ``length`` bytes."""
        kdf = HKDF(algorithm=self._algorithm(), length=length, salt=salt or None, info=info)
        return kdf.derive(ikm)


def constant_time_equal(a: bytes, b: bytes) -> bool:
    """Compare two secrets without leaking where they differ."""
    return _hmac.compare_digest(a, b)
