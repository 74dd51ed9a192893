"""Field bounds for message schemas, used inside ``typing.Annotated``.

    Annotated[bytes, MaxLen(64)]          at most 64 bytes
    Annotated[bytes, Len(32)]             exactly 32 bytes
    Annotated[str, MaxLen(255)]           at most 255 bytes of UTF-8 (not characters)
    Annotated[tuple[T, ...], MinLen(1)]   at least one element
    Annotated[int, Range(0, 2**32 - 1)]   an inclusive range

A bound applies to the type it wraps; on ``Annotated[T | None, ...]`` it applies to ``T``.
Lengths count bytes for ``bytes``, UTF-8 bytes for ``str`` and elements for tuples. An ``int``
without a ``Range`` may take any value msgpack can carry: ``INT_MIN`` (-2**63) to ``INT_MAX``
(2**64 - 1); a ``Range`` must lie within those. Several bounds on one field all apply.

The aliases below name the common cases; mypy sees them as plain ``int`` and ``bytes``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, TypeAlias

INT_MIN = -(2**63)
INT_MAX = 2**64 - 1


@dataclass(frozen=True, slots=True)
class MaxLen:
    """Upper bound on a length (inclusive)."""

    n: int


@dataclass(frozen=True, slots=True)
class MinLen:
    """Lower bound on a length (inclusive)."""

    n: int


@dataclass(frozen=True, slots=True)
class Len:
    """Exact length."""

    n: int


@dataclass(frozen=True, slots=True)
class Range:
    """Inclusive bounds of an ``int``: ``lo <= value <= hi``."""

    lo: int
    hi: int


Bound: TypeAlias = MaxLen | MinLen | Len | Range

U8: TypeAlias = Annotated[int, Range(0, 2**8 - 1)]
U16: TypeAlias = Annotated[int, Range(0, 2**16 - 1)]
U32: TypeAlias = Annotated[int, Range(0, 2**32 - 1)]
U64: TypeAlias = Annotated[int, Range(0, 2**64 - 1)]
I64: TypeAlias = Annotated[int, Range(-(2**63), 2**63 - 1)]

Bytes16: TypeAlias = Annotated[bytes, Len(16)]
Bytes32: TypeAlias = Annotated[bytes, Len(32)]
Bytes64: TypeAlias = Annotated[bytes, Len(64)]
