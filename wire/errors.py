"""Errors of the wire codec.

    WireError            the only exception ``wire.decode`` raises; carries a stable ``code``
    SchemaError          a message class breaks the schema rules (a local programming error,
                         raised when the class is defined or first used; never for input)

``WireError`` is also what constructing a message with a bad field value raises (same codes,
the rule was broken locally). The codes are stable; peers and tests match on them:

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

from typing import Final

TOO_LARGE: Final = "wire.too_large"
TOO_DEEP: Final = "wire.too_deep"
MALFORMED: Final = "wire.malformed"
NOT_CANONICAL: Final = "wire.not_canonical"
UNKNOWN_TYPE: Final = "wire.unknown_type"
BAD_VERSION: Final = "wire.bad_version"
UNEXPECTED_TYPE: Final = "wire.unexpected_type"
UNKNOWN_FIELD: Final = "wire.unknown_field"
MISSING_FIELD: Final = "wire.missing_field"
DUPLICATE_FIELD: Final = "wire.duplicate_field"
TYPE_MISMATCH: Final = "wire.type_mismatch"
INVALID_VALUE: Final = "wire.invalid_value"

CODES: Final = frozenset(
    {
        TOO_LARGE,
        TOO_DEEP,
        MALFORMED,
        NOT_CANONICAL,
        UNKNOWN_TYPE,
        BAD_VERSION,
        UNEXPECTED_TYPE,
        UNKNOWN_FIELD,
        MISSING_FIELD,
        DUPLICATE_FIELD,
        TYPE_MISMATCH,
        INVALID_VALUE,
    }
)


class WireError(Exception):
    """Bad input to the codec. ``code`` is one of the stable codes above."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class SchemaError(TypeError):
    """A message class the codec cannot carry: unsupported annotation, duplicate tag..."""
