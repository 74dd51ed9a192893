"""Canonical msgpack encoding of messages: ``encode`` and ``decode``.

The canonical form (the only one ``decode`` accepts; ``encode`` always produces it):

1. A message is the msgpack array ``[tag, version, fields]``: ``tag`` a str, ``version`` an
   int, ``fields`` a map from field name (str) to value holding every field of the class,
   in declaration order, once. A field that is ``None`` is present as nil.
2. A nested message is the same 3-element array (so a field may hold a union of message
   classes; the tag tells which). A tuple is an array; an ``IntEnum`` is its int value.
   The field maps are the only maps.
3. Every length header and every int uses msgpack's shortest form: fixint / fixstr /
   fixarray / fixmap when they fit, else the smallest of 8/16/32/64 bits; non-negative ints
   use positive fixint or uint8..uint64, negative ints negative fixint or int8..int64.
4. bytes are ``bin`` (never ``str``), strings are ``str`` (valid UTF-8), booleans are
   ``true``/``false``. There are no floats, no ext types and no other maps.
5. One message per buffer: nothing may follow it.

``decode`` checks (1), (2) and the types of (4) against the schema while it builds the
message (msgpack rejects invalid UTF-8 and trailing bytes), then checks (3) by packing the
decoded msgpack value again and comparing with the input (about 15% of the decode time).
Its bounds are in ``wire.limits``. It raises only ``WireError`` for any input; a
``TypeError`` means the caller's mistake (``expected`` is not a message class, ``data`` is
not bytes).

The first error found is the one reported; when several rules are broken, which one that
is may change between versions, but the code always names a rule the input breaks.
"""

from __future__ import annotations

import threading
from typing import Any, TypeVar, overload

import msgpack
from msgpack.exceptions import ExtraData, StackError

from wire.errors import (
    DUPLICATE_FIELD,
    INVALID_VALUE,
    MALFORMED,
    NOT_CANONICAL,
    TOO_DEEP,
    TOO_LARGE,
    TYPE_MISMATCH,
    UNEXPECTED_TYPE,
    WireError,
)
from wire.limits import DEFAULT_MAX_SIZE, MAX_ARRAY_LEN, MAX_FIELDS
from wire.schema import BY_CLASS, PENDING, Schema, lookup, resolve_pending, schema_of

M = TypeVar("M")
M2 = TypeVar("M2")
M3 = TypeVar("M3")

_local = threading.local()


def encode(msg: object) -> bytes:
    """The canonical encoding of ``msg``, an instance of a message class."""
    if PENDING:
        resolve_pending()
    if type(msg) not in BY_CLASS:
        raise TypeError(f"{type(msg).__name__} is not a message class")
    result: bytes = _packer().pack(msg)
    return result


def encode_split(msg: object) -> tuple[bytes, bytes]:
    """``encode(msg)`` cut before the value of its last field, which must be bytes:
    ``(head, value)`` with ``head + value == encode(msg)`` and ``value`` the field's own
    object, never copied (a large body is then written from the one buffer it is in)."""
    if PENDING:
        resolve_pending()
    schema = BY_CLASS.get(type(msg))
    if schema is None:
        raise TypeError(f"{type(msg).__name__} is not a message class")
    raw = schema.to_raw(msg)
    fields = raw[2]
    last = schema.names[-1]
    value = fields[last]
    if not isinstance(value, bytes):
        raise TypeError(f"{type(msg).__name__}.{last} is not bytes")
    fields[last] = b""
    packed: bytes = _packer().pack(raw)  # ends with the empty bin: 0xc4 0x00
    return packed[:-2] + bin_header(len(value)), value


def bin_header(size: int) -> bytes:
    """The canonical msgpack header of a ``bin`` of ``size`` bytes (rule 3)."""
    if size < 1 << 8:
        return bytes((0xC4, size))
    if size < 1 << 16:
        return b"\xc5" + size.to_bytes(2, "big")
    return b"\xc6" + size.to_bytes(4, "big")


def array_header(size: int) -> bytes:
    """The canonical msgpack header of an array of ``size`` items (rule 3)."""
    if size < 16:
        return bytes((0x90 | size,))
    if size < 1 << 16:
        return b"\xdc" + size.to_bytes(2, "big")
    return b"\xdd" + size.to_bytes(4, "big")


