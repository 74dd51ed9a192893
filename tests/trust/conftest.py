"""The agencies of ``tests.federation`` (a domain's keys, certified by its root)."""

from __future__ import annotations

from tests.federation.conftest import agency_a, agency_c

__all__ = ["agency_a", "agency_c"]
