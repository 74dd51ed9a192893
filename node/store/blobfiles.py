"""Blob bytes as files next to the SQLite database, one file per blob.

A blob can be tens of MiB; kept out of the database it neither passes through the WAL
twice nor holds up the group commit while it is written. The database row says whether
a blob is uploaded; the file alone means nothing::

    put    write DIR/<hex>.<random>.part, fsync          (caller's thread, outside the writer)
           in the writer's transaction: check the grant, rename to DIR/<hex>, fsync DIR,
           mark the row uploaded, commit
    get    row uploaded and unexpired -> read DIR/<hex>
    sweep  delete the rows, commit, then unlink the files; then list the directory, ask
           the database which ids it has, and unlink files with no row (a crash between
           commit and unlink) and ``.part`` files older than an hour (a crash during an
           upload)

Every function here blocks; call them from a thread.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Final

_DIR_MODE: Final = 0o700
_FILE_MODE: Final = 0o600
_PART: Final = ".part"
_STALE_PART_SECONDS: Final = 3600


class BlobFiles:
    """The blob directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def create(self) -> None:
        self.directory.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)

    def path(self, blob: bytes) -> Path:
        return self.directory / blob.hex()

    def write_part(self, blob: bytes, data: bytes) -> Path:
        """Write ``data`` to a fresh ``.part`` file and fsync it; its path."""
        part = self.directory / f"{blob.hex()}.{secrets.token_hex(8)}{_PART}"
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _FILE_MODE)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        return part

    def install(self, part: Path, blob: bytes) -> None:
        """Rename ``part`` to the blob's name and make the rename durable."""
        os.replace(part, self.path(blob))
        self._sync_directory()

    def read(self, blob: bytes) -> bytes | None:
        try:
            return self.path(blob).read_bytes()
        except FileNotFoundError:
            return None

    def discard(self, paths: Iterable[Path]) -> None:
        for path in paths:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def delete(self, blobs: Iterable[bytes]) -> None:
        self.discard(self.path(blob) for blob in blobs)

    def listing(self) -> tuple[dict[bytes, Path], list[Path]]:
        """The blob files by id, and the junk: ``.part`` files older than an hour and
        names that are not blob ids. List first, then ask the database which ids it
        still has: a file installed after the listing is then never taken for an orphan.
        """
        stale_before = time.time() - _STALE_PART_SECONDS
        files: dict[bytes, Path] = {}
        junk: list[Path] = []
        for entry in os.scandir(self.directory):
            blob = _blob_id(entry.name)
            if blob is not None:
                files[blob] = Path(entry.path)
            elif not entry.name.endswith(_PART) or entry.stat().st_mtime < stale_before:
                junk.append(Path(entry.path))
        return files, junk

    def _sync_directory(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _blob_id(name: str) -> bytes | None:
    try:
        return bytes.fromhex(name)
    except ValueError:
        return None
