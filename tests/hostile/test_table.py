"""The corpus itself: names unique, every category at the boundaries it concerns, every
expected code one of the documented stable codes (never a library's message)."""

from __future__ import annotations

from collections import Counter

from tests.hostile.corpus import ALL_CASES, STABLE_CODES
from tests.hostile.table import (
    BOUNDARIES,
    CATEGORIES,
    CLIENT_FRAME,
    ENVELOPE,
    FEDERATION_REQUEST,
    FORGED_CERT,
)


def test_case_names_are_unique_per_boundary() -> None:
    names = Counter((case.boundary, case.name) for case in ALL_CASES)
    assert [key for key, n in names.items() if n > 1] == []


def test_every_expected_code_is_a_stable_code() -> None:
    assert {case.code for case in ALL_CASES} <= STABLE_CODES


def test_every_category_and_boundary_has_cases() -> None:
    assert {case.category for case in ALL_CASES} == set(CATEGORIES)
    assert {case.boundary for case in ALL_CASES} == set(BOUNDARIES)


def test_the_wire_boundaries_cover_every_category_they_can_carry() -> None:
    """A node never sees a sender certificate (they are inside sealed envelopes), so
    forged certificates are the client's; every other category reaches both a node over
    its client socket and over federation, and a client in envelopes."""
    for boundary in (CLIENT_FRAME, FEDERATION_REQUEST, ENVELOPE):
        seen = {case.category for case in ALL_CASES if case.boundary == boundary}
        expected = set(CATEGORIES) - ({FORGED_CERT} if boundary != ENVELOPE else set())
        assert seen == expected, boundary
