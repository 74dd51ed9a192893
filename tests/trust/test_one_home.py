"""One home per shared rule (DESIGN section 2; issue 16): every node error code and every
shared limit is defined once, and the product never retypes it.

- each error code's string literal appears, as a Python string, only in
  ``trust/errors.py``;
- each limit is defined (``NAME =`` or ``NAME: Final =``) only in its home, and every
  other module imports it.
"""

from __future__ import annotations

import ast
import dataclasses
import io
import re
import tokenize
from pathlib import Path
from typing import Final

import pytest

from trust import errors, limits

ROOT: Final = Path(__file__).resolve().parents[2]
PRODUCT: Final = (
    "client",
    "federation",
    "node",
    "wire",
    "suites",
    "trust",
    "transport",
    "sealrelay",
)
ERRORS_HOME: Final = Path("trust/errors.py")
LIMITS_HOME: Final = Path("trust/limits.py")
NOT_A_CODE: Final = {("fed.routing", Path("wire/federation.py"))}
"""Strings equal to a code that are not one: ``fed.routing`` is also the wire tag of the
sealed routing layer message (another name space)."""

WIRE_LIMITS: Final = {
    "MAX_DEVICES": Path("wire/group.py"),
    "MAX_LAYER_BYTES": Path("wire/limits.py"),
    "MAX_DOCUMENT": Path("wire/limits.py"),
    "MAX_GROUP_RECIPIENTS": Path("wire/federation.py"),
}
"""Bounds of the wire format: their home is ``wire`` (which cannot import ``trust``);
``trust.limits`` re-exports them so that its table names every shared bound."""


def _sources() -> list[tuple[Path, str]]:
    return [
        (path.relative_to(ROOT), path.read_text(encoding="utf-8"))
        for package in PRODUCT
        for path in sorted((ROOT / package).rglob("*.py"))
    ]


SOURCES: Final = _sources()


def _strings(text: str) -> list[str]:
    """Every string literal of ``text``, evaluated (f-string parts are not literals)."""
    found = []
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        if token.type == tokenize.STRING:
            try:
                value = ast.literal_eval(token.string)
            except ValueError:
                continue
            if isinstance(value, str):
                found.append(value)
    return found


STRINGS: Final = {path: set(_strings(text)) for path, text in SOURCES}


def test_the_product_sources_are_found() -> None:
    assert {ERRORS_HOME, LIMITS_HOME, Path("node/errors.py")} <= set(STRINGS)  # control


@pytest.mark.parametrize("code", errors.CODES)
def test_an_error_code_is_written_once(code: str) -> None:
    assert code in STRINGS[ERRORS_HOME]
    elsewhere = sorted(
        str(path)
        for path, strings in STRINGS.items()
        if code in strings and path != ERRORS_HOME and (code, path) not in NOT_A_CODE
    )
    assert elsewhere == [], f"{code!r} is retyped; import it from trust.errors"


@pytest.mark.parametrize("name", errors.__all__)
def test_the_node_raises_the_codes_of_trust(name: str) -> None:
    from node import errors as node_errors

    assert getattr(node_errors, name) is getattr(errors, name)


def _definitions(name: str) -> list[Path]:
    pattern = re.compile(rf"^\s*{name}\s*(?::[^=\n]*)?=(?!=)", re.MULTILINE)
    return [path for path, text in SOURCES if pattern.search(text)]


@pytest.mark.parametrize("name", limits.__all__)
def test_a_limit_is_defined_once(name: str) -> None:
    home = WIRE_LIMITS.get(name, LIMITS_HOME)
    assert _definitions(name) == [home], f"{name} must be defined in {home} only"


def test_the_retryable_codes_are_the_nodes() -> None:
    assert set(errors.CODES) >= errors.RETRYABLE
    assert errors.TRANSIENT < errors.RETRYABLE
    assert {errors.PROTO_MALFORMED, errors.PROTO_UNEXPECTED} == errors.UNREADABLE


def test_limits_the_two_sides_read_are_the_same_objects() -> None:
    """The node's defaults and the client's bounds are the values of trust.limits."""
    from client import net, nodehttp
    from node.config import Config

    defaults = {field.name: field.default for field in dataclasses.fields(Config)}
    from node.fed import peers
    from wire.group import MAX_DEVICES

    assert nodehttp.MAX_DOCUMENT == peers.MAX_DOCUMENT == limits.MAX_DOCUMENT
    assert net.MAX_FRAME == limits.MAX_NODE_FRAME
    assert defaults["max_blob_bytes"] == limits.MAX_BLOB_BYTES
    assert defaults["max_frame_bytes"] == limits.MAX_CLIENT_FRAME
    assert limits.MAX_DEVICES == MAX_DEVICES == 16
