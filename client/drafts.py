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

from typing import Annotated, Final

from client.content import MAX_TEXT
from client.store.base import StateStore
from wire import U32, U64, Bytes16, MaxLen, decode, encode, message
from wire.e2e import Address

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
