"""wire: the canonical msgpack codec for every message sealrelay sends.

    @message("tag", version=1)      a plain class becomes a frozen, slotted, registered
    class Ping:                     dataclass; every instance is checked on construction
        nonce: Bytes16
        seq: U32

    encode(msg) -> bytes            the canonical encoding (see ``wire.codec``)
    decode(data, Ping) -> Ping      strict; any bad input raises ``WireError`` with a code
    message_types(), message_info() the registry, for tests and generated docs

Modules: ``codec`` (encode/decode, the canonical form), ``schema`` (decorator, registry,
versioning), ``fields`` (supported annotations), ``types`` (bounds and aliases), ``limits``
(decoder bounds), ``errors`` (``WireError`` and its stable codes).

This package imports nothing from the rest of the project.
"""

from wire.codec import decode, encode
from wire.errors import SchemaError, WireError
from wire.limits import DEFAULT_MAX_SIZE, MAX_DEPTH
from wire.schema import MessageInfo, message, message_info, message_types
from wire.types import (
    I64,
    U8,
    U16,
    U32,
    U64,
    Bytes16,
    Bytes32,
    Bytes64,
    Len,
    MaxLen,
    MinLen,
    Range,
)

__all__ = [
    "DEFAULT_MAX_SIZE",
    "I64",
    "MAX_DEPTH",
    "U8",
    "U16",
    "U32",
    "U64",
    "Bytes16",
    "Bytes32",
    "Bytes64",
    "Len",
    "MaxLen",
    "MessageInfo",
    "MinLen",
    "Range",
    "SchemaError",
    "WireError",
    "decode",
    "encode",
    "message",
    "message_info",
    "message_types",
]
