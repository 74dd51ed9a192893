"""Saving and loading a device's end-to-end state, and the account data of a client shell.

Every function takes a :class:`~client.store.StateStore`; every write is one store
transaction, so a crash leaves either the old or the new state. Records are the schemas of
``client.records``, encoded with ``wire``.

Device state (sessions, identities, prekeys)::

    save_device(store, device)                everything; the first save, and after any
                                              change not covered below
    load_device(store, keyring, *, entropy, clock) -> Device
                                              NoAccount when nothing was saved
    has_device(store) -> bool
    save_peer(store, device, address, device_id)
                                              after each encrypt/decrypt/start_session with
                                              that peer device, and after accept_identity:
                                              its session, the trust of its address, its
                                              certificate, the one-time prekeys consumed and
                                              base keys seen since the last save
    save_prekeys(store, device)               after generate_one_time, upload or
                                              rotate_signed_prekey

Received envelope ids (duplicates are dropped, also across restarts)::

    mark_seen(store, eid, expires_ms) -> bool True the first time, False for a duplicate
    purge_seen(store, now_ms) -> int          forget ids whose expiry is past; how many

Quarantined envelopes (acked, did not open for a reason that may pass; see ``NS_QUARANTINE``)::

    quarantine(store, envelope) -> bool       keep it; False (not kept) when the quarantine
                                              already holds ``QUARANTINE_LIMIT`` envelopes
    quarantined(store) -> list[Envelope]
    release(store, eid)                       forget it (opened, or known to never open)
    purge_quarantine(store, now_ms) -> int    forget the expired ones; how many

Safety numbers the user compared (``client verify --accept``)::

    mark_verified(store, address, identity)   the user compared the safety number made
                                              with this identity key (encoded)
    is_verified(store, address, identity) -> bool
                                              True only for that same identity key

Account data of the shell (``AccountInfo``, ``Contact`` from ``client.records``)::

    save_account_info(store, info) / load_account_info(store) -> AccountInfo | None
    save_contact(store, address, device, contact)
    load_contact(store, address, device) -> Contact | None
    delete_contact(store, address, device)
    contacts(store) -> dict[(address, device), Contact]

Layout: ``NS_ACCOUNT`` ``device`` (identity, certificate), ``info``, ``home-roots`` (the
home agency roots pinned at enrollment) and ``peer-roots`` (the home root's statement last
accepted, ``client.domaintrust``); ``NS_DOMAINS`` remote key documents by domain; ``NS_PREKEYS``
``pool`` plus one record per one-time key (``dh:``/``kem:`` + u32 id) and per seen base key
(``bk:`` + key); ``NS_SESSIONS``, ``NS_CERTS`` and ``NS_CONTACTS`` keyed by the encoded
``PeerKey``; ``NS_IDENTITIES`` by the UTF-8 address; ``NS_SEEN`` by envelope id; ``NS_META``
``records`` holds ``RECORDS_VERSION``; ``NS_QUARANTINE`` by envelope id; ``NS_VERIFIED`` by
the UTF-8 address. A record that
does not decode raises :class:`~client.errors.StoreError`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from client import persist_codec as codec
from client.entropy import SYSTEM_ENTROPY, Entropy
from client.errors import NoAccount, StoreError
from client.records import (
    RECORDS_VERSION,
    AccountInfo,
    Contact,
    DeviceRecord,
    HomeRoots,
    PeerKey,
    RecordsVersion,
    SeenRecord,
    VerifiedRecord,
)
from client.sealed import Keyring
from client.session import Device
from client.store.base import (
    NS_ACCOUNT,
    NS_CERTS,
    NS_CONTACTS,
    NS_DOMAINS,
    NS_IDENTITIES,
    NS_META,
    NS_PREKEYS,
    NS_QUARANTINE,
    NS_SEEN,
    NS_SESSIONS,
    NS_VERIFIED,
    StateStore,
)
from suites import SuiteError
from wire import WireError, decode, encode
from wire.relay import Envelope

__all__ = [
    "AccountInfo",
    "Contact",
    "contacts",
    "delete_contact",
    "has_device",
    "is_verified",
    "load_account_info",
    "load_contact",
    "load_device",
    "mark_seen",
    "mark_verified",
    "purge_seen",
    "save_account_info",
    "save_contact",
    "save_device",
    "save_peer",
    "save_prekeys",
]

DEVICE_SLOT = b"device"
INFO_SLOT = b"info"
RECORDS_SLOT = b"records"
HOME_ROOTS_SLOT = b"home-roots"
PEER_ROOTS_SLOT = b"peer-roots"


def peer_key(address: str, device: int) -> bytes:
    """The store key of a per-peer-device record."""
    return encode(PeerKey(address=address, device=device))


@contextmanager
def _corrupt_is_store_error() -> Iterator[None]:
    try:
        yield
    except (WireError, SuiteError, ValueError):
        raise StoreError("the client state holds a record that does not decode") from None


# --- the device ---------------------------------------------------------------------------


def has_device(store: StateStore) -> bool:
    return store.get(NS_ACCOUNT, DEVICE_SLOT) is not None


def save_device(store: StateStore, device: Device) -> None:
    """Write all of ``device``'s state, deleting records of anything it no longer holds."""
    with store.transaction():
        store.put(NS_META, RECORDS_SLOT, encode(RecordsVersion(RECORDS_VERSION)))
        store.put(NS_ACCOUNT, DEVICE_SLOT, encode(codec.device_record(device)))
        _sync(store, NS_PREKEYS, codec.pool_records(device.pool))
        _sync(store, NS_SESSIONS, codec.session_records(device))
        _sync(store, NS_IDENTITIES, codec.trust_records(device))
        _sync(store, NS_CERTS, codec.cert_records(device))
    codec.mark_pool_saved(device.pool)


