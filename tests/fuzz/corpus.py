"""The committed corpus: ``tests/fuzz/corpus/TARGET/`` holds, per target, the seeds made
by ``tests.fuzz.seeds`` (``seed-NN``), every input that once crashed a target
(``crash-<sha1>``, kept forever: the replay test is their regression test) and up to
:data:`MAX_KEPT` inputs that reached new coverage (``cov-<sha1>``), each at most
:data:`MAX_FILE` bytes."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).parent / "corpus"
MAX_FILE: Final = 16 * 1024
"""Largest ``cov-`` input kept (seeds and crashes are kept whatever their size)."""
MAX_KEPT: Final = 24
"""Most ``cov-`` inputs kept per target."""


def directory(target: str) -> Path:
    return ROOT / target


def files(target: str) -> list[Path]:
    folder = directory(target)
    return sorted(folder.iterdir()) if folder.is_dir() else []


def name_for(kind: str, data: bytes) -> str:
    return f"{kind}-{hashlib.sha1(data).hexdigest()[:16]}"  # noqa: S324 (a file name)


def save(target: str, kind: str, data: bytes) -> Path | None:
    """Add ``data`` as ``kind-<sha1>`` unless the same bytes are there already."""
    folder = directory(target)
    folder.mkdir(parents=True, exist_ok=True)
    if any(p.read_bytes() == data for p in folder.iterdir()):
        return None
    path = folder / name_for(kind, data)
    path.write_bytes(data)
    return path


def keep(target: str, candidates: list[Path]) -> int:
    """Add the smallest ``candidates`` as ``cov-`` inputs, up to :data:`MAX_KEPT` in all;
    how many were added."""
    room = MAX_KEPT - sum(1 for p in files(target) if p.name.startswith("cov-"))
    added = 0
    for path in sorted(candidates, key=lambda p: p.stat().st_size):
        if added >= room:
            break
        data = path.read_bytes()
        if len(data) <= MAX_FILE and save(target, "cov", data) is not None:
            added += 1
    return added
