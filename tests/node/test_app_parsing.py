"""node.http_routes' parsing of what an HTTP client chose: blob ids, upload tokens and
Content-Length (found by fuzzing, ``tests/fuzz``: the blob_request target)."""

from __future__ import annotations

import pytest

from node import http_routes

BLOB_HEX = "00112233445566778899aabbccddeeff"


def test_a_blob_id_is_exactly_32_hex_digits() -> None:
    assert http_routes._unhex(BLOB_HEX, http_routes.BLOB_ID_HEX) == bytes.fromhex(BLOB_HEX)
    assert http_routes._unhex(BLOB_HEX.upper(), http_routes.BLOB_ID_HEX) == bytes.fromhex(BLOB_HEX)


@pytest.mark.parametrize(
    "text",
    [
        "00 1122334455667788 99aabbccddee",  # bytes.fromhex skips the blanks: 15 bytes
        "00112233445566778899aabbccdd\tee\t",
        " 00112233445566778899aabbccddee ",
        "00112233445566778899aabbccddeefg",
        "\u0660\u0660112233445566778899aabbccddeeff",  # Arabic-Indic digits
        BLOB_HEX[:-2],
    ],
)
def test_anything_else_is_no_blob_id(text: str) -> None:
    assert http_routes._unhex(text, http_routes.BLOB_ID_HEX) is None


def test_a_bearer_token_with_blanks_inside_is_refused() -> None:
    token = "ab" * 32
    assert http_routes._bearer(
        {"headers": [(b"authorization", f"Bearer {token}".encode())]}
    ) == bytes([0xAB] * 32)
    spaced = b"ab " * 20 + b"abab"  # 64 characters, 22 bytes by bytes.fromhex
    assert http_routes._bearer({"headers": [(b"authorization", b"Bearer " + spaced)]}) is None


@pytest.mark.parametrize(("value", "length"), [(b"1040", 1040), (b" 7 ", 7), (b"0", 0)])
def test_content_length_reads_ascii_digits(value: bytes, length: int) -> None:
    assert http_routes._content_length({"headers": [(b"content-length", value)]}) == length


@pytest.mark.parametrize("value", [b"\xb2", b"1\xb9", b"-1", b"1e3", b"", b"\xd9\xa1"])
def test_a_content_length_of_other_characters_is_unreadable(value: bytes) -> None:
    # b"\xb2" is "²" in latin-1, a str.isdigit() character that int() refuses
    assert http_routes._content_length({"headers": [(b"content-length", value)]}) is None
