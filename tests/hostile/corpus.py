"""Every case of the corpus, in one tuple, and the stable codes a case may expect."""

from __future__ import annotations

from typing import Any, Final

from client import errors as client_errors
from federation import errors as federation_errors
from node import errors as node_errors
from tests.hostile import (
    client_bundles,
    client_envelopes,
    documents,
    node_fed,
    node_frames,
)
from tests.hostile.table import ITEM_CODES, Case

ALL_CASES: Final[tuple[Case[Any, Any], ...]] = (
    *node_frames.CASES,
    *node_fed.CASES,
    *client_envelopes.CASES,
    *client_bundles.CASES,
    *documents.CLIENT_CASES,
    *documents.NODE_CASES,
)


def _codes(base: type) -> set[str]:
    found = {str(base.code)}  # type: ignore[attr-defined]
    for sub in base.__subclasses__():
        found |= _codes(sub)
    return found


STABLE_CODES: Final = frozenset(
    {
        *node_errors.CODES,
        *_codes(client_errors.ClientError),
        *_codes(federation_errors.FederationError),
        *ITEM_CODES.values(),
    }
)
"""The codes the node, the client and federation document as stable."""
