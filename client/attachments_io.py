"""The shell around ``client.attachments``: read a file, encrypt, upload; download, verify,
save.

Both directions stream, so memory stays at a few chunks whatever the size of the file.
Uploading first stats the file and compares its blob size with the limit the node
announces (``GET /v1/limits``; :class:`~client.errors.AttachmentTooLarge`, before a byte
is read), asks the node for a grant (``RequestBlobUpload``) over the client connection,
then PUTs the ciphertext with the grant's one-time token as the file is read and sealed
(``attachments.ChunkSealer``). Downloading GETs the blob from the home node (never more
than the pointer's ``cipher_size``) and decrypts it as it arrives into a hidden
temporary file in the save directory (``attachments.ChunkOpener``); only once the
length, every chunk, the padding and the digest checked out does the file get its
name: a sanitised, unique one (mode 0600, never replacing a file; ``client.savedfiles``),
recorded with its absolute path and identity so that only that file is ever deleted.
A blob that is gone or does not verify is marked with an error code; a network failure
leaves it pending for the next connection.
"""

from __future__ import annotations

import hashlib
import mimetypes
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, Final

import trio

from client import attachments, nodehttp, savedfiles
from client.content import MAX_CONTENT_TYPE, MAX_NAME, AttachmentPointer
from client.entropy import Entropy
from client.errors import AttachmentError, AttachmentTooLarge, NetworkError, Refused
from client.inbox import SavedAttachment, StoredMessage
from wire.relay import BlobGrant, RequestBlobUpload

DEFAULT_TYPE: Final = "application/octet-stream"
MISSING: Final = "attachment.missing"
INVALID: Final = "attachment.invalid"
UNSAVEABLE: Final = "attachment.unsaveable"
"""The blob verified but could not be written (no room, no permission, a name the file
system refuses): recorded instead of retried on every connection."""

READ_BLOCK: Final = 16 * attachments.CHUNK_SIZE
"""Bytes of the file read at a time when uploading (1 MiB)."""

Request = Callable[[Any], Awaitable[Any]]


async def upload_file(
    request: Request, node_url: str, path: Path, entropy: Entropy
) -> AttachmentPointer:
    """Encrypt and upload the file at ``path`` as it is read; the pointer to put in the
    message. Its size is checked against the node's limit before a byte is read."""
    size = (await trio.Path(path).stat()).st_size
    cipher_size = await _check_size(node_url, path, size)
    grant = await _grant(request, path, size, cipher_size)
    key = entropy.random_bytes(attachments.KEY_LEN)
    sealer = attachments.ChunkSealer(key, size)
    stream = _sealed_stream(path, sealer)
    await nodehttp.upload_blob(node_url, grant.blob, grant.upload_token, stream, cipher_size)
    content_type = mimetypes.guess_type(path.name)[0] or DEFAULT_TYPE
    return AttachmentPointer(
        blob=grant.blob,
        key=key,
        digest=sealer.digest,
        size=size,
        cipher_size=cipher_size,
        name=_truncate(path.name, MAX_NAME),
        content_type=_truncate(content_type, MAX_CONTENT_TYPE),
    )


async def _check_size(node_url: str, path: Path, size: int) -> int:
    """The blob size of a ``size``-byte file; :class:`AttachmentTooLarge` if it is above
    the node's announced limit (or the format's)."""
    if size > attachments.MAX_SIZE:
        raise _too_large(path, size, None, attachments.MAX_SIZE)
    cipher_size = attachments.cipher_size(size)
    limit = await nodehttp.fetch_max_blob(node_url)
    if limit is not None and cipher_size > limit:
        raise _too_large(path, size, cipher_size, limit)
    return cipher_size


async def _grant(request: Request, path: Path, size: int, cipher_size: int) -> BlobGrant:
    try:
        grant = await request(RequestBlobUpload(id=0, size=cipher_size, ttl=0))
    except Refused as exc:
        if exc.node_code == AttachmentTooLarge.code:  # a node that does not announce it
            raise AttachmentTooLarge(f"{path.name} is {size} bytes: {exc}") from None
        raise
    if not isinstance(grant, BlobGrant):
        raise NetworkError("unexpected answer to RequestBlobUpload")
    return grant


def _too_large(path: Path, size: int, cipher_size: int | None, limit: int) -> AttachmentTooLarge:
    sealed = "" if cipher_size is None else f" ({cipher_size} bytes encrypted)"
    return AttachmentTooLarge(f"{path.name} is {size} bytes{sealed}; the limit is {limit} bytes")


async def _sealed_stream(path: Path, sealer: attachments.ChunkSealer) -> AsyncIterator[bytes]:
    """The ciphertext of the file at ``path``, read :data:`READ_BLOCK` bytes at a time."""
    async with await trio.open_file(path, "rb") as f:
        while block := await f.read(READ_BLOCK):
            yield sealer.push(block)
    for chunk in sealer.finish():
        yield chunk


def pending_attachment(pointer: AttachmentPointer) -> SavedAttachment:
    return SavedAttachment(pointer=pointer, path=None, sha256=None, error=None)


async def download_all(
    msg: StoredMessage, node_url: str, save_dir: Path, own_domain: str = ""
) -> StoredMessage:
    """``msg`` with each pending attachment downloaded and saved, or marked failed.

    Blobs live on the sender's node; one of another domain than ``own_domain`` is fetched
    through the home node (``/v1/remote-blobs/``), which never tells the other node who
    asked."""
    domain = msg.sender.rpartition("@")[2].lower()
    remote = domain if own_domain and domain != own_domain.lower() else None
    done = [await _download(att, node_url, save_dir, remote) for att in msg.attachments]
    return replace(msg, attachments=tuple(done))


async def _download(
    att: SavedAttachment, node_url: str, save_dir: Path, remote: str | None
) -> SavedAttachment:
    if att.path is not None or att.error is not None:
        return att
    try:
        return await _download_to_file(att, node_url, save_dir, remote)
    except NetworkError:
        return att  # try again on the next connection
    except Refused:
        return replace(att, error=MISSING)
    except AttachmentError:
        return replace(att, error=INVALID)
    except OSError:
        return replace(att, error=UNSAVEABLE)


async def _download_to_file(
    att: SavedAttachment, node_url: str, save_dir: Path, remote: str | None
) -> SavedAttachment:
    """Decrypt the blob into a hidden temporary file as it arrives; name the file only
    once the whole attachment verified (the temporary file is removed on any failure)."""
    p = att.pointer
    opener = attachments.ChunkOpener(p.key, p.digest, p.size)
    directory = await trio.to_thread.run_sync(savedfiles.save_dir_path, save_dir)
    part, fd = await trio.to_thread.run_sync(savedfiles.create_part, directory)
    plain_hash = hashlib.sha256()
    try:
        async with trio.wrap_file(os.fdopen(fd, "wb")) as out:

            async def write(data: bytes) -> None:
                plain = opener.push(data)
                plain_hash.update(plain)
                await out.write(plain)

            await nodehttp.download_blob(node_url, p.blob, p.cipher_size, remote, write)
            opener.finish()
        path, saved = await trio.to_thread.run_sync(savedfiles.install, part, p.name)
    except BaseException:
        savedfiles.discard(part)
        raise
    return replace(att, path=str(path), sha256=plain_hash.digest(), file=saved)


def _truncate(text: str, max_bytes: int) -> str:
    return text.encode()[:max_bytes].decode(errors="ignore")
