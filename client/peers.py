"""What this device knows of a peer: the identity its sessions verified, and how to reach
each of its devices (the mailbox and delivery token the peer shared in its messages)."""

from __future__ import annotations

from client import persist
from client.records import Contact
from client.session import Device
from client.store.base import StateStore
from wire import decode
from wire.e2e import IdentityKey


def peer_identity(device: Device, address: str) -> IdentityKey | None:
    """The identity key ``device`` trusts for ``address`` (``None`` before any session)."""
    trust = device.trust.get(address)
    return None if trust is None else decode(trust.identity, IdentityKey)


def remember_contact(
    store: StateStore, address: str, device: int, mailbox: bytes | None, token: bytes | None
) -> None:
    """Keep the reply ``mailbox`` and ``token`` a peer device sent (nothing without a
    mailbox; written only if it changed)."""
    if mailbox is None:
        return
    contact = Contact(mailbox, token)
    if persist.load_contact(store, address, device) != contact:
        persist.save_contact(store, address, device, contact)
