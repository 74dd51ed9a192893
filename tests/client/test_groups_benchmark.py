"""Smoke run of ``benchmarks.groups`` (shape only, never timings)."""

from __future__ import annotations

from benchmarks import groups, harness
from suites import SUITE_NAMES


def test_groups_benchmark_is_registered_and_runs() -> None:
    assert "groups" in harness.MODULES
    results = groups.run(quick=True)
    cases = {(r.group, r.name) for r in results}
    for suite in SUITE_NAMES:
        assert (suite, "encrypt 1 KiB") in cases
        assert (suite, "removal rotation (excl. pairwise sends)") in cases
    for r in results:
        assert r.ops_per_s > 0
        if r.name == "encrypt 1 KiB":
            assert r.extra["members"] == groups.MEMBERS
            # one body for the whole group: ciphertext of the 4 KiB bucket plus one signature
            assert int(r.extra["message_bytes"]) < 4096 + 16 + int(r.extra["signature_bytes"]) + 128
