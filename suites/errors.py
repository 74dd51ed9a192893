"""Errors raised by the cipher suites.

    SuiteError                      every error of this package; has a stable ``code``
    ├── UnknownSuite                a suite name or id that does not exist
    ├── InvalidKey                  wrong length, wrong suite, or not a valid key encoding
    ├── InvalidCiphertext           a KEM ciphertext or HPKE ``enc`` of the wrong length/form
    ├── InvalidSignature            opaque: the signature does not verify
    └── DecryptionFailed            opaque: an AEAD or HPKE open failed

Crypto failures (``InvalidSignature``, ``DecryptionFailed``) carry no detail an attacker could
use. The others describe the caller's mistake, never secret material.
"""

from __future__ import annotations


class SuiteError(Exception):
    """Base class; ``code`` is stable and safe to send to a peer."""

    code = "suite.error"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.code)


class UnknownSuite(SuiteError):
    code = "suite.unknown"


class InvalidKey(SuiteError):
    code = "suite.invalid_key"


class InvalidCiphertext(SuiteError):
    code = "suite.invalid_ciphertext"


class InvalidSignature(SuiteError):
    code = "suite.invalid_signature"

    def __init__(self, message: str | None = None) -> None:
        super().__init__("invalid signature")


class DecryptionFailed(SuiteError):
    code = "suite.decryption_failed"

    def __init__(self, message: str | None = None) -> None:
        super().__init__("decryption failed")
