"""A small filesystem of its own for a node's data directory, to fill up for real.

    with small_volume(tmp / "vol", SIZE) as vol:    # a tmpfs of SIZE bytes mounted there
        ...                                          # the node's data directory is vol
        filler = fill(vol / "filler")                # the rest of the space: ENOSPC now
        filler.unlink()                              # space is back

Mounting needs root (CI's container runs as root; so does the development container). A
write on a full tmpfs fails with ENOSPC exactly as on a full disk, which SQLite reports as
``SQLITE_FULL``: this is the honest fault, not a simulation of it.
"""

from __future__ import annotations

import contextlib
import errno
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Final

CHUNK: Final = 64 * 1024


@contextlib.contextmanager
def small_volume(path: Path, size: int) -> Iterator[Path]:
    """A tmpfs of ``size`` bytes mounted at ``path`` (created) for the block."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        raise AssertionError(
            "the disk-full test mounts a small tmpfs and needs root with CAP_SYS_ADMIN: "
            + mounted.stderr.strip()
        )
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)


def fill(path: Path, most: int) -> Path:
    """Write zeros to ``path`` until the filesystem is full (at most ``most`` bytes);
    AssertionError if it never filled."""
    chunk = bytes(CHUNK)
    written = 0
    with path.open("wb", buffering=0) as out:
        while written < most:
            try:
                written += out.write(chunk) or 0
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                break
        else:
            raise AssertionError(f"{path.parent} took {most} bytes without filling up")
    # The last partial chunk: what is left of the final block.
    with contextlib.suppress(OSError), path.open("ab", buffering=0) as out:
        while out.write(b"\0" * 512):
            pass
    return path
