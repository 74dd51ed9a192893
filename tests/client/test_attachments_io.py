"""Saving downloaded attachments: bounded, unique file names; a file that cannot be written
is recorded as unsaveable instead of failing every connection."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from client import attachments, attachments_io, nodehttp
from client.attachments_io import UNSAVEABLE, download_all, pending_attachment
from client.content import AttachmentPointer
from client.inbox import StoredMessage
from client.savedfiles import NAME_MAX_BYTES, save_file


@pytest.mark.parametrize(
    "name",
    [
        "a" * 251 + ".txt",  # 255 bytes
        "é" * 125 + ".txt",  # 254 bytes, two per character
        "日本" * 42 + ".pdf",  # 256 bytes: a valid pointer name is never this long, still
        "x" * 255,  # no extension
        "a." + "e" * 253,  # an absurd extension
    ],
    ids=["ascii", "two-byte", "cjk", "no-extension", "long-extension"],
)
def test_long_names_saved_many_times_stay_within_the_limit(tmp_path: Path, name: str) -> None:
    paths = [save_file(tmp_path, name, bytes([i]))[0] for i in range(12)]
    assert len({p.name for p in paths}) == 12
    for i, path in enumerate(paths):
        assert len(path.name.encode()) <= NAME_MAX_BYTES
        assert path.read_bytes() == bytes([i])
    assert "-11" in paths[-1].name
    if name.endswith(".txt"):
        assert all(p.name.endswith(".txt") for p in paths)


def _message(name: str) -> tuple[StoredMessage, bytes]:
    key = b"\x07" * attachments.KEY_LEN
    sealed = attachments.encrypt(b"contents", key)
    pointer = AttachmentPointer(
        blob=b"\x01" * 16,
        key=key,
        digest=sealed.digest,
        size=sealed.size,
        cipher_size=len(sealed.ciphertext),
        name=name,
        content_type="text/plain",
    )
    msg = StoredMessage(
        eid=b"\x02" * 16,
        sender="alice@example.org",
        device=1,
        text="",
        sent=1,
        received=1,
        expire=None,
        expires_at=None,
        attachments=(pending_attachment(pointer),),
        shown=False,
    )
    return msg, sealed.ciphertext


async def test_a_file_that_cannot_be_written_is_marked_unsaveable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    msg, ciphertext = _message("notes.txt")

    async def download(
        node_url: str, blob: bytes, max_size: int, domain: str | None = None
    ) -> bytes:
        return ciphertext

    monkeypatch.setattr(nodehttp, "download_blob", download)
    not_a_dir = tmp_path / "file"
    await trio.Path(not_a_dir).write_bytes(b"")
    (att,) = (await download_all(msg, "http://node.invalid", not_a_dir)).attachments
    assert (att.error, att.path) == (UNSAVEABLE, None)

    def too_long(save_dir: Path, name: str, data: bytes) -> Path:
        raise OSError(36, "File name too long")

    monkeypatch.setattr(attachments_io, "save_file", too_long)
    (att,) = (await download_all(msg, "http://node.invalid", tmp_path)).attachments
    assert att.error == UNSAVEABLE
    # and a good save still works
    monkeypatch.undo()
    monkeypatch.setattr(nodehttp, "download_blob", download)
    (att,) = (await download_all(msg, "http://node.invalid", tmp_path / "ok")).attachments
    assert att.error is None
    assert att.path is not None
    assert await trio.Path(att.path).read_bytes() == b"contents"
