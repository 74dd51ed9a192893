"""Compile one field annotation into a checker and a decoder, once, at registration.

A compiled ``Field`` has:

    check(value)            raises WireError unless ``value`` is a valid Python value of
                            the field: the rule, in one place
    fast, ref               an inline expression that implies ``check`` passes (None for
                            tuples); ``compile_validator`` joins them into one generated
                            function per class, which the message's ``__post_init__`` runs
                            on every construction, including the ones ``decode`` makes
    decode(raw, level)      turns the msgpack value into the Python value, checking what the
                            conversion needs (array for a tuple, int for an enum); ``None``
                            when the msgpack value already is the Python value (bytes, str,
                            int, bool and their optionals), left to ``check``

Supported annotations and their msgpack form:

    bytes                   bin
    str                     str (valid UTF-8)
    int                     int, -2**63 .. 2**64-1 unless a Range narrows it
    bool                    true / false (never 0 / 1)
    an IntEnum subclass     int, one of the enum's values
    T | None, Optional[T]   nil or T
    tuple[T, ...]           array of T
    a message class         the nested message's own ``[tag, version, {fields}]`` array
    A | B | ...             message classes only; the tag says which
    Annotated[T, bounds]    T, with bounds from ``wire.types``

``level`` is the nesting level of the message or tuple that holds the value (see
``wire.limits.MAX_DEPTH``).
"""

from __future__ import annotations

import enum
import sys
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Union, get_args, get_origin

from wire.errors import INVALID_VALUE, TOO_DEEP, TOO_LARGE, TYPE_MISMATCH, SchemaError, WireError
from wire.limits import MAX_ARRAY_LEN, MAX_DEPTH
from wire.types import INT_MAX, INT_MIN, Len, MaxLen, MinLen, Range

Check = Callable[[Any], None]
Decode = Callable[[Any, int], Any]


@dataclass(frozen=True, slots=True)
class Field:
    check: Check
    decode: Decode | None
    fast: str | None = None  # an expression in {v} (and {t} = ref) that implies check passes
    ref: object = None


MessageField = Callable[[tuple[type, ...], str], Field]
"""Builds the field of a nested message (or union of messages); supplied by the registry."""

_NO_LIMIT = sys.maxsize


def compile_field(hint: object, label: str, message_field: MessageField) -> Field:
    """The ``Field`` for annotation ``hint``; ``label`` (``Class.field``) names it in errors."""
    return _compile(hint, (), label, message_field)


def mismatch(label: str, expected: str, value: object) -> WireError:
    return WireError(TYPE_MISMATCH, f"{label}: expected {expected}, got {type(value).__name__}")


def too_deep(label: str) -> WireError:
    return WireError(TOO_DEEP, f"{label}: nesting deeper than {MAX_DEPTH} levels")


def _compile(hint: object, bounds: tuple[object, ...], label: str, mf: MessageField) -> Field:
    origin = get_origin(hint)
    if origin is Annotated:
        inner, *meta = get_args(hint)
        return _compile(inner, bounds + tuple(meta), label, mf)
    if origin is Union or origin is types.UnionType:
        return _union(get_args(hint), bounds, label, mf)
    if origin is tuple:
        return _tuple(get_args(hint), bounds, label, mf)
    if hint is bytes:
        lo, hi = _lengths(bounds, label, _NO_LIMIT)
        fast = f"type({{v}}) is bytes and {_within('len({v})', lo, hi)}"
        return Field(_bytes_check(label, lo, hi), None, fast)
    if hint is str:
        lo, hi = _lengths(bounds, label, _NO_LIMIT)
        fast = f"type({{v}}) is str and {{v}}.isascii() and {_within('len({v})', lo, hi)}"
        return Field(_str_check(label, lo, hi), None, fast)
    if hint is int:
        lo, hi = _range(bounds, label)
        return Field(
            _int_check(label, lo, hi), None, f"type({{v}}) is int and {lo} <= {{v}} <= {hi}"
        )
    if hint is bool:
        _no_bounds(bounds, label)
        return Field(_bool_check(label), None, "type({v}) is bool")
    if isinstance(hint, type) and issubclass(hint, enum.IntEnum):
        _no_bounds(bounds, label)
        return _enum(hint, label)
    if isinstance(hint, type):
        _no_bounds(bounds, label)
        return mf((hint,), label)
    raise SchemaError(f"{label}: unsupported annotation {hint!r}")


