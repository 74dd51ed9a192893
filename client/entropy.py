"""Injected randomness for the pure cores.

Every core takes an :class:`Entropy`; production uses :class:`SystemEntropy`, tests and the
vector generator pass a deterministic one. KEM encapsulation is part of the interface
because ``cryptography``'s ML-KEM draws its own randomness: a deterministic implementation
substitutes a derandomized encapsulation (FIPS 203 ``Encaps_internal``) in tests only.
"""

from __future__ import annotations

import os
from typing import Protocol

from suites.kem import MlKem


class Entropy(Protocol):
    def random_bytes(self, n: int) -> bytes:
        """``n`` uniformly random bytes."""
        ...

    def mlkem_encapsulate(self, kem: MlKem, public_key: bytes) -> tuple[bytes, bytes]:
        """``(ciphertext, shared_secret)`` for ``public_key`` under ``kem``."""
        ...


class SystemEntropy:
    """The operating system's CSPRNG and ``cryptography``'s own encapsulation."""

    def random_bytes(self, n: int) -> bytes:
        return os.urandom(n)

    def mlkem_encapsulate(self, kem: MlKem, public_key: bytes) -> tuple[bytes, bytes]:
        return kem.encapsulate(public_key)


SYSTEM_ENTROPY = SystemEntropy()
