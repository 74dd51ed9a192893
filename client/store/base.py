"""The client state store: a small namespaced key-value store of bytes.

Everything the client keeps between runs (sessions, trusted peer identities, its own
identity and prekeys, seen-message ids, messages) is bytes under a ``(namespace, key)``
slot. Callers encode their records with ``wire`` themselves; a store knows nothing of their
meaning. Two implementations: :class:`client.store.memory.MemoryStore` for tests and
:class:`client.store.sqlite.SqliteStore`, encrypted at rest.

A store is synchronous and not safe for concurrent use: the trio shell calls it from one
task (or one worker thread) at a time.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from contextlib import AbstractContextManager
from typing import Final, Protocol

# --- Namespaces the client uses -----------------------------------------------------------
NS_SESSIONS: Final = "sessions"
"""Ratchet sessions, keyed by peer address and device."""
NS_IDENTITIES: Final = "identities"
"""Trusted peer identity keys (and whether the user accepted a change), keyed by address."""
NS_PREKEYS: Final = "prekeys"
"""This device's private prekeys (signed, one-time, KEM, sealed-sender)."""
NS_ACCOUNT: Final = "account"
"""This device's own identity and account (address, device id, certificate)."""
NS_SEEN: Final = "seen"
"""Ids of messages already received, to reject replays across restarts."""
NS_MESSAGES: Final = "messages"
"""Message history, including disappearing-message timers."""
NS_META: Final = "meta"
"""Client bookkeeping (schema version of the records, last sync, settings)."""
NS_CERTS: Final = "certs"
"""Peer devices' sender certificates, keyed by peer address and device."""
NS_CONTACTS: Final = "contacts"
"""How to reach peer devices (mailbox id, delivery token), keyed by address and device."""
NS_QUARANTINE: Final = "quarantine"
"""Received envelopes (encoded ``wire.relay.Envelope``) that did not open for a reason that
may pass (a sender certificate expired or not known yet, a server key not pinned yet),
keyed by envelope id; kept until the envelope's own expiry."""
NS_DOMAINS: Final = "domains"
"""Key documents of other domains (as served through the home node and verified by this
client: first use, then only a successor signed by a known key), keyed by domain."""
NS_GROUPS: Final = "groups"
"""Groups this device is in (``client.groupnet.GroupNetRecord``: the group core's
``Group.to_bytes`` plus transport keys and pending controls), keyed by group id."""
NS_GROUP_MESSAGES: Final = "group-messages"
"""Which group a received group message belongs to: group id, keyed by envelope id."""
NS_VERIFIED: Final = "verified"
"""Peer identities whose safety number the user compared (``client verify --accept``): the
encoded identity key it was compared for, keyed by address (a later key is not verified)."""

NAMESPACES: Final = (
    NS_SESSIONS,
    NS_IDENTITIES,
    NS_PREKEYS,
    NS_ACCOUNT,
    NS_SEEN,
    NS_MESSAGES,
    NS_META,
    NS_CERTS,
    NS_CONTACTS,
    NS_QUARANTINE,
    NS_DOMAINS,
    NS_GROUPS,
    NS_GROUP_MESSAGES,
    NS_VERIFIED,
)

# A namespace is a short lower-case name; it never holds a NUL, so ``ns || 0x00 || key``
# is an unambiguous encoding of a slot.
_NAMESPACE_RE: Final = re.compile(r"[a-z][a-z0-9_.-]{0,63}")


class StateStore(Protocol):
    """A namespaced key-value store of bytes.

    Writes inside ``with store.transaction():`` land together or not at all: an exception
    leaving the block discards every write made in it. Transactions nest; an inner block
    that raises undoes only its own writes (if the outer block catches the exception).
    Reads inside a transaction see its pending writes.
    """

    def get(self, ns: str, key: bytes) -> bytes | None:
        """The value in slot ``(ns, key)``, or ``None``."""
        ...

    def put(self, ns: str, key: bytes, value: bytes) -> None:
        """Store ``value`` in slot ``(ns, key)``, replacing any previous value."""
        ...

    def delete(self, ns: str, key: bytes) -> None:
        """Remove slot ``(ns, key)``; nothing happens if it is empty."""
        ...

    def items(self, ns: str) -> list[tuple[bytes, bytes]]:
        """Every ``(key, value)`` of namespace ``ns``, sorted by key."""
        ...

    def put_many(self, ns: str, pairs: Iterable[tuple[bytes, bytes]]) -> None:
        """Store several values in ``ns`` in one transaction."""
        ...

    def transaction(self) -> AbstractContextManager[None]:
        """A block whose writes are applied atomically."""
        ...

    def close(self) -> None:
        """Release the store; any later call raises :class:`client.errors.StoreError`."""
        ...


def check_slot(ns: str, key: bytes) -> None:
    """Raise ``ValueError``/``TypeError`` unless ``(ns, key)`` is a valid slot."""
    if not isinstance(ns, str) or _NAMESPACE_RE.fullmatch(ns) is None:
        raise ValueError(f"invalid store namespace {ns!r}")
    if not isinstance(key, bytes):
        raise TypeError("a store key must be bytes")


def check_value(value: bytes) -> None:
    """Raise ``TypeError`` unless ``value`` is bytes."""
    if not isinstance(value, bytes):
        raise TypeError("a store value must be bytes")
