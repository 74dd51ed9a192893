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
from typing import TYPE_CHECKING, Annotated, Final

from client.content import MAX_TEXT, Content
from client.errors import ClientError, NetworkError, Refused
from client.outbox import RETRYABLE
from client.store.base import StateStore
from wire import U32, U64, Bytes16, MaxLen, decode, encode, message
from wire.e2e import Address

if TYPE_CHECKING:
    from client.app import Client

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


async def send_all(client: Client) -> None:
    """Compose every draft into the outbox, oldest first, then set ``client.drafts_sent``.
    One the node refuses for good is dropped and kept in ``client.drafts_failed`` (for the
    command to report); a network failure or a passing refusal (:data:`RETRYABLE`) leaves
    it and the rest for the next connection."""
    try:
        for draft in client.drafts.pending():
            try:
                await client._compose(draft.to, content(client, draft), draft.ttl, draft)
            except Refused as exc:
                if exc.node_code in RETRYABLE:
                    return
                _failed(client, draft, exc)
            except NetworkError:
                raise
            except ClientError as exc:  # an identity that changed, a domain without keys
                _failed(client, draft, exc)
    finally:
        client.drafts_sent.set()  # a send waits for this, not for drafts left for later


def content(client: Client, draft: Draft) -> Content:
    """The message of ``draft``, with this account's reply token and mailbox."""
    return Content(
        text=draft.text,
        sent=draft.sent,
        reply_token=client.info.delivery_token,
        reply_mailbox=client.info.mailbox,
        expire=draft.expire,
        attachments=(),
    )


def _failed(client: Client, draft: Draft, exc: ClientError) -> None:
    log.info("the message queued for %s was not sent: %s: %s", draft.to, exc.code, exc)
    with client.store.transaction():
        client.drafts.remove(draft.draft_id)
    client.drafts_failed.append((draft, exc))
