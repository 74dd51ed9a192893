"""The shell around ``client.attachments``: read a file, encrypt, upload; download, verify,
save.

Uploading asks the node for a grant (``RequestBlobUpload``) over the client connection,
then PUTs the ciphertext with the grant's one-time token. Downloading GETs the blob from
the home node (never more than the pointer's ``cipher_size``), checks the digest and the
chunks, and saves the plaintext under the save directory with a sanitised, unique name
(mode 0600, never replacing a file; ``client.savedfiles``), recording its absolute path
and identity so that only that file is ever deleted. A blob that is gone or does not
verify is marked with an error code; a network failure leaves it pending for the next
connection.
"""

from __future__ import annotations

import hashlib
import mimetypes
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, Final

import trio

from client import attachments, nodehttp
from client.content import MAX_CONTENT_TYPE, MAX_NAME, AttachmentPointer
from client.entropy import Entropy
from client.errors import AttachmentError, NetworkError, Refused
from client.inbox import SavedAttachment, StoredMessage
from client.savedfiles import save_file
from wire.relay import BlobGrant, RequestBlobUpload

DEFAULT_TYPE: Final = "application/octet-stream"
MISSING: Final = "attachment.missing"
INVALID: Final = "attachment.invalid"
UNSAVEABLE: Final = "attachment.unsaveable"
"""The blob verified but could not be written (no room, no permission, a name the file
system refuses): recorded instead of retried on every connection."""

Request = Callable[[Any], Awaitable[Any]]


async def upload_file(
    request: Request, node_url: str, path: Path, entropy: Entropy
) -> AttachmentPointer:
    """Encrypt and upload the file at ``path``; the pointer to put in the message."""
    data = await trio.Path(path).read_bytes()
    key = entropy.random_bytes(attachments.KEY_LEN)
    sealed = attachments.encrypt(data, key)
    grant = await request(RequestBlobUpload(id=0, size=len(sealed.ciphertext), ttl=0))
    if not isinstance(grant, BlobGrant):
        raise NetworkError("unexpected answer to RequestBlobUpload")
    await nodehttp.upload_blob(node_url, grant.blob, grant.upload_token, sealed.ciphertext)
    content_type = mimetypes.guess_type(path.name)[0] or DEFAULT_TYPE
    return AttachmentPointer(
        blob=grant.blob,
        key=key,
        digest=sealed.digest,
        size=sealed.size,
        cipher_size=len(sealed.ciphertext),
        name=_truncate(path.name, MAX_NAME),
        content_type=_truncate(content_type, MAX_CONTENT_TYPE),
    )


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
    p = att.pointer
    try:
        ciphertext = await nodehttp.download_blob(node_url, p.blob, p.cipher_size, remote)
        plaintext = attachments.decrypt(ciphertext, p.key, p.digest, p.size)
    except NetworkError:
        return att  # try again on the next connection
    except Refused:
        return replace(att, error=MISSING)
    except AttachmentError:
        return replace(att, error=INVALID)
    try:
        path, saved = await trio.to_thread.run_sync(save_file, save_dir, p.name, plaintext)
    except (OSError, AttachmentError):
        return replace(att, error=UNSAVEABLE)
    return replace(att, path=str(path), sha256=hashlib.sha256(plaintext).digest(), file=saved)


def _truncate(text: str, max_bytes: int) -> str:
    return text.encode()[:max_bytes].decode(errors="ignore")
