"""Received messages in the client store: saved, shown, and purged when they disappear.

A message is saved in the same transaction that marks its envelope id seen and saves the
session it decrypted with, before the node gets its ``Ack``. ``shown`` flips once the
shell handed it to the user (so a crash between saving and printing loses nothing), and a
disappearing message (``expire`` seconds after receipt) is deleted from the store by
:meth:`Inbox.purge_expired`, which returns it so the shell deletes its saved files too.

A saved file is recorded by its absolute path and its identity (:class:`SavedFile`: device,
inode, size, modification time), taken when the client wrote it: the purge deletes a file
only while it is still that one. Records of version 1 (before the identity existed, with a
path that may be relative) still decode, as messages whose files have no identity.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Annotated, Final

from client.content import MAX_TEXT, AttachmentPointer
from client.store.base import NS_MESSAGES, StateStore
from wire import U32, U64, Bytes16, Bytes32, MaxLen, decode, encode, message
from wire.e2e import Address, DeviceId

ERROR_LEN: Final = 64
PATH_LEN: Final = 4096


@message("client.saved-file")
class SavedFile:
    """The file the client wrote, as ``os.lstat`` saw it right after: a file at the same
    path with another identity is not the client's (replaced, moved, edited)."""

    device: U64
    inode: U64
    size: U64
    mtime_ns: U64


@message("client.saved-attachment", version=2)
class SavedAttachment:
    """An attachment of a received message: where it was saved (an absolute path), the
    identity of the file written there and the SHA-256 of the plaintext once downloaded
    and verified; ``error`` a stable code if it never will be."""

    pointer: AttachmentPointer
    path: Annotated[str, MaxLen(PATH_LEN)] | None
    sha256: Bytes32 | None
    error: Annotated[str, MaxLen(ERROR_LEN)] | None
    file: SavedFile | None = None


@message("client.message", version=2)
class StoredMessage:
    """A received message; times in Unix ms, ``expire`` in seconds (``expires_at`` is
    ``received + expire``)."""

    eid: Bytes16
    sender: Address
    device: DeviceId
    text: Annotated[str, MaxLen(MAX_TEXT)]
    sent: U64
    received: U64
    expire: U32 | None
    expires_at: U64 | None
    attachments: Annotated[tuple[SavedAttachment, ...], MaxLen(32)]
    shown: bool

    @property
    def settled(self) -> bool:
        """Every attachment downloaded or given up."""
        return all(a.path is not None or a.error is not None for a in self.attachments)


@message("client.saved-attachment")
class SavedAttachmentV1:
    """Version 1 of :class:`SavedAttachment`: no file identity; ``path`` as given."""

    pointer: AttachmentPointer
    path: Annotated[str, MaxLen(PATH_LEN)] | None
    sha256: Bytes32 | None
    error: Annotated[str, MaxLen(ERROR_LEN)] | None


@message("client.message")
class StoredMessageV1:
    """Version 1 of :class:`StoredMessage` (attachments of version 1)."""

    eid: Bytes16
    sender: Address
    device: DeviceId
    text: Annotated[str, MaxLen(MAX_TEXT)]
    sent: U64
    received: U64
    expire: U32 | None
    expires_at: U64 | None
    attachments: Annotated[tuple[SavedAttachmentV1, ...], MaxLen(32)]
    shown: bool


def decode_stored(raw: bytes) -> StoredMessage:
    """A stored message of either version, as the current one."""
    msg = decode(raw, (StoredMessage, StoredMessageV1))
    if isinstance(msg, StoredMessage):
        return msg
    old = tuple(SavedAttachment(a.pointer, a.path, a.sha256, a.error) for a in msg.attachments)
    return StoredMessage(
        eid=msg.eid,
        sender=msg.sender,
        device=msg.device,
        text=msg.text,
        sent=msg.sent,
        received=msg.received,
        expire=msg.expire,
        expires_at=msg.expires_at,
        attachments=old,
        shown=msg.shown,
    )


def message_key(msg: StoredMessage) -> bytes:
    return msg.received.to_bytes(8, "big") + msg.eid


class Inbox:
    """Messages in :data:`NS_MESSAGES`, in order of receipt."""

    def __init__(self, store: StateStore) -> None:
        self._store = store

    def put(self, msg: StoredMessage) -> None:
        self._store.put(NS_MESSAGES, message_key(msg), encode(msg))

    def messages(self) -> Iterator[StoredMessage]:
        for _, raw in self._store.items(NS_MESSAGES):
            yield decode_stored(raw)

    def get(self, key: bytes) -> StoredMessage | None:
        raw = self._store.get(NS_MESSAGES, key)
        return None if raw is None else decode_stored(raw)

    def unshown(self) -> list[StoredMessage]:
        return [msg for msg in self.messages() if not msg.shown]

    def mark_shown(self, msg: StoredMessage) -> None:
        if self._store.get(NS_MESSAGES, message_key(msg)) is not None:
            self.put(replace(msg, shown=True))

    def purge_expired(self, now_ms: int) -> list[StoredMessage]:
        """Delete every message whose timer ran out; the deleted ones."""
        gone = [m for m in self.messages() if m.expires_at is not None and m.expires_at <= now_ms]
        with self._store.transaction():
            for msg in gone:
                self._store.delete(NS_MESSAGES, message_key(msg))
        return gone

    def next_expiry(self) -> int | None:
        """The earliest ``expires_at`` of a stored message (Unix ms), if any."""
        times = [m.expires_at for m in self.messages() if m.expires_at is not None]
        return min(times) if times else None