def save_prekeys(store: StateStore, device: Device) -> None:
    """Write the prekey pool (new one-time keys, published ids, a rotated signed prekey)."""
    with store.transaction():
        _sync(store, NS_PREKEYS, codec.pool_records(device.pool))
    codec.mark_pool_saved(device.pool)


def save_peer(store: StateStore, device: Device, address: str, device_id: int) -> None:
    """Write what one message with ``(address, device_id)`` can have changed."""
    key = peer_key(address, device_id)
    pool = device.pool
    with store.transaction():
        _put_or_delete(store, NS_SESSIONS, key, codec.session_value(device, address, device_id))
        _put_or_delete(store, NS_IDENTITIES, address.encode(), codec.trust_value(device, address))
        _put_or_delete(store, NS_CERTS, key, codec.cert_value(device, address, device_id))
        if pool.unsaved_consumed or pool.unsaved_base_keys:
            for slot in codec.consumed_slots(pool):
                store.delete(NS_PREKEYS, slot)
            for slot, value in codec.base_key_records(pool.unsaved_base_keys).items():
                store.put(NS_PREKEYS, slot, value)
    codec.mark_pool_saved(pool)


def load_device(
    store: StateStore,
    keyring: Keyring,
    *,
    entropy: Entropy = SYSTEM_ENTROPY,
    clock: Callable[[], float] = time.time,
) -> Device:
    """The device saved in ``store``, with its sessions, trust and prekeys as saved."""
    raw = store.get(NS_ACCOUNT, DEVICE_SLOT)
    if raw is None:
        raise NoAccount("the client state holds no device; enroll first")
    _check_version(store)
    with _corrupt_is_store_error():
        record = decode(raw, DeviceRecord)
        identity = codec.identity_from_record(record)
        device = Device(
            address=record.address,
            device_id=record.device,
            identity=identity,
            pool=codec.pool_from_records(identity, store.items(NS_PREKEYS)),
            keyring=keyring,
            certificate=record.certificate,
            entropy=entropy,
            clock=clock,
        )
        device.sessions = codec.sessions_from_records(identity.suite, store.items(NS_SESSIONS))
        device.trust = codec.trust_from_records(store.items(NS_IDENTITIES))
        device.peer_certs = codec.certs_from_records(store.items(NS_CERTS))
    return device


def _check_version(store: StateStore) -> None:
    raw = store.get(NS_META, RECORDS_SLOT)
    with _corrupt_is_store_error():
        version = decode(raw, RecordsVersion).version if raw is not None else None
    if version != RECORDS_VERSION:
        raise StoreError(f"client state records of version {version}, not {RECORDS_VERSION}")


def _sync(store: StateStore, ns: str, wanted: dict[bytes, bytes]) -> None:
    """Make namespace ``ns`` hold exactly ``wanted``, writing only what differs."""
    for key, value in store.items(ns):
        if key not in wanted:
            store.delete(ns, key)
        elif wanted[key] == value:
            del wanted[key]
    for key, value in wanted.items():
        store.put(ns, key, value)


def _put_or_delete(store: StateStore, ns: str, key: bytes, value: bytes | None) -> None:
    if value is None:
        store.delete(ns, key)
    else:
        store.put(ns, key, value)


# --- seen envelope ids --------------------------------------------------------------------


def mark_seen(store: StateStore, eid: bytes, expires_ms: int) -> bool:
    """Record envelope id ``eid`` until ``expires_ms``; False if it was already recorded
    (a duplicate delivery, to be dropped)."""
    if store.get(NS_SEEN, eid) is not None:
        return False
    store.put(NS_SEEN, eid, encode(SeenRecord(expires=expires_ms)))
    return True


def purge_seen(store: StateStore, now_ms: int) -> int:
    """Forget the ids whose expiry is at or before ``now_ms``; returns how many."""
    purged = 0
    with store.transaction():
        for eid, raw in store.items(NS_SEEN):
            with _corrupt_is_store_error():
                expires = decode(raw, SeenRecord).expires
            if expires <= now_ms:
                store.delete(NS_SEEN, eid)
                purged += 1
    return purged


