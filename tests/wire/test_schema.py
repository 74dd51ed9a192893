"""Message classes: what ``@message`` accepts, refuses, and guarantees about instances."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterator
from typing import Annotated, Any, ClassVar

import pytest

import wire
from tests.wire.samples import AllTypes, Checked, Color, Holder, Later, Leaf, Other, Tree
from wire import MaxLen, MinLen, Range  # noqa: F401 - named in annotation strings below
from wire import schema as registry
from wire.errors import INVALID_VALUE, TOO_LARGE, TYPE_MISMATCH


@pytest.fixture
def isolated_registry() -> Iterator[None]:
    """Restore the registry after a test that registers (or half-registers) classes."""
    by_key, by_class = dict(registry.BY_KEY), dict(registry.BY_CLASS)
    tags, pending = set(registry.TAGS), list(registry.PENDING)
    yield
    registry.BY_KEY.clear()
    registry.BY_KEY.update(by_key)
    registry.BY_CLASS.clear()
    registry.BY_CLASS.update(by_class)
    registry.TAGS.clear()
    registry.TAGS.update(tags)
    registry.PENDING[:] = pending


def test_message_makes_a_frozen_slotted_dataclass() -> None:
    leaf = Leaf(b"d", "l")
    assert dataclasses.is_dataclass(leaf)
    assert not hasattr(leaf, "__dict__")
    with pytest.raises(dataclasses.FrozenInstanceError):
        leaf.label = "x"  # type: ignore[misc]
    assert Leaf(b"d", "l") == leaf
    assert {leaf, Leaf(b"d", "l")} == {leaf}


def test_message_info() -> None:
    info = wire.message_info(Leaf)
    assert (info.cls, info.tag, info.version) == (Leaf, "test.leaf", 1)
    assert [name for name, _ in info.fields] == ["data", "label"]
    assert info.fields[0][1] == Annotated[bytes, wire.MaxLen(64)]
    with pytest.raises(TypeError):
        wire.message_info(int)


def test_forward_references_and_recursion_resolve() -> None:
    assert wire.decode(wire.encode(Holder(Later(3))), Holder) == Holder(Later(3))
    deep = Tree(1, (Tree(2), Tree(3, (Tree(4),))))
    assert wire.decode(wire.encode(deep), Tree) == deep


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("raw", bytearray(b"x"), TYPE_MISMATCH),
        ("raw", memoryview(b"x"), TYPE_MISMATCH),
        ("text", b"x", TYPE_MISMATCH),
        ("number", True, TYPE_MISMATCH),
        ("number", 1.0, TYPE_MISMATCH),
        ("number", Color.RED, TYPE_MISMATCH),
        ("number", 2**64, INVALID_VALUE),
        ("number", -(2**63) - 1, INVALID_VALUE),
        ("u64", -1, INVALID_VALUE),
        ("small", 11, INVALID_VALUE),
        ("flag", 1, TYPE_MISMATCH),
        ("color", 1, TYPE_MISMATCH),
        ("fixed", bytes(15), INVALID_VALUE),
        ("fixed", bytes(17), TOO_LARGE),
        ("short_text", "é" * 6, TOO_LARGE),
        ("text", "\ud800", INVALID_VALUE),  # a lone surrogate cannot be UTF-8
        ("many", [1, 2], TYPE_MISMATCH),
        ("many", (1, "2"), TYPE_MISMATCH),
        ("bounded", (bytes(16),) * 4, TOO_LARGE),
        ("nonempty", (), INVALID_VALUE),
        ("nested", Other(1), TYPE_MISMATCH),
        ("either", None, TYPE_MISMATCH),
        ("maybe_either", Tree(1), TYPE_MISMATCH),
        ("optional_items", (1, None, True), TYPE_MISMATCH),
    ],
)
def test_construction_checks_every_field(field: str, value: Any, code: str) -> None:
    good = AllTypes(**all_types_kwargs())
    assert wire.decode(wire.encode(good), AllTypes) == good
    with pytest.raises(wire.WireError) as info:
        AllTypes(**all_types_kwargs(**{field: value}))
    assert info.value.code == code
    assert f"AllTypes.{field}" in info.value.message


def all_types_kwargs(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = dict(
        raw=b"",
        fixed=bytes(16),
        short=b"",
        text="",
        short_text="",
        number=0,
        small=0,
        u64=0,
        flag=False,
        color=Color.RED,
        maybe_bytes=None,
        maybe_int=None,
        maybe_leaf=None,
        many=(),
        bounded=(),
        leaves=(),
        nested=Leaf(b"", ""),
        either=Other(1),
        maybe_either=None,
        colors=(),
        optional_items=(),
        nonempty=("x",),
        bounded_opt=None,
        nested_tuples=(),
    )
    return base | changes


def test_replace_checks_too() -> None:
    with pytest.raises(wire.WireError):
        dataclasses.replace(Leaf(b"", ""), data=bytes(65))
    with pytest.raises(ValueError, match="lo > hi"):
        dataclasses.replace(Checked(1, 2), lo=3)


def test_encode_refuses_what_is_not_a_message() -> None:
    for value in [None, 1, b"x", {"a": 1}, [Leaf(b"", "")], Color.RED]:
        with pytest.raises(TypeError):
            wire.encode(value)


def test_encode_recovers_after_an_invalid_instance() -> None:
    broken = Leaf(b"", "")
    object.__setattr__(broken, "label", {1, 2})  # bypasses the frozen dataclass
    with pytest.raises(TypeError):
        wire.encode(broken)
    assert wire.encode(Other(5)) == b"\x93\xaatest.other\x01\x81\xa1n\x05"


@pytest.mark.usefixtures("isolated_registry")
def test_duplicate_tag_and_version_is_refused() -> None:
    with pytest.raises(wire.SchemaError, match="already registered"):

        @wire.message("test.leaf")
        class Again:
            x: int

    @wire.message("test.leaf", version=7)
    class NewVersion:
        x: int

    assert wire.decode(wire.encode(NewVersion(1)), NewVersion) == NewVersion(1)


@pytest.mark.usefixtures("isolated_registry")
@pytest.mark.parametrize(
    "annotation",
    [
        "float",
        "list[int]",
        "dict[str, int]",
        "set[int]",
        "tuple[int, str]",
        "tuple[int]",
        "tuple",
        "object",
        "Any",
        "int | str",
        "bytes | Leaf",
        "Annotated[int, MaxLen(3)]",
        "Annotated[bytes, Range(0, 1)]",
        "Annotated[bool, Range(0, 1)]",
        "Annotated[Leaf, MaxLen(1)]",
        "Annotated[int, Range(0, 2**64)]",
        "Annotated[int, Range(-(2**63) - 1, 0)]",
        "Annotated[int, Range(5, 4)]",
        "Annotated[bytes, MinLen(5), MaxLen(4)]",
        "Annotated[bytes, 'a comment']",
        "Annotated[tuple[int, ...], MaxLen(65537)]",
        "NotAMessage",
        "Huge",
    ],
)
def test_unsupported_annotations_are_refused(annotation: str) -> None:
    namespace: dict[str, Any] = {"__annotations__": {"x": annotation}}
    cls = type("Bad", (), namespace)
    cls.__module__ = __name__
    before = dict(registry.BY_KEY)
    with pytest.raises(wire.SchemaError):
        wire.message("test.bad")(cls)
    assert before == registry.BY_KEY


class NotAMessage:
    pass


class Huge(enum.IntEnum):
    BIG = 2**64


@pytest.mark.usefixtures("isolated_registry")
def test_structural_rules() -> None:
    with pytest.raises(wire.SchemaError):

        @wire.message("test.bad")
        @dataclasses.dataclass(frozen=True)
        class AlreadyADataclass:
            x: int

    with pytest.raises(wire.SchemaError):

        @wire.message("test.bad")
        class Subclass(Leaf):
            pass

    with pytest.raises(wire.SchemaError):

        @wire.message("test.bad")
        class KeywordOnly:
            x: int = dataclasses.field(kw_only=True)

    with pytest.raises(wire.SchemaError):

        @wire.message("test.bad")
        class NotInit:
            x: int = dataclasses.field(init=False, default=0)

    many = type("Many", (), {"__annotations__": {f"f{i}": "int" for i in range(65)}})
    with pytest.raises(wire.SchemaError):
        wire.message("test.bad")(many)
    assert "test.bad" not in registry.TAGS


@pytest.mark.parametrize(
    ("tag", "version"),
    [
        ("", 1),
        ("Upper", 1),
        ("a b", 1),
        ("x" * 65, 1),
        ("-x", 1),
        ("x", 0),
        ("x", True),
        ("x", 2**16),
    ],
)
def test_bad_tags_and_versions(tag: str, version: int) -> None:
    with pytest.raises(wire.SchemaError):
        wire.message(tag, version)


@pytest.mark.usefixtures("isolated_registry")
def test_class_variables_and_defaults() -> None:
    @wire.message("test.defaults")
    class WithDefaults:
        KIND: ClassVar[int] = 3
        a: int
        b: bytes = b""
        c: tuple[int, ...] = ()

    msg = WithDefaults(1)
    data = wire.encode(msg)
    assert data == b"\x93\xadtest.defaults\x01\x83\xa1a\x01\xa1b\xc4\x00\xa1c\x90"
    assert wire.decode(data, WithDefaults) == msg


@pytest.mark.usefixtures("isolated_registry")
def test_an_unresolvable_annotation_fails_at_first_use() -> None:
    @wire.message("test.dangling")
    class Dangling:
        x: Nowhere  # type: ignore[name-defined]  # noqa: F821

    assert registry.PENDING
    with pytest.raises(wire.SchemaError, match="unresolved"):
        wire.encode(Other(1))
    with pytest.raises(wire.SchemaError, match="unresolved"):
        wire.message_types()
    registry.PENDING.clear()
