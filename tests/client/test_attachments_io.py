"""Saving downloaded attachments: bounded, unique file names; a file that cannot be written
is recorded as unsaveable instead of failing every connection."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import pytest
import trio

from client import attachments, nodehttp, savedfiles
from client.attachments_io import INVALID, UNSAVEABLE, download_all, pending_attachment
from client.content import AttachmentPointer
from client.errors import NetworkError
from client.inbox import SavedFile, StoredMessage
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
        node_url: str, blob: bytes, max_size: int, domain: str | None, sink: nodehttp.Sink
    ) -> None:
        await sink(ciphertext)

    monkeypatch.setattr(nodehttp, "download_blob", download)
    not_a_dir = tmp_path / "file"
    await trio.Path(not_a_dir).write_bytes(b"")
    (att,) = (await download_all(msg, "http://node.invalid", not_a_dir)).attachments
    assert (att.error, att.path) == (UNSAVEABLE, None)

    def too_long(part: Path, name: str) -> tuple[Path, SavedFile]:
        raise OSError(36, "File name too long")

    monkeypatch.setattr(savedfiles, "install", too_long)
    (att,) = (await download_all(msg, "http://node.invalid", tmp_path)).attachments
    assert att.error == UNSAVEABLE
    assert _names(tmp_path) == ["file"]  # no temporary file left
    # and a good save still works
    monkeypatch.undo()
    monkeypatch.setattr(nodehttp, "download_blob", download)
    (att,) = (await download_all(msg, "http://node.invalid", tmp_path / "ok")).attachments
    assert att.error is None
    assert att.path is not None
    assert await trio.Path(att.path).read_bytes() == b"contents"


def _serve(monkeypatch: pytest.MonkeyPatch, pieces: list[bytes], fail: bool = False) -> None:
    async def download(
        node_url: str, blob: bytes, max_size: int, domain: str | None, sink: nodehttp.Sink
    ) -> None:
        for piece in pieces:
            await sink(piece)
        if fail:
            raise NetworkError("connection reset")

    monkeypatch.setattr(nodehttp, "download_blob", download)


def _big_message(size: int) -> tuple[StoredMessage, bytes, bytes]:
    msg, _ = _message("big.bin")
    key = b"\x09" * attachments.KEY_LEN
    data = bytes(range(256)) * (size // 256)
    sealed = attachments.encrypt(data, key)
    pointer = replace(
        msg.attachments[0].pointer,
        key=key,
        digest=sealed.digest,
        size=len(data),
        cipher_size=len(sealed.ciphertext),
    )
    return replace(msg, attachments=(pending_attachment(pointer),)), sealed.ciphertext, data


async def test_a_multi_chunk_blob_is_saved_as_it_streams(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    msg, ciphertext, data = _big_message(5 * attachments.CHUNK_SIZE + 100)
    _serve(monkeypatch, [ciphertext[i : i + 7000] for i in range(0, len(ciphertext), 7000)])
    (att,) = (await download_all(msg, "http://node.invalid", tmp_path)).attachments
    assert att.error is None
    assert att.path == str(tmp_path / "big.bin")
    assert await trio.Path(att.path).read_bytes() == data
    assert att.sha256 == hashlib.sha256(data).digest()
    assert _names(tmp_path) == ["big.bin"]


@pytest.mark.parametrize("damage", ["flip", "truncate", "reorder", "extend"])
async def test_a_damaged_stream_leaves_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damage: str
) -> None:
    msg, ciphertext, _ = _big_message(5 * attachments.CHUNK_SIZE + 100)
    step = attachments.CHUNK_SIZE + attachments.TAG_LEN
    chunks = [ciphertext[i : i + step] for i in range(0, len(ciphertext), step)]
    if damage == "flip":
        chunks[3] = bytes([chunks[3][0] ^ 1]) + chunks[3][1:]
    elif damage == "truncate":
        chunks = chunks[:-1]
    elif damage == "reorder":
        chunks[1], chunks[2] = chunks[2], chunks[1]
    else:
        chunks.append(b"\x00")
    _serve(monkeypatch, chunks)
    (att,) = (await download_all(msg, "http://node.invalid", tmp_path)).attachments
    assert (att.error, att.path) == (INVALID, None)
    assert _names(tmp_path) == []


async def test_a_broken_connection_leaves_it_pending_and_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    msg, ciphertext, _ = _big_message(3 * attachments.CHUNK_SIZE)
    _serve(monkeypatch, [ciphertext[: len(ciphertext) // 2]], fail=True)
    (att,) = (await download_all(msg, "http://node.invalid", tmp_path)).attachments
    assert att == msg.attachments[0]
    assert _names(tmp_path) == []


def _names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())
