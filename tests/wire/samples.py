"""Sample message classes covering every supported field type, and hypothesis strategies.

Tags start with ``test.``; these classes exist only for the codec's tests.
"""

from __future__ import annotations

import enum
from typing import Annotated, Any, Optional, Union, get_args, get_origin

from hypothesis import strategies as st

import wire
from wire import U8, U64, Bytes16, Len, MaxLen, MinLen, Range, message


class Color(enum.IntEnum):
    NEGATIVE = -7
    RED = 1
    GREEN = 2
    WIDE = 300
    HUGE = 2**64 - 1


@message("test.leaf")
class Leaf:
    data: Annotated[bytes, MaxLen(64)]
    label: str


@message("test.other")
class Other:
    n: U8


@message("test.all")
class AllTypes:
    raw: bytes
    fixed: Bytes16
    short: Annotated[bytes, MaxLen(8)]
    text: str
    short_text: Annotated[str, MaxLen(10)]
    number: int
    small: Annotated[int, Range(-10, 10)]
    u64: U64
    flag: bool
    color: Color
    maybe_bytes: bytes | None
    maybe_int: Optional[int]  # noqa: UP045 - the typing spelling is supported too
    maybe_leaf: Leaf | None
    many: tuple[int, ...]
    bounded: Annotated[tuple[Bytes16, ...], MaxLen(3)]
    leaves: tuple[Leaf, ...]
    nested: Leaf
    either: Leaf | Other
    maybe_either: Union[Leaf, Other, None]  # noqa: UP007
    colors: tuple[Color, ...]
    optional_items: tuple[int | None, ...]
    nonempty: Annotated[tuple[str, ...], MinLen(1)]
    bounded_opt: Annotated[bytes | None, Len(4)]
    nested_tuples: tuple[tuple[bool, ...], ...]


@message("test.small")
class Small:
    flag: bool
    color: Color
    maybe: bytes | None
    big: U64


@message("test.tree")
class Tree:
    """Recursive (resolved at first use): each level of Tree is two levels of nesting."""

    value: int
    children: tuple[Tree, ...] = ()


@message("test.holder")
class Holder:
    """Names a class defined further down (a forward reference)."""

    later: Later


@message("test.later")
class Later:
    x: int = 0


@message("test.empty")
class Empty:
    pass


@message("test.versioned")
class VersionedV1:
    a: int


@message("test.versioned", version=2)
class VersionedV2:
    a: int
    b: str


@message("test.checked")
class Checked:
    """Has its own cross-field rule."""

    lo: int
    hi: int

    def __post_init__(self) -> None:
        if self.lo > self.hi:
            raise ValueError("lo > hi")


SAMPLES: tuple[type, ...] = (
    Leaf,
    Other,
    AllTypes,
    Small,
    Tree,
    Holder,
    Empty,
    VersionedV1,
    VersionedV2,
)


def strategy(hint: Any, bounds: tuple[Any, ...] = ()) -> st.SearchStrategy[Any]:
    """Valid values of an annotation, read through the same typing API the codec uses."""
    origin = get_origin(hint)
    if origin is Annotated:
        inner, *meta = get_args(hint)
        return strategy(inner, bounds + tuple(meta))
    lo = max([b.n for b in bounds if isinstance(b, MinLen | Len)], default=0)
    hi = min([b.n for b in bounds if isinstance(b, MaxLen | Len)], default=None)
    if get_args(hint) and type(None) in get_args(hint):
        rest = [a for a in get_args(hint) if a is not type(None)]
        inner = rest[0] if len(rest) == 1 else Union[tuple(rest)]  # noqa: UP007
        return st.none() | strategy(inner, bounds)
    if origin is Union or str(origin) == "<class 'types.UnionType'>":
        return st.one_of([strategy(a) for a in get_args(hint)])
    if origin is tuple:
        item = strategy(get_args(hint)[0])
        return st.lists(item, min_size=lo, max_size=min(hi or 4, 4)).map(tuple)
    return _leaf(hint, bounds, lo, hi)


def _leaf(hint: Any, bounds: tuple[Any, ...], lo: int, hi: int | None) -> st.SearchStrategy[Any]:
    if hint is bytes:
        return st.binary(min_size=lo, max_size=hi if hi is not None else 40)
    if hint is str:
        text = st.text(max_size=hi if hi is not None else 20)
        return text.filter(lambda s: lo <= len(s.encode()) <= (hi if hi is not None else 80))
    if hint is int:
        r_lo = max([b.lo for b in bounds if isinstance(b, Range)], default=-(2**63))
        r_hi = min([b.hi for b in bounds if isinstance(b, Range)], default=2**64 - 1)
        return st.integers(r_lo, r_hi)
    if hint is bool:
        return st.booleans()
    if isinstance(hint, type) and issubclass(hint, enum.IntEnum):
        return st.sampled_from(hint)
    if hint is Tree:
        return trees(depth=3)
    return messages(hint)


def messages(cls: type) -> st.SearchStrategy[Any]:
    """Valid instances of a (non-recursive) message class."""
    return st.builds(cls, *[strategy(h) for _, h in wire.message_info(cls).fields])


def trees(depth: int) -> st.SearchStrategy[Tree]:
    """Trees of at most ``depth`` levels of Tree."""
    leaf = st.builds(Tree, st.integers(-(2**63), 2**64 - 1))
    if depth <= 1:
        return leaf
    kids = st.lists(trees(depth - 1), max_size=3).map(tuple)
    return leaf | st.builds(Tree, st.integers(-5, 5), kids)


def any_sample() -> st.SearchStrategy[Any]:
    return st.one_of([trees(8) if cls is Tree else messages(cls) for cls in SAMPLES])
