"""Cipher suites: hybrid KEM, hybrid signatures, AEAD, KDF, HPKE, padding, SFrame.

    >>> from suites import get_suite
    >>> s = get_suite("xwing")            # or "cnsa2", the default

See :mod:`suites.suite` for what each suite is made of.
"""

from suites.errors import (
    DecryptionFailed,
    InvalidCiphertext,
    InvalidKey,
    InvalidSignature,
    SuiteError,
    UnknownSuite,
)
from suites.suite import DEFAULT_SUITE, SUITE_NAMES, Suite, get_suite, get_suite_by_id

__all__ = [
    "DEFAULT_SUITE",
    "SUITE_NAMES",
    "DecryptionFailed",
    "InvalidCiphertext",
    "InvalidKey",
    "InvalidSignature",
    "Suite",
    "SuiteError",
    "UnknownSuite",
    "get_suite",
    "get_suite_by_id",
]
