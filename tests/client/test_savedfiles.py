"""Saved attachment files: absolute paths, never an existing file replaced, and a purge that
deletes only the file the client wrote (issue 15)."""

from __future__ import annotations

import hashlib
import os
from dataclasses import replace
from pathlib import Path

import pytest

from client.content import AttachmentPointer
from client.inbox import SavedAttachment, SavedAttachmentV1, StoredMessageV1, decode_stored
from client.savedfiles import PART_SUFFIX, remove_saved, save_file
from wire import encode

DATA = b"the real attachment"


def _pointer(size: int = len(DATA)) -> AttachmentPointer:
    return AttachmentPointer(
        blob=b"\x01" * 16,
        key=b"\x02" * 32,
        digest=b"\x03" * 32,
        size=size,
        cipher_size=1040,
        name="note.txt",
        content_type="text/plain",
    )


def _saved(save_dir: Path, data: bytes = DATA) -> SavedAttachment:
    path, file = save_file(save_dir, "note.txt", data)
    sha = hashlib.sha256(data).digest()
    return SavedAttachment(_pointer(len(data)), str(path), sha, None, file)


def test_relative_save_dir_is_recorded_absolute_and_purged_from_anywhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    unrelated = second / "inbox2" / "note.txt"
    unrelated.parent.mkdir(parents=True)
    unrelated.write_bytes(b"someone else's note")
    monkeypatch.chdir(first)
    att = _saved(Path("inbox2"))
    assert att.path == str(first / "inbox2" / "note.txt")
    monkeypatch.chdir(second)
    assert remove_saved(att)
    assert not (first / "inbox2" / "note.txt").exists()
    assert unrelated.read_bytes() == b"someone else's note"


def test_an_existing_file_is_never_overwritten(tmp_path: Path) -> None:
    mine = tmp_path / "note.txt"
    mine.write_bytes(b"the user's own note")
    att = _saved(tmp_path)
    assert att.path == str(tmp_path / "note-1.txt")
    assert mine.read_bytes() == b"the user's own note"
    assert Path(att.path).read_bytes() == DATA
    assert sorted(p.name for p in tmp_path.iterdir()) == ["note-1.txt", "note.txt"]  # no .part


def test_a_replaced_file_is_left_alone(tmp_path: Path) -> None:
    att = _saved(tmp_path)
    assert att.path is not None
    other = tmp_path / "other"
    other.write_bytes(DATA)  # same size, same contents: still not the file written
    other.replace(att.path)
    assert not remove_saved(att)
    assert Path(att.path).read_bytes() == DATA


def test_an_edited_file_is_left_alone(tmp_path: Path) -> None:
    att = _saved(tmp_path)
    assert att.path is not None
    assert att.file is not None
    Path(att.path).write_bytes(b"edited in place, same inode")
    assert os.lstat(att.path).st_ino == att.file.inode
    assert not remove_saved(att)
    assert Path(att.path).exists()


def test_a_symlink_in_its_place_is_not_followed(tmp_path: Path) -> None:
    att = _saved(tmp_path / "saved")
    assert att.path is not None
    kept = tmp_path / "kept"
    os.replace(att.path, kept)
    Path(att.path).symlink_to(kept)
    assert not remove_saved(att)
    assert kept.read_bytes() == DATA
    assert Path(att.path).is_symlink()


def test_a_file_that_is_gone_is_no_error(tmp_path: Path) -> None:
    att = _saved(tmp_path)
    assert att.path is not None
    Path(att.path).unlink()
    assert not remove_saved(att)


def test_version_1_records_decode_and_are_deleted_only_when_provably_ours(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("inbox2").mkdir()
    relative = Path("inbox2") / "note.txt"
    relative.write_bytes(DATA)
    absolute = tmp_path / "abs.txt"
    absolute.write_bytes(DATA)
    changed = tmp_path / "changed.txt"
    changed.write_bytes(b"X" * len(DATA))
    sha = hashlib.sha256(DATA).digest()
    old = [SavedAttachmentV1(_pointer(), str(p), sha, None) for p in (relative, absolute, changed)]
    raw = encode(StoredMessageV1(b"\x04" * 16, "a@b.c", 1, "", 1, 2, 2, 2002, tuple(old), True))
    msg = decode_stored(raw)
    assert [a.file for a in msg.attachments] == [None, None, None]
    assert [a.path for a in msg.attachments] == [str(relative), str(absolute), str(changed)]
    assert [remove_saved(a) for a in msg.attachments] == [False, True, False]
    assert relative.exists()
    assert changed.exists()
    assert not absolute.exists()


def test_current_records_round_trip(tmp_path: Path) -> None:
    att = _saved(tmp_path)
    assert att.file is not None
    assert att.file.size == len(DATA)
    raw = encode(StoredMessageV1(b"\x04" * 16, "a@b.c", 1, "", 1, 2, None, None, (), True))
    upgraded = decode_stored(raw)
    msg = replace(upgraded, attachments=(att,))
    assert decode_stored(encode(msg)) == msg


def test_a_failed_write_leaves_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "link", refuse)
    with pytest.raises(OSError, match="No space"):
        save_file(tmp_path, "note.txt", DATA)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(PART_SUFFIX)]
    assert list(tmp_path.iterdir()) == []


def test_without_hard_links_an_existing_file_is_still_never_overwritten(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unsupported(*args: object, **kwargs: object) -> None:
        raise OSError(1, "Operation not permitted")  # EPERM: vfat and some FUSE mounts

    monkeypatch.setattr(os, "link", unsupported)
    mine = tmp_path / "note.txt"
    mine.write_bytes(b"the user's own note")
    att = _saved(tmp_path)
    assert att.path == str(tmp_path / "note-1.txt")
    assert Path(att.path).read_bytes() == DATA
    assert mine.read_bytes() == b"the user's own note"
    assert remove_saved(att)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["note.txt"]
