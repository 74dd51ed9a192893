"""The case record of the hostile-input corpus and its two vocabularies.

Every case names what it is (``category``), where it enters (``boundary``) and the stable
code that must refuse it (``code``: a node, client, federation or suite error code, or one of
the ``ITEM_*`` codes below for an item of a transaction that is itself answered).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Generic, TypeVar

from wire.federation import ITEM_OK, ITEM_REFUSED, ITEM_RETRY

SIZE_BOMB: Final = "size bomb"
WRONG_LENGTH: Final = "wrong length"
SWAPPED_KEY: Final = "swapped key type"
STRIPPED_PQ: Final = "stripped post-quantum half"
BAD_POINT: Final = "low-order or off-curve point"
REPLAY: Final = "replayed or stale"
FORGED_CERT: Final = "forged certificate"
CROSS_PROTOCOL: Final = "cross-protocol confusion"
CATEGORIES: Final = (
    SIZE_BOMB,
    WRONG_LENGTH,
    SWAPPED_KEY,
    STRIPPED_PQ,
    BAD_POINT,
    REPLAY,
    FORGED_CERT,
    CROSS_PROTOCOL,
)

CLIENT_FRAME: Final = "client frame to a node"
FEDERATION_REQUEST: Final = "federation request to a node"
ENVELOPE: Final = "envelope to a client"
KEY_DOCUMENT_CLIENT: Final = "key document to a client"
KEY_DOCUMENT_NODE: Final = "key document to a node"
PREKEY_BUNDLE: Final = "prekey bundle to a client"
BOUNDARIES: Final = (
    CLIENT_FRAME,
    FEDERATION_REQUEST,
    ENVELOPE,
    KEY_DOCUMENT_CLIENT,
    KEY_DOCUMENT_NODE,
    PREKEY_BUNDLE,
)

ITEM_CODES: Final = {
    ITEM_OK: "item.ok",
    ITEM_RETRY: "item.retry",
    ITEM_REFUSED: "item.refused",
}
"""A transaction item's result as a code of this table (the wire carries the int)."""

W = TypeVar("W")
I = TypeVar("I")  # noqa: E741 - the input a builder makes


@dataclass(frozen=True)
class Case(Generic[W, I]):
    """One hostile input: ``build(world)`` makes it from valid objects of ``world``."""

    name: str
    category: str
    boundary: str
    what: str
    code: str
    build: Callable[[W], I]

    def __post_init__(self) -> None:
        if self.category not in CATEGORIES or self.boundary not in BOUNDARIES:
            raise ValueError(f"case {self.name}: unknown category or boundary")

    def __str__(self) -> str:
        return self.name
