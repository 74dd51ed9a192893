"""The short round of faults between two domains (issue 19; the soak is ``make
chaos-fed``): each network fault of ``tests.resilience.fedchaos`` once, for a few seconds,
between alpha and bravo (real node processes, the fault proxy between them) while each
sends to the other. Nothing acknowledged is lost, nothing is duplicated, unexpected,
misrouted or corrupt, and after each fault delivery resumes over both directions within
``RESUME_LIMIT`` seconds of the heal."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.resilience.fedchaos import (
    LINKS,
    RESUME_LIMIT,
    SHORT_FAULTS,
    each_once,
    run,
    two_domains,
)

pytestmark = pytest.mark.slow


async def test_each_network_fault_once_loses_nothing_and_resumes_in_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    start = time.monotonic()
    async with two_domains(tmp_path) as world:
        report = await run(world, each_once(SHORT_FAULTS))
    with capsys.disabled():
        print(f"\n{report.table()}\nwall {time.monotonic() - start:.0f} s")
    assert [f.name for f in report.faults] == [name for name, _ in SHORT_FAULTS]
    counts = report.ledger.counts()
    assert counts["acknowledged"] > 0
    assert counts["acknowledged"] == counts["delivered"], counts
    assert report.ledger.valid(), report.ledger.problems()
    assert not report.stored_twice(), report.stored_twice()
    for fault in report.faults:
        assert set(fault.resume) == set(LINKS)
        for link, seconds in fault.resume.items():
            assert seconds is not None, f"{fault.name}: no delivery {link} after the heal"
            assert seconds <= RESUME_LIMIT, f"{fault.name}: {link} resumed {seconds} s after"
