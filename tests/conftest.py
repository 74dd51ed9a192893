"""Suite-wide pytest hooks.

``make test`` runs the suite in two worker processes, one test file per worker at a time
(pytest-xdist, ``--dist loadfile``), handing out files in collection order. The files that
start node processes, redis-servers or command-line runs take seconds to a minute each; the
unit tests take milliseconds. Collected in directory order, the slow files came last and
one worker finished minutes before the other. :func:`pytest_collection_modifyitems` moves
the slow directories' files to the front (a stable sort: the order inside a file, and of
files within each group, is kept), so the fast files fill in at the end.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import pytest

SLOW_FIRST: Final = ("resilience", "integration", "hostile", "k8s")
"""Directories under ``tests/`` whose files go first, in this order."""
SLOW_FILES: Final = ("test_benchmarks_smoke.py",)
"""Files directly under ``tests/`` that go with them."""
TESTS: Final = Path(__file__).parent


def _rank(path: Path) -> int:
    """The group of the test file at ``path``: its place in :data:`SLOW_FIRST`, then the
    slow top-level files, then everything else."""
    parts = path.relative_to(TESTS).parts
    if parts[0] in SLOW_FIRST:
        return SLOW_FIRST.index(parts[0])
    if parts[0] in SLOW_FILES:
        return len(SLOW_FIRST)
    return len(SLOW_FIRST) + 1


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Slow test files first (module docstring)."""
    items.sort(key=lambda item: _rank(item.path))
