"""Messages accepted while the node could not be reached: written, not yet encrypted.

A send needs the node to encrypt (the recipient's prekeys for a first message, the key
document of another domain), so a message written while the node is down is kept here as
it was written, in the client's encrypted state store, and composed (encrypted, one
envelope per device, into the durable outbox) on the next connection. The draft is
deleted in the same store transaction that writes its envelopes to the outbox, so it is
neither lost nor sent twice.

A draft the node refuses for good when it is composed (an account that does not exist, an
identity key that changed) is dropped, and the refusal logged: the command running then
reports it on stderr.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import Annotated, Final, Protocol

import trio

from client.account import Account
from client.content import MAX_TEXT, Content, pack
from client.errors import ClientError, NetworkError, Refused
from client.outbox import RETRYABLE
from client.store.base import StateStore
from wire import U32, U64, Bytes16, MaxLen, decode, encode, message
from wire.e2e import Address

log = logging.getLogger(__name__)

NS_DRAFTS: Final = "drafts"
"""Store namespace of drafts, keyed by u64 sequence number || draft id (oldest first)."""


@message("client.draft")
class Draft:
    """One message to ``to``, as written at ``sent`` (ms since the epoch)."""

    draft_id: Bytes16
    to: Address
    text: Annotated[str, MaxLen(MAX_TEXT)]
    sent: U64
    expire: U32 | None
    ttl: U32


class Drafts:
    """Pending drafts in a :class:`StateStore`, oldest first."""

    def __init__(self, store: StateStore) -> None:
        self._store = store

    def add(self, draft: Draft) -> None:
        keys = self._store.items(NS_DRAFTS)
        seq = int.from_bytes(keys[-1][0][:8], "big") + 1 if keys else 1
        self._store.put(NS_DRAFTS, seq.to_bytes(8, "big") + draft.draft_id, encode(draft))

    def pending(self) -> list[Draft]:
        return [decode(raw, Draft) for _, raw in self._store.items(NS_DRAFTS)]

    def remove(self, draft_id: bytes) -> None:
        """Delete the draft (call inside the transaction that queued its envelopes)."""
        for key, _ in self._store.items(NS_DRAFTS):
            if key[8:] == draft_id:
                self._store.delete(NS_DRAFTS, key)

    def __len__(self) -> int:
        return len(self._store.items(NS_DRAFTS))


class Composer(Protocol):
    """Encrypts a plaintext for every device of an address into the outbox, running
    ``also`` in the same transaction (``client.sendpath.SendPath.compose``)."""

    async def compose(
        self, to: str, plaintext: bytes, ttl: int, *, also: Callable[[], None] | None = None
    ) -> list[bytes]: ...


class DraftSender:
    """Composes the drafts into the outbox on each connection.

    :attr:`sent` is set once the drafts were looked at (a send waits for it, so messages
    leave in the order they were written); :attr:`failed` holds the drafts refused for
    good, with the refusal, for the command to report."""

    def __init__(
        self, store: StateStore, drafts: Drafts, composer: Composer, account: Account
    ) -> None:
        self._store = store
        self._drafts = drafts
        self._composer = composer
        self._account = account
        self.sent = trio.Event()
        self.failed: list[tuple[Draft, ClientError]] = []

    async def send_all(self) -> None:
        """Compose every draft into the outbox, oldest first, then set :attr:`sent`. One
        the node refuses for good is dropped and kept in :attr:`failed`; a network failure
        or a passing refusal (:data:`RETRYABLE`) leaves it and the rest for the next
        connection. The pump is not woken here (the connection does that once)."""
        try:
            for draft in self._drafts.pending():
                try:
                    await self._composer.compose(
                        draft.to,
                        pack(content(draft, self._account)),
                        draft.ttl,
                        also=partial(self._drafts.remove, draft.draft_id),
                    )
                except Refused as exc:
                    if exc.node_code in RETRYABLE:
                        return
                    self._fail(draft, exc)
                except NetworkError:
                    raise
                except ClientError as exc:  # an identity that changed, a domain without keys
                    self._fail(draft, exc)
        finally:
            self.sent.set()  # a send waits for this, not for drafts left for later

    def _fail(self, draft: Draft, exc: ClientError) -> None:
        log.info("the message queued for %s was not sent: %s: %s", draft.to, exc.code, exc)
        with self._store.transaction():
            self._drafts.remove(draft.draft_id)
        self.failed.append((draft, exc))


def content(draft: Draft, account: Account) -> Content:
    """The message of ``draft``, with this account's reply token and mailbox."""
    info = account.info
    return Content(
        text=draft.text,
        sent=draft.sent,
        reply_token=info.delivery_token,
        reply_mailbox=info.mailbox,
        expire=draft.expire,
        attachments=(),
    )
