"""Each stable error code, from inputs crafted byte by byte or with plain msgpack."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest

import wire
from tests.wire.samples import (
    AllTypes,
    Checked,
    Color,
    Leaf,
    Other,
    Tree,
    VersionedV1,
    VersionedV2,
)
from wire.errors import (
    BAD_VERSION,
    DUPLICATE_FIELD,
    INVALID_VALUE,
    MALFORMED,
    MISSING_FIELD,
    NOT_CANONICAL,
    TOO_DEEP,
    TOO_LARGE,
    TYPE_MISMATCH,
    UNEXPECTED_TYPE,
    UNKNOWN_FIELD,
    UNKNOWN_TYPE,
)

LEAF = Leaf(b"data", "label")


def pack(value: Any) -> bytes:
    data: bytes = msgpack.packb(value, use_bin_type=True)
    return data


def message(tag: str, version: int, fields: dict[Any, Any]) -> bytes:
    return pack([tag, version, fields])


def leaf(**fields: Any) -> bytes:
    return message("test.leaf", 1, fields)


def error_code(data: bytes, expected: Any = None, **kwargs: Any) -> str:
    with pytest.raises(wire.WireError) as info:
        wire.decode(data, expected, **kwargs)
    assert info.value.code in wire.errors.CODES
    return info.value.code


def all_types_fields(**changes: Any) -> dict[str, Any]:
    base = AllTypes(
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
        nested=LEAF,
        either=Other(1),
        maybe_either=None,
        colors=(),
        optional_items=(),
        nonempty=("x",),
        bounded_opt=None,
        nested_tuples=(),
    )
    fields: dict[str, Any] = msgpack.unpackb(wire.encode(base))[2]
    assert set(changes) <= set(fields)
    return fields | changes


def test_the_crafted_baseline_decodes() -> None:
    assert wire.decode(message("test.all", 1, all_types_fields()), AllTypes).nested == LEAF
    assert wire.decode(leaf(data=b"data", label="label")) == LEAF


def test_unknown_field() -> None:
    assert error_code(leaf(data=b"d", label="l", extra=1)) == UNKNOWN_FIELD
    assert error_code(leaf(data=b"d", lable="l")) == UNKNOWN_FIELD
    assert error_code(message("test.leaf", 1, {b"data": b"d", "label": "l"})) == UNKNOWN_FIELD


def test_missing_field() -> None:
    assert error_code(leaf(data=b"d")) == MISSING_FIELD
    assert wire.decode(message("test.empty", 1, {})) is not None
    assert error_code(message("test.other", 1, {})) == MISSING_FIELD


def test_none_is_sent_not_omitted() -> None:
    fields = all_types_fields()
    del fields["maybe_int"]
    assert error_code(message("test.all", 1, fields)) == MISSING_FIELD


def test_duplicate_field() -> None:
    # fixarray(3) "test.other" 1 fixmap(2) {"n": 5, "n": 5}
    data = b"\x93\xaatest.other\x01\x82\xa1n\x05\xa1n\x05"
    assert error_code(data) == DUPLICATE_FIELD
    # the repeated name need not be the last one, nor carry the same value
    data = b"\x93\xa9test.leaf\x01\x83\xa4data\xc4\x00\xa5label\xa0\xa4data\xc4\x01x"
    assert error_code(data) == DUPLICATE_FIELD


def test_duplicate_field_in_a_nested_message() -> None:
    inner = b"\x93\xaatest.other\x01\x82\xa1n\x05\xa1n\x05"
    ok = message("test.all", 1, all_types_fields(either=["test.other", 1, {"n": 5}]))
    assert wire.decode(ok, AllTypes).either == Other(5)
    bad = ok.replace(b"\x93\xaatest.other\x01\x81\xa1n\x05", inner)
    assert bad != ok
    assert error_code(bad) == DUPLICATE_FIELD


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("number", True),  # bool is not int
        ("small", False),
        ("flag", 1),  # int is not bool
        ("flag", None),
        ("raw", "text"),  # str is not bytes
        ("text", b"bytes"),  # bytes is not str
        ("number", 1.0),  # no floats
        ("number", b"1"),
        ("color", "RED"),
        ("color", True),
        ("many", b"\x01\x02"),  # bin is not an array
        ("many", [1, "2"]),
        ("many", {"a": 1}),
        ("nested", {"data": b"", "label": ""}),  # a nested message is an array, not a map
        ("nested", ["test.other", 1, {"n": 1}]),  # not the declared class
        ("either", ["test.all", 1, {}]),
        ("nested", ["test.leaf", 1]),
        ("nested", [b"test.leaf", 1, {"data": b"", "label": ""}]),
        ("nonempty", "x"),
        ("optional_items", [1, None, "x"]),
        ("nested_tuples", [[True], [1]]),
        ("maybe_leaf", False),
    ],
)
def test_wrong_type(field: str, value: Any) -> None:
    assert error_code(message("test.all", 1, all_types_fields(**{field: value}))) == TYPE_MISMATCH


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("small", 11),
        ("small", -11),
        ("color", 3),
        ("colors", [1, 2, 4]),
        ("fixed", bytes(15)),  # shorter than Len(16)
        ("nonempty", []),  # MinLen(1)
        ("bounded_opt", b"abc"),
    ],
)
def test_invalid_value(field: str, value: Any) -> None:
    assert error_code(message("test.all", 1, all_types_fields(**{field: value}))) == INVALID_VALUE


def test_own_rule_of_a_class_is_invalid_value() -> None:
    with pytest.raises(ValueError, match="lo > hi"):
        Checked(2, 1)
    assert error_code(message("test.checked", 1, {"lo": 2, "hi": 1})) == INVALID_VALUE
    assert wire.decode(message("test.checked", 1, {"lo": 1, "hi": 2})) == Checked(1, 2)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("short", bytes(9)),  # MaxLen(8)
        ("fixed", bytes(17)),  # Len(16)
        ("short_text", "x" * 11),  # MaxLen(10)
        ("short_text", "é" * 6),  # 12 bytes of UTF-8 in 6 characters
        ("bounded", [bytes(16)] * 4),  # MaxLen(3)
        ("bounded_opt", b"abcde"),
    ],
)
def test_over_long_field(field: str, value: Any) -> None:
    assert error_code(message("test.all", 1, all_types_fields(**{field: value}))) == TOO_LARGE


def test_short_text_bound_counts_utf8_bytes() -> None:
    fields = all_types_fields(short_text="é" * 5)
    assert wire.decode(message("test.all", 1, fields), AllTypes).short_text == "é" * 5


def tree(depth: int) -> Tree:
    node = Tree(0)
    for _ in range(depth - 1):
        node = Tree(0, (node,))
    return node


def test_too_deep() -> None:
    assert wire.decode(wire.encode(tree(8)), Tree) == tree(8)  # level 15 (+ its empty tuple)
    assert error_code(wire.encode(tree(9))) == TOO_DEEP  # level 17
    assert error_code(b"\x91" * 5000 + b"\xc0") == TOO_DEEP  # beyond msgpack's own stack


def test_too_large_input() -> None:
    data = wire.encode(Leaf(bytes(64), "x" * 100))
    assert wire.decode(data, max_size=len(data)) == Leaf(bytes(64), "x" * 100)
    assert error_code(data, max_size=len(data) - 1) == TOO_LARGE
    assert error_code(bytes(wire.DEFAULT_MAX_SIZE + 1)) == TOO_LARGE


@pytest.mark.parametrize(
    "data",
    [
        b"\xdd\xff\xff\xff\xff",  # array32 claiming 4 G elements
        b"\xdd\x00\x01\x00\x01" + b"\xc0" * 65537,  # one element more than MAX_ARRAY_LEN
        pack({f"k{i}": 0 for i in range(65)}),  # map longer than MAX_FIELDS
    ],
)
def test_too_large_header(data: bytes) -> None:
    assert error_code(data) == TOO_LARGE


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xc1",  # never used
        b"\x93\xa9test.leaf",  # truncated
        b"\xc6\xff\xff\xff\xff",  # bin32 claiming 4 GiB (more than the input holds)
        b"\xdb\xff\xff\xff\xffabc",  # str32 claiming 4 GiB
        b"\x93\xa3\xff\xfe\xfd\x01\x80",  # invalid UTF-8 in a str
        b"\xd6\x05\x00\x00\x00\x01",  # ext type
        b"\xd6\xff\x00\x00\x00\x01",  # timestamp ext
        pack([{1: 2}]),  # int map key
    ],
)
def test_malformed(data: bytes) -> None:
    assert error_code(data) == MALFORMED


def test_trailing_bytes() -> None:
    data = wire.encode(LEAF)
    assert error_code(data + b"\xc0") == MALFORMED
    assert error_code(data + data) == MALFORMED


def test_not_a_message_array() -> None:
    for value in [None, 5, b"x", [], ["test.leaf", 1], ["test.leaf", 1, {}, 0], {"a": 1}]:
        assert error_code(pack(value)) == TYPE_MISMATCH
    assert error_code(pack(["test.leaf", True, {}])) == TYPE_MISMATCH
    assert error_code(pack(["test.leaf", "1", {}])) == TYPE_MISMATCH
    assert error_code(pack(["test.leaf", 1, []])) == TYPE_MISMATCH


def test_unknown_tag() -> None:
    assert error_code(leaf(data=b"", label="").replace(b"leaf", b"leak")) == UNKNOWN_TYPE
    assert error_code(message("", 1, {})) == UNKNOWN_TYPE


def test_bad_version() -> None:
    assert wire.decode(message("test.versioned", 1, {"a": 1})) == VersionedV1(1)
    assert error_code(message("test.versioned", 3, {"a": 1})) == BAD_VERSION
    assert error_code(message("test.versioned", 0, {"a": 1})) == BAD_VERSION
    assert error_code(message("test.leaf", 2, {"data": b"", "label": ""})) == BAD_VERSION


def test_unexpected_type() -> None:
    data = wire.encode(LEAF)
    assert error_code(data, Other) == UNEXPECTED_TYPE
    assert error_code(data, (Other, Tree)) == UNEXPECTED_TYPE
    assert error_code(wire.encode(VersionedV1(1)), VersionedV2) == UNEXPECTED_TYPE  # same tag


def test_expected_must_be_message_classes() -> None:
    with pytest.raises(TypeError):
        wire.decode(wire.encode(LEAF), int)
    with pytest.raises(TypeError):
        wire.decode("text")  # type: ignore[call-overload]


@pytest.mark.parametrize(
    ("canonical", "variant"),
    [
        (b"\x05", b"\xcc\x05"),  # uint8 for a fixint
        (b"\x05", b"\xd0\x05"),  # int8 for a fixint
        (b"\x05", b"\xcf" + (5).to_bytes(8, "big")),  # uint64 for a fixint
    ],
)
def test_non_minimal_int(canonical: bytes, variant: bytes) -> None:
    good = b"\x93\xaatest.other\x01\x81\xa1n" + canonical
    assert wire.decode(good) == Other(5)
    assert error_code(good[:-1] + variant) == NOT_CANONICAL


def test_non_canonical_headers() -> None:
    good = wire.encode(LEAF)
    assert good == b"\x93\xa9test.leaf\x01\x82\xa4data\xc4\x04data\xa5label\xa5label"
    variants = [
        good.replace(b"\x93", b"\xdc\x00\x03", 1),  # array16 for a fixarray
        good.replace(b"\x82", b"\xde\x00\x02", 1),  # map16 for a fixmap
        good.replace(b"\xa9test.leaf", b"\xd9\x09test.leaf"),  # str8 for a fixstr
        good.replace(b"\xc4\x04data", b"\xc5\x00\x04data"),  # bin16 for a bin8
        good.replace(b"\x01\x82", b"\xcc\x01\x82"),  # version as uint8
    ]
    for variant in variants:
        assert variant != good
        assert error_code(variant) == NOT_CANONICAL


def test_fields_out_of_declared_order() -> None:
    data = message("test.leaf", 1, {"label": "l", "data": b"d"})
    assert error_code(data) == NOT_CANONICAL


def test_wire_error_says_what() -> None:
    with pytest.raises(wire.WireError) as info:
        wire.decode(message("test.all", 1, all_types_fields(flag=1)))
    assert info.value.code == TYPE_MISMATCH
    assert "AllTypes.flag" in info.value.message
    assert "bool" in info.value.message
