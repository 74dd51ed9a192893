"""Delivery-token verifiers, a format clients and nodes share (DESIGN section 4).

A recipient gives its contacts a 16-byte delivery token and gives its node only the
verifier ``SHA-256(DELIVERY_TOKEN_HASH_INFO || token)``; the node checks a presented token
against it and never stores the token itself.
"""

from __future__ import annotations

import hashlib

from suites import labels


def delivery_token_verifier(token: bytes) -> bytes:
    """``SHA-256(DELIVERY_TOKEN_HASH_INFO || token)`` (32 bytes)."""
    return hashlib.sha256(labels.DELIVERY_TOKEN_HASH_INFO + token).digest()