def _lengths(bounds: Sequence[object], label: str, cap: int) -> tuple[int, int]:
    lo, hi = 0, cap
    for b in bounds:
        if not isinstance(b, MaxLen | MinLen | Len):
            raise SchemaError(f"{label}: {b!r} does not apply to a length")
        if not 0 <= b.n <= cap:
            raise SchemaError(f"{label}: {b!r} outside [0, {cap}]")
        if isinstance(b, MaxLen | Len):
            hi = min(hi, b.n)
        if isinstance(b, MinLen | Len):
            lo = max(lo, b.n)
    if lo > hi:
        raise SchemaError(f"{label}: empty length bounds [{lo}, {hi}]")
    return lo, hi


def _range(bounds: Sequence[object], label: str) -> tuple[int, int]:
    lo, hi = INT_MIN, INT_MAX
    for b in bounds:
        if not isinstance(b, Range):
            raise SchemaError(f"{label}: {b!r} does not apply to an int")
        lo, hi = max(lo, b.lo), min(hi, b.hi)
        if b.lo < INT_MIN or b.hi > INT_MAX:
            raise SchemaError(f"{label}: {b!r} exceeds 64 bits")
    if lo > hi:
        raise SchemaError(f"{label}: empty range [{lo}, {hi}]")
    return lo, hi


def _no_bounds(bounds: Sequence[object], label: str) -> None:
    if bounds:
        raise SchemaError(f"{label}: bounds {bounds!r} do not apply here")


def _within(expr: str, lo: int, hi: int) -> str:
    if hi == _NO_LIMIT:
        return f"{lo} <= {expr}"
    return f"{lo} <= {expr} <= {hi}"


def _length_error(label: str, n: int, lo: int, hi: int) -> WireError:
    code = TOO_LARGE if n > hi else INVALID_VALUE
    return WireError(code, f"{label}: length {n} outside [{lo}, {hi}]")


def _bytes_check(label: str, lo: int, hi: int) -> Check:
    def check(v: Any) -> None:
        if type(v) is not bytes:
            raise mismatch(label, "bytes", v)
        if not lo <= len(v) <= hi:
            raise _length_error(label, len(v), lo, hi)

    return check


def _utf8_len(label: str, v: str) -> int:
    try:
        return len(v.encode("utf-8"))
    except UnicodeEncodeError:
        raise WireError(INVALID_VALUE, f"{label}: str is not encodable as UTF-8") from None


def _str_check(label: str, lo: int, hi: int) -> Check:
    def check(v: Any) -> None:
        if type(v) is not str:
            raise mismatch(label, "str", v)
        n = len(v) if v.isascii() else _utf8_len(label, v)
        if not lo <= n <= hi:
            raise _length_error(label, n, lo, hi)

    return check


def _int_check(label: str, lo: int, hi: int) -> Check:
    def check(v: Any) -> None:
        if type(v) is not int:
            raise mismatch(label, "int", v)
        if not lo <= v <= hi:
            raise WireError(INVALID_VALUE, f"{label}: {v} outside [{lo}, {hi}]")

    return check


def _bool_check(label: str) -> Check:
    def check(v: Any) -> None:
        if type(v) is not bool:
            raise mismatch(label, "bool", v)

    return check


