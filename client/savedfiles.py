"""The files the client writes for received attachments, and deleting them again.

Writing. The save directory is made absolute first, so a recorded path names the same file
whatever the working directory of a later command. The plaintext goes to a hidden
temporary file (``.<random>.part``, mode 0600, created exclusively) in that directory;
only once the attachment has verified is the file linked under its final name, a
sanitised one made unique with ``-n``, and the temporary name removed. ``os.link`` fails
rather than replace a file, so an existing file is never overwritten (on a file system
without hard links an empty placeholder is created exclusively and then replaced).

Deleting. :func:`remove_saved` unlinks a recorded file only while the file at its path is
still the one the client wrote: a regular file (``lstat``: not a symlink) with the
recorded device, inode, size and modification time. A file replaced, moved, edited or
never written there is left alone. A record without that identity (version 1) names a
file of the client only if its path is absolute and the file has the recorded size and
plaintext SHA-256; a relative one is never deleted (which directory it meant is unknown).

Every function here blocks; call them from a thread.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import secrets
import stat
from pathlib import Path
from typing import Final

from client.content import MAX_NAME
from client.inbox import SavedAttachment, SavedFile

FILE_MODE: Final = 0o600
UNNAMED: Final = "attachment"
PART_SUFFIX: Final = ".part"
NAME_MAX_BYTES: Final = 255
"""The longest file name (in UTF-8 bytes, with any ``-n`` suffix) that is written."""
MAX_EXTENSION_BYTES: Final = 32
MAX_NAME_TRIES: Final = 10_000
_READ_BLOCK: Final = 1 << 20
_NO_HARD_LINKS: Final = (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK)


def save_dir_path(save_dir: Path) -> Path:
    """``save_dir`` created if missing, as an absolute path with its symlinks resolved."""
    save_dir.mkdir(parents=True, exist_ok=True)
    return save_dir.resolve(strict=True)


def create_part(directory: Path) -> tuple[Path, int]:
    """A new hidden temporary file in ``directory`` (absolute): its path and a writable fd."""
    part = directory / f".{secrets.token_hex(12)}{PART_SUFFIX}"
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    return part, fd


def install(part: Path, name: str) -> tuple[Path, SavedFile]:
    """Give the verified temporary file ``part`` a new name beside it, never replacing a
    file; the path and its identity. ``part`` is gone afterwards (also on failure)."""
    try:
        path = _link_unique(part, name)
        info = os.lstat(path)
    finally:
        discard(part)
    return path, SavedFile(info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)


def save_file(save_dir: Path, name: str, data: bytes) -> tuple[Path, SavedFile]:
    """Write ``data`` to a new file in ``save_dir`` (never overwriting): its absolute
    path and identity."""
    part, fd = create_part(save_dir_path(save_dir))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
    except BaseException:
        discard(part)
        raise
    return install(part, name)


def discard(part: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        part.unlink()


def safe_name(name: str) -> str:
    """A file name without directories, control characters or a leading dot."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = "".join(c for c in base if c.isprintable()).strip().lstrip(".")
    return cleaned[:MAX_NAME] or UNNAMED


def candidate_names(name: str) -> list[str]:
    """The names tried in turn for ``name``: ``stem.ext``, ``stem-1.ext``, ... each at
    most :data:`NAME_MAX_BYTES` long, ``-n`` included (the stem is shortened)."""
    stem, dot, ext = safe_name(name).rpartition(".")
    if not dot:
        stem, ext = ext, ""
    suffix = _truncate(f".{ext}", MAX_EXTENSION_BYTES) if ext else ""
    names = []
    for n in range(MAX_NAME_TRIES):
        tail = suffix if n == 0 else f"-{n}{suffix}"
        names.append((_truncate(stem, NAME_MAX_BYTES - len(tail.encode())) or UNNAMED) + tail)
    return names


def _link_unique(part: Path, name: str) -> Path:
    for candidate in (part.parent / n for n in candidate_names(name)):
        try:
            os.link(part, candidate, follow_symlinks=False)
        except FileExistsError:
            continue
        except OSError as exc:
            if exc.errno not in _NO_HARD_LINKS:
                raise
            if not _claim(candidate):
                continue
            os.replace(part, candidate)
        return candidate
    raise FileExistsError(f"no free file name for {name!r} in the save directory")


def _claim(candidate: Path) -> bool:
    """Create ``candidate`` empty, exclusively; False if something is there already."""
    try:
        os.close(os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    except FileExistsError:
        return False
    return True


def remove_saved(att: SavedAttachment) -> bool:
    """Delete the file saved for ``att`` if it is still the one the client wrote; whether
    it was deleted. Never raises for a file that is gone, replaced or unreadable."""
    if att.path is None or not Path(att.path).is_absolute():
        return False
    path = Path(att.path)
    try:
        info = os.lstat(path)
        if not stat.S_ISREG(info.st_mode) or not _is_ours(path, info, att):
            return False
        path.unlink()
    except OSError:
        return False
    return True


def _is_ours(path: Path, info: os.stat_result, att: SavedAttachment) -> bool:
    if att.file is not None:
        seen = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
        return seen == (att.file.device, att.file.inode, att.file.size, att.file.mtime_ns)
    if att.sha256 is None or info.st_size != att.pointer.size:
        return False
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(_READ_BLOCK):
            digest.update(block)
    return digest.digest() == att.sha256


def _truncate(text: str, max_bytes: int) -> str:
    return text.encode()[:max_bytes].decode(errors="ignore")
