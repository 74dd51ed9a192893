"""Padding of envelope bodies to size buckets (DESIGN section 3).

Bodies are padded to 1 KiB, 4 KiB, 16 KiB or 64 KiB, and above that to a multiple of
64 KiB, so that a size reveals only its bucket. The padding is ISO/IEC 7816-4 style, as
Signal uses: one ``0x80`` byte, then zeros; unpadding strips trailing zeros and the marker
and refuses anything else.
"""

from __future__ import annotations

from typing import Final

from suites.errors import SuiteError

BUCKETS: Final = (1024, 4096, 16384, 65536)
_LARGE_STEP: Final = 65536
_MARKER: Final = 0x80


class PaddingError(SuiteError):
    code = "suite.bad_padding"


def bucket_for(length: int) -> int:
    """The padded size for a body of ``length`` bytes (the marker needs one byte)."""
    needed = length + 1
    for bucket in BUCKETS:
        if needed <= bucket:
            return bucket
    return -(-needed // _LARGE_STEP) * _LARGE_STEP


def is_bucket_size(length: int) -> bool:
    """True when ``length`` is one of the sizes :func:`pad` produces."""
    return length in BUCKETS or (length > 0 and length % _LARGE_STEP == 0)


def pad(data: bytes) -> bytes:
    """``data`` padded to :func:`bucket_for` its length."""
    size = bucket_for(len(data))
    return data + bytes([_MARKER]) + bytes(size - len(data) - 1)


def unpad(padded: bytes) -> bytes:
    """Inverse of :func:`pad`; raises :class:`PaddingError` on a malformed padding or a
    length that is not a bucket size."""
    if not is_bucket_size(len(padded)):
        raise PaddingError("padded length is not a bucket size")
    stripped = padded.rstrip(b"\x00")
    if not stripped or stripped[-1] != _MARKER:
        raise PaddingError("malformed padding")
    return stripped[:-1]