@overload
def decode(data: bytes | bytearray, expected: type[M], *, max_size: int = ...) -> M: ...
@overload
def decode(
    data: bytes | bytearray, expected: tuple[type[M], type[M2]], *, max_size: int = ...
) -> M | M2: ...
@overload
def decode(
    data: bytes | bytearray, expected: tuple[type[M], type[M2], type[M3]], *, max_size: int = ...
) -> M | M2 | M3: ...
@overload
def decode(
    data: bytes | bytearray, expected: tuple[type, ...] | None = None, *, max_size: int = ...
) -> object: ...
def decode(
    data: bytes | bytearray,
    expected: type | tuple[type, ...] | None = None,
    *,
    max_size: int = DEFAULT_MAX_SIZE,
) -> object:
    """The message encoded in ``data``; of a class in ``expected`` when given.

    Raises ``WireError`` for any input that is not the canonical encoding of a valid
    message of a registered (tag, version), or of a class ``expected`` does not name.
    """
    if PENDING:
        resolve_pending()
    raw = _unpack(data, max_size)
    schema, fmap = lookup(raw, "message")
    if expected is not None and not _is_expected(schema.cls, expected):
        raise _unexpected(schema, expected)
    msg = _build(schema, fmap, data)
    if _packer().pack(raw) != data:
        raise _not_canonical(data, "not the canonical encoding")
    return msg


def _packer() -> msgpack.Packer:
    """This thread's packer (a ``Packer`` is not safe to share between threads)."""
    try:
        packer: msgpack.Packer = _local.packer
    except AttributeError:
        packer = _local.packer = msgpack.Packer(default=_to_raw, use_bin_type=True)
    return packer


def _to_raw(obj: object) -> list[Any]:
    """msgpack's hook for objects it does not know: messages become ``[tag, version, map]``."""
    schema = schema_of(type(obj))
    if schema is None:
        raise TypeError(f"{type(obj).__name__} is not a message class")
    return schema.to_raw(obj)


def _unpack(data: bytes | bytearray, max_size: int) -> Any:
    if not isinstance(data, (bytes, bytearray)):  # a tuple: faster than bytes | bytearray
        raise TypeError(f"decode takes bytes, not {type(data).__name__}")
    if len(data) > max_size:
        raise WireError(TOO_LARGE, f"{len(data)} bytes, more than {max_size}")
    try:
        # A str or bin cannot be longer than the input: unpackb bounds them by len(data).
        return msgpack.unpackb(
            data,
            max_array_len=MAX_ARRAY_LEN,
            max_map_len=MAX_FIELDS,
            max_ext_len=0,
        )
    except StackError:
        raise WireError(TOO_DEEP, "msgpack nesting too deep") from None
    except ExtraData:
        raise WireError(MALFORMED, "trailing bytes after the message") from None
    except UnicodeDecodeError:
        raise WireError(MALFORMED, "str is not valid UTF-8") from None
    except ValueError as e:
        raise _unpack_error(str(e)) from None
    except (TypeError, OverflowError, RecursionError) as e:
        raise WireError(MALFORMED, f"not valid msgpack ({type(e).__name__})") from None


def _unpack_error(text: str) -> WireError:
    if "max_ext_len" in text:
        return WireError(MALFORMED, "ext types are not allowed")
    if "exceeds max_" in text:
        return WireError(TOO_LARGE, f"a container, str or bin is too long ({text:.80})")
    return WireError(MALFORMED, f"not valid msgpack ({text:.80})")


def _build(schema: Schema, fmap: dict[Any, Any], data: bytes | bytearray) -> object:
    """``schema.build``, translating what a class's own ``__post_init__`` may raise."""
    try:
        return schema.build(fmap, 1)
    except WireError as e:
        if e.code == NOT_CANONICAL:
            raise _not_canonical(data, e.message) from None
        raise
    except ValueError as e:
        raise WireError(INVALID_VALUE, f"{schema.cls.__name__}: {e}") from None
    except TypeError as e:
        raise WireError(TYPE_MISMATCH, f"{schema.cls.__name__}: {e}") from None
    except RecursionError:
        raise WireError(TOO_DEEP, "nesting too deep") from None


def _not_canonical(data: bytes | bytearray, message: str) -> WireError:
    """``not_canonical``, unless the cause is a repeated field name (rare path: unpacks again)."""
    try:
        msgpack.unpackb(data, object_pairs_hook=_unique_pairs, max_ext_len=0)
    except WireError as e:
        return e
    return WireError(NOT_CANONICAL, message)


def _unique_pairs(pairs: list[tuple[Any, Any]]) -> dict[Any, Any]:
    fmap = dict(pairs)
    if len(fmap) == len(pairs):
        return fmap
    seen: set[Any] = set()
    for name, _ in pairs:
        if name in seen:
            raise WireError(DUPLICATE_FIELD, f"field {name!r:.80} appears more than once")
        seen.add(name)
    raise AssertionError("unreachable: a shorter dict means a repeated key")


def _is_expected(cls: type, expected: type | tuple[type, ...]) -> bool:
    return cls is expected or (type(expected) is tuple and cls in expected)


def _unexpected(schema: Schema, expected: type | tuple[type, ...]) -> Exception:
    classes = expected if isinstance(expected, tuple) else (expected,)
    for cls in classes:
        if schema_of(cls) is None:
            return TypeError(f"expected {cls!r} is not a message class")
    names = ", ".join(c.__name__ for c in classes)
    return WireError(UNEXPECTED_TYPE, f"got {schema.tag!r}, expected {names}")