def _enum(cls: type[enum.IntEnum], label: str) -> Field:
    members = {int(m): m for m in cls}
    if not all(INT_MIN <= v <= INT_MAX for v in members):
        raise SchemaError(f"{label}: {cls.__name__} has values beyond 64 bits")
    name = cls.__name__

    def check(v: Any) -> None:
        if type(v) is not cls:
            raise mismatch(label, name, v)

    def decode(raw: Any, level: int) -> Any:
        if type(raw) is not int:
            raise mismatch(label, "int", raw)
        member = members.get(raw)
        if member is None:
            raise WireError(INVALID_VALUE, f"{label}: {raw} is not a {name}")
        return member

    return Field(check, decode, "type({v}) is {t}", cls)


def _union(
    args: tuple[Any, ...], bounds: tuple[object, ...], label: str, mf: MessageField
) -> Field:
    members = tuple(a for a in args if a is not type(None))
    if len(members) < len(args):
        inner = members[0] if len(members) == 1 else Union[members]  # noqa: UP007
        return _optional(_compile(inner, bounds, label, mf))
    _no_bounds(bounds, label)
    if not all(isinstance(m, type) for m in members):
        raise SchemaError(f"{label}: a union may only hold message classes and None")
    return mf(members, label)


def _optional(inner: Field) -> Field:
    inner_check, inner_decode = inner.check, inner.decode

    def check(v: Any) -> None:
        if v is not None:
            inner_check(v)

    fast = None if inner.fast is None else f"{{v}} is None or ({inner.fast})"
    if inner_decode is None:
        return Field(check, None, fast, inner.ref)

    def decode(raw: Any, level: int) -> Any:
        return None if raw is None else inner_decode(raw, level)

    return Field(check, decode, fast, inner.ref)


def _tuple(
    args: tuple[Any, ...], bounds: tuple[object, ...], label: str, mf: MessageField
) -> Field:
    if len(args) != 2 or args[1] is not Ellipsis:
        raise SchemaError(f"{label}: only tuple[T, ...] is supported")
    lo, hi = _lengths(bounds, label, MAX_ARRAY_LEN)
    item = _compile(args[0], (), f"{label}[]", mf)
    return Field(_tuple_check(label, lo, hi, item.check), _tuple_decode(label, lo, hi, item.decode))


def _tuple_check(label: str, lo: int, hi: int, item_check: Check) -> Check:
    def check(v: Any) -> None:
        if type(v) is not tuple:
            raise mismatch(label, "tuple", v)
        if not lo <= len(v) <= hi:
            raise _length_error(label, len(v), lo, hi)
        for x in v:
            item_check(x)

    return check


def _tuple_decode(label: str, lo: int, hi: int, item_decode: Decode | None) -> Decode:
    def decode(raw: Any, level: int) -> Any:
        if type(raw) is not list:
            raise mismatch(label, "array", raw)
        if level >= MAX_DEPTH:
            raise too_deep(label)
        if not lo <= len(raw) <= hi:
            raise _length_error(label, len(raw), lo, hi)
        if item_decode is None:
            return tuple(raw)
        return tuple([item_decode(x, level + 1) for x in raw])

    return decode


def compile_validator(fields: Sequence[Field], getter: Callable[[Any], Any]) -> Check:
    """One function checking every field of an instance; what ``__post_init__`` runs.

    Each field with a ``fast`` expression is tested inline and its ``check`` runs only when
    the expression is false (to raise, or to accept what the expression is too quick to
    prove, like non-ASCII text). The source holds only generated names and integers.
    """
    env: dict[str, Any] = {"getter": getter}
    lines = ["def validate(self):"]
    if fields:
        lines.append(f"    {''.join(f'v{i}, ' for i in range(len(fields)))}= getter(self)")
    for i, field in enumerate(fields):
        env[f"c{i}"], env[f"t{i}"] = field.check, field.ref
        if field.fast is None:
            lines.append(f"    c{i}(v{i})")
        else:
            expr = field.fast.replace("{v}", f"v{i}").replace("{t}", f"t{i}")
            lines.append(f"    if not ({expr}): c{i}(v{i})")
    lines.append("    return None")
    exec("\n".join(lines), env)  # noqa: S102 - generated from integers and fixed names
    validate: Check = env["validate"]
    return validate
