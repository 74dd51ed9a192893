"""The one helper through which tests read official test vectors.

Vectors live in ``../shared/vectors`` beside the repository (override with the environment
variable ``SEALRELAY_VECTORS``); vectors the project makes itself live in ``tests/vectors``.
"""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SHARED_VECTORS = Path(os.environ.get("SEALRELAY_VECTORS", REPO.parent / "shared" / "vectors"))
OWN_VECTORS = REPO / "tests" / "vectors"


@cache
def load_vectors(name: str) -> Any:
    """Parsed JSON of an official vector file, e.g. ``load_vectors("xwing.json")``."""
    path = SHARED_VECTORS / name
    if not path.is_file():
        raise FileNotFoundError(f"official vector file {path} is missing")
    with path.open("rb") as f:
        return json.load(f)


def load_own_vectors(name: str) -> Any:
    """Parsed JSON of a vector file the project generated (``tests/vectors``)."""
    with (OWN_VECTORS / name).open("rb") as f:
        return json.load(f)


def unhex(value: str) -> bytes:
    """Bytes from a hex string of either case."""
    return bytes.fromhex(value)
