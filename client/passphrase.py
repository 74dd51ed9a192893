"""The rules a new store passphrase must meet (checked at ``register`` only).

A passphrase is refused, with the rule it breaks, when it

* is shorter than ``MIN_LENGTH`` characters;
* is one character, or a short piece, repeated (``aaaaaaaaaaaa``, ``abcABCabcABC``);
* is a run of consecutive characters (``abcdefghijkl``, ``zyxwvutsrqpo``);
* is all digits (a PIN, not a passphrase);
* equals the account's address or its name, ignoring case.

Opening an existing store never applies these rules: a store made before them keeps its
passphrase. Lengths count characters of the NFC form, as the store's KDF reads it; the
repetition and run rules ignore case.
"""

from __future__ import annotations

import itertools
import unicodedata
from typing import Final

from client.errors import WeakPassphrase

MIN_LENGTH: Final = 12


def weakness(passphrase: str, address: str) -> str | None:
    """The rule ``passphrase`` breaks as a phrase for the user, or ``None`` if it is fine."""
    text = unicodedata.normalize("NFC", passphrase)
    folded = text.casefold()
    name = address.partition("@")[0]
    if len(text) < MIN_LENGTH:
        return f"it must be at least {MIN_LENGTH} characters long"
    if folded in (address.casefold(), name.casefold()):
        return "it must not be the account's address or name"
    if _repeated(folded):
        return "it must not be one character or a short piece repeated"
    if _sequence(folded):
        return "it must not be a run of consecutive characters"
    if text.isdigit():
        return "it must not be only digits"
    return None


def check(passphrase: str, address: str) -> None:
    """Raise :class:`WeakPassphrase`, naming the rule, if ``passphrase`` is too weak."""
    reason = weakness(passphrase, address)
    if reason is not None:
        raise WeakPassphrase(f"the passphrase is too weak: {reason}")


def _repeated(text: str) -> bool:
    """``text`` is some shorter string repeated (``x * k`` with ``k >= 2``)."""
    return text in (text + text)[1:-1]


def _sequence(text: str) -> bool:
    steps = {ord(b) - ord(a) for a, b in itertools.pairwise(text)}
    return steps in ({1}, {-1})
