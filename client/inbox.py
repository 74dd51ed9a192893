"""Received messages in the client store: saved, shown, and purged when they disappear.

A message is saved in the same transaction that marks its envelope id seen and saves the
session it decrypted with, before the node gets its ``Ack``. ``shown`` flips once the
shell handed it to the user (so a crash between saving and printing loses nothing), and a
disappearing message (``expire`` seconds after receipt) is deleted from the store by
:meth:`Inbox.purge_expired`, which returns it so the shell deletes its saved files too.
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


@message("client.saved-attachment")
class SavedAttachment:
    """An attachment of a received message: where it was saved and the SHA-256 of the
    plaintext once downloaded and verified; ``error`` a stable code if it never will be."""

    pointer: AttachmentPointer
    path: Annotated[str, MaxLen(PATH_LEN)] | None
    sha256: Bytes32 | None
    error: Annotated[str, MaxLen(ERROR_LEN)] | None


@message("client.message")
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
            yield decode(raw, StoredMessage)

    def get(self, key: bytes) -> StoredMessage | None:
        raw = self._store.get(NS_MESSAGES, key)
        return None if raw is None else decode(raw, StoredMessage)

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
