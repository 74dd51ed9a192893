"""Errors of the wire codec.

    WireError            the only exception ``wire.decode`` raises; carries a stable ``code``

Codes (stable; peers and tests match on them):

    wire.too_large        input or a container/bytes/str exceeds its bound
    wire.too_deep         nesting deeper than the bound
    wire.malformed        not valid msgpack, or trailing bytes
    wire.not_canonical    valid msgpack but not the canonical encoding of the message
    wire.unknown_type     unknown message tag
    wire.bad_version      known tag, unsupported version
    wire.unexpected_type  a message of another type than the caller expected
    wire.unknown_field    a field the schema does not define
    wire.missing_field    a field the schema requires is absent
    wire.duplicate_field  a field appears twice
    wire.type_mismatch    a field value of the wrong type
    wire.invalid_value    a value outside its allowed range or set
"""

from __future__ import annotations


class WireError(Exception):
    """Bad input to the codec. ``code`` is one of the stable codes above."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
