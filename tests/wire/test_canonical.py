"""The canonical form, pinned by encodings written out by hand from the msgpack spec."""

from __future__ import annotations

import pytest

import wire
from tests.wire.samples import Color, Empty, Holder, Later, Small, Tree, VersionedV2

VECTORS = [
    (
        Tree(300, (Tree(-33),)),
        "93 a9 746573742e74726565 01 82"  # [ "test.tree", 1, {
        " a5 76616c7565 cd012c"  # "value": 300 as uint16
        " a8 6368696c6472656e 91"  # "children": [
        " 93 a9 746573742e74726565 01 82"  # [ "test.tree", 1, {
        " a5 76616c7565 d0df"  # "value": -33 as int8
        " a8 6368696c6472656e 90",  # "children": [] }]]}]
    ),
    (
        Small(True, Color.NEGATIVE, None, 2**64 - 1),
        "93 aa 746573742e736d616c6c 01 84"  # [ "test.small", 1, {
        " a4 666c6167 c3"  # "flag": true
        " a5 636f6c6f72 f9"  # "color": -7 as negative fixint
        " a5 6d61796265 c0"  # "maybe": nil
        " a3 626967 cfffffffffffffffff",  # "big": uint64 }]
    ),
    (
        Small(False, Color.WIDE, b"\x00" * 3, 127),
        "93 aa 746573742e736d616c6c 01 84"
        " a4 666c6167 c2"  # "flag": false
        " a5 636f6c6f72 cd012c"  # "color": 300
        " a5 6d61796265 c403000000"  # "maybe": bin8 of 3 bytes
        " a3 626967 7f",  # "big": 127 as positive fixint
    ),
    (
        VersionedV2(-(2**63), "é"),
        "93 ae 746573742e76657273696f6e6564 02 82"  # [ "test.versioned", 2, {
        " a1 61 d38000000000000000"  # "a": int64
        " a1 62 a2c3a9",  # "b": "é" in UTF-8 }]
    ),
    (
        Holder(Later(-32)),
        "93 ab 746573742e686f6c646572 01 81"  # [ "test.holder", 1, {
        " a5 6c61746572 93 aa 746573742e6c61746572 01 81"  # "later": [ "test.later", 1, {
        " a1 78 e0",  # "x": -32 as negative fixint }]}]
    ),
    (Empty(), "93 aa 746573742e656d707479 01 80"),
]


@pytest.mark.parametrize(("msg", "hexed"), VECTORS)
def test_known_encodings(msg: object, hexed: str) -> None:
    data = bytes.fromhex(hexed)
    assert wire.encode(msg) == data
    assert wire.decode(data, type(msg)) == msg
    assert wire.decode(bytearray(data), type(msg)) == msg


@pytest.mark.parametrize(
    ("value", "hexed"),
    [
        (127, "7f"),
        (128, "cc80"),
        (255, "ccff"),
        (256, "cd0100"),
        (65536, "ce00010000"),
        (2**32, "cf0000000100000000"),
        (-1, "ff"),
        (-32, "e0"),
        (-33, "d0df"),
        (-129, "d1ff7f"),
        (-32769, "d2ffff7fff"),
        (-(2**31) - 1, "d3ffffffff7fffffff"),
    ],
)
def test_ints_take_their_shortest_form(value: int, hexed: str) -> None:
    msg = Tree(value)
    data = wire.encode(msg)
    assert data.split(b"value", 1)[1].startswith(bytes.fromhex(hexed))
    assert wire.decode(data) == msg