QUARANTINE_LIMIT = 1000
"""Envelopes the quarantine holds at most (anyone may seal an envelope to us)."""


def quarantine(store: StateStore, envelope: Envelope) -> bool:
    """Keep ``envelope`` to try again later; False if the quarantine is full."""
    with store.transaction():
        if store.get(NS_QUARANTINE, envelope.eid) is None:
            if len(store.items(NS_QUARANTINE)) >= QUARANTINE_LIMIT:
                return False
            store.put(NS_QUARANTINE, envelope.eid, encode(envelope))
    return True


def quarantined(store: StateStore) -> list[Envelope]:
    found = []
    for _, raw in store.items(NS_QUARANTINE):
        with _corrupt_is_store_error():
            found.append(decode(raw, Envelope))
    return found


def release(store: StateStore, eid: bytes) -> None:
    store.delete(NS_QUARANTINE, eid)


def purge_quarantine(store: StateStore, now_ms: int) -> int:
    """Forget the quarantined envelopes whose expiry is at or before ``now_ms``."""
    purged = 0
    with store.transaction():
        for envelope in quarantined(store):
            if envelope.expires <= now_ms:
                store.delete(NS_QUARANTINE, envelope.eid)
                purged += 1
    return purged


# --- compared safety numbers ----------------------------------------------------------------


def mark_verified(store: StateStore, address: str, identity: bytes) -> None:
    """The user compared the safety number with ``address`` made with ``identity``."""
    store.put(NS_VERIFIED, address.encode(), encode(VerifiedRecord(identity=identity)))


def is_verified(store: StateStore, address: str, identity: bytes) -> bool:
    """Whether the safety number with ``address`` was compared for this very ``identity``
    (a changed identity key is not verified, whatever was compared before)."""
    raw = store.get(NS_VERIFIED, address.encode())
    if raw is None:
        return False
    with _corrupt_is_store_error():
        return decode(raw, VerifiedRecord).identity == identity


# --- account data of the shell --------------------------------------------------------------


def save_account_info(store: StateStore, info: AccountInfo) -> None:
    store.put(NS_ACCOUNT, INFO_SLOT, encode(info))


def load_account_info(store: StateStore) -> AccountInfo | None:
    raw = store.get(NS_ACCOUNT, INFO_SLOT)
    if raw is None:
        return None
    with _corrupt_is_store_error():
        return decode(raw, AccountInfo)


def save_domain_document(store: StateStore, domain: str, document: bytes) -> None:
    store.put(NS_DOMAINS, domain.lower().encode(), document)


def domain_documents(store: StateStore) -> dict[str, bytes]:
    """Every remote domain's stored key document (encoded), by domain."""
    return {key.decode(): raw for key, raw in store.items(NS_DOMAINS)}


def save_home_roots(store: StateStore, roots: tuple[bytes, ...]) -> None:
    store.put(NS_ACCOUNT, HOME_ROOTS_SLOT, encode(HomeRoots(roots)))


def load_home_roots(store: StateStore) -> tuple[bytes, ...] | None:
    """The pinned home roots; ``None`` if none were ever pinned (a store enrolled before
    roots were pinned), ``()`` for a home domain without a root."""
    raw = store.get(NS_ACCOUNT, HOME_ROOTS_SLOT)
    if raw is None:
        return None
    with _corrupt_is_store_error():
        return decode(raw, HomeRoots).roots


def save_peer_roots(store: StateStore, statement: bytes) -> None:
    """The home root's peer-roots statement, encoded, as last accepted."""
    store.put(NS_ACCOUNT, PEER_ROOTS_SLOT, statement)


def load_peer_roots(store: StateStore) -> bytes | None:
    return store.get(NS_ACCOUNT, PEER_ROOTS_SLOT)


def save_contact(store: StateStore, address: str, device: int, contact: Contact) -> None:
    store.put(NS_CONTACTS, peer_key(address, device), encode(contact))


def load_contact(store: StateStore, address: str, device: int) -> Contact | None:
    raw = store.get(NS_CONTACTS, peer_key(address, device))
    if raw is None:
        return None
    with _corrupt_is_store_error():
        return decode(raw, Contact)


def delete_contact(store: StateStore, address: str, device: int) -> None:
    store.delete(NS_CONTACTS, peer_key(address, device))


def contacts(store: StateStore) -> dict[tuple[str, int], Contact]:
    """Every contact, by ``(address, device)``."""
    found: dict[tuple[str, int], Contact] = {}
    with _corrupt_is_store_error():
        for key, raw in store.items(NS_CONTACTS):
            peer = decode(key, PeerKey)
            found[(peer.address, peer.device)] = decode(raw, Contact)
    return found
