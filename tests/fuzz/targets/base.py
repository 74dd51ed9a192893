"""What a fuzz target is, and the one oracle every target keeps.

A target is a function of one ``bytes`` input that drives a parser at a trust boundary
the way the product does, and lets through nothing but that parser's own error: each
call into the product sits in a ``refusing(PackageError)`` block, which swallows that
error type and nothing else. Whatever still escapes the target (``IndexError``,
``struct.error``, ``UnicodeDecodeError``, a library's ``ValueError``, ``RecursionError``,
``MemoryError``, a failed invariant ``assert``) is a finding.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

refusing = contextlib.suppress
"""``with refusing(WireError): ...``: the package's own refusal is an expected outcome."""


@dataclass(frozen=True)
class Target:
    name: str
    entry: str
    """The product entry point(s) the target drives."""
    refuses: str
    """The only error type(s) allowed out of the product."""
    run: Callable[[bytes], None]
    max_len: int = 4096
    """The fuzzer's largest input (``-max_len``); seeds may be larger."""
