"""Feeding inputs to targets without a fuzzer (the corpus replay, and ``replay``)."""

from __future__ import annotations

import traceback
from pathlib import Path

from tests.fuzz import corpus
from tests.fuzz.targets import TARGETS


def failures(target: str) -> list[tuple[Path, str]]:
    """Every corpus file of ``target`` that makes something other than the target's own
    refusal escape, with the traceback's last line."""
    run = TARGETS[target].run
    failed = []
    for path in corpus.files(target):
        try:
            run(path.read_bytes())
        except Exception:  # anything at all is a finding
            failed.append((path, traceback.format_exc().strip().splitlines()[-1]))
    return failed
