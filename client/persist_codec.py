"""Conversions between the client's live objects and the records of ``client.records``.

``client.persist`` decides what to write when; this module only maps a ``Device``, its
``PrekeyPool``, sessions, trust and certificates to ``{store key: encoded record}`` and
back. Loading is exact: every field of a ratchet state, a session and the pool reads back as
it was (private keys through their suite's serialisation, the skipped keys in eviction
order, the time of the last KEM step bit for bit).

A session's persisted form is its wire schema (``SessionRecord`` with its ``RatchetRecord``,
encoded by ``wire``); the conversion is derived by field name from the live classes
(:class:`Mirror`), with one converter per kind of value that is not already a wire value.
"""

from __future__ import annotations

import dataclasses
import operator
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final, get_type_hints

from client.errors import StoreError
from client.identity import Identity, PrekeyPool
from client.ratchet import RatchetState
from client.records import (
    DeviceRecord,
    OneTimeKeyRecord,
    PeerCertRecord,
    PeerKey,
    PoolRecord,
    RatchetRecord,
    SessionRecord,
    SkippedKeyRecord,
    TrustRecord,
)
from client.session import Device, Peer, Session, Trust
from suites import Suite, get_suite_by_id
from suites.dh import DhPrivateKey
from suites.kem import MlKemPrivateKey
from suites.sig import SigPrivateKey
from wire import decode, encode
from wire.e2e import SenderCertificate

POOL_SLOT: Final = b"pool"
DH_PREFIX: Final = b"dh:"
KEM_PREFIX: Final = b"kem:"
BASE_KEY_PREFIX: Final = b"bk:"
_ID: Final = struct.Struct(">I")
_FLOAT: Final = struct.Struct(">d")

Records = dict[bytes, bytes]


def _peer_key(peer: Peer) -> bytes:
    return encode(PeerKey(address=peer[0], device=peer[1]))


def _peer(key: bytes) -> Peer:
    decoded = decode(key, PeerKey)
    return decoded.address, decoded.device


# --- identity and account -----------------------------------------------------------------


def device_record(device: Device) -> DeviceRecord:
    suite = device.suite
    return DeviceRecord(
        suite=suite.suite_id,
        address=device.address,
        device=device.device_id,
        sig_key=suite.sig.private_key_bytes(device.identity.sig_key),
        dh_key=suite.dh.private_key_bytes(device.identity.dh_key),
        identity=device.identity.public,
        certificate=device.certificate,
    )


def identity_from_record(record: DeviceRecord) -> Identity:
    """The identity with its public key exactly as published (signatures are not remade)."""
    suite = get_suite_by_id(record.suite)
    sig_key: SigPrivateKey = suite.sig.private_key_from_bytes(record.sig_key)
    dh_key = suite.dh.private_key_from_bytes(record.dh_key)
    public = record.identity
    if (
        public.suite != suite.suite_id
        or public.sig != suite.sig.public_key_bytes(sig_key)
        or public.dh != suite.dh.public_key_bytes(dh_key)
    ):
        raise StoreError("the stored identity's keys do not match its public key")
    return Identity(suite, sig_key, dh_key, public)


# --- prekey pool --------------------------------------------------------------------------


def _id_slot(prefix: bytes, key_id: int) -> bytes:
    return prefix + _ID.pack(key_id)


def pool_records(pool: PrekeyPool) -> Records:
    suite = pool.suite
    record = PoolRecord(
        signed_prekey_id=pool.signed_prekey_id,
        signed_prekey=suite.dh.private_key_bytes(pool.signed_prekey),
        sealed_key_id=pool.sealed_key_id,
        sealed_key=suite.kem.private_key_bytes(pool.sealed_key),
        last_resort_id=pool.last_resort_id,
        last_resort=suite.ratchet_kem.private_key_bytes(pool.last_resort),
        next_id=pool.next_id,
        published_dh=tuple(sorted(pool.published_dh)),
        published_kem=tuple(sorted(pool.published_kem)),
    )
    records = {POOL_SLOT: encode(record)}
    for key_id, dh_key in pool.one_time_dh.items():
        private = suite.dh.private_key_bytes(dh_key)
        records[_id_slot(DH_PREFIX, key_id)] = encode(OneTimeKeyRecord(private=private))
    for key_id, kem_key in pool.one_time_kem.items():
        seed = suite.ratchet_kem.private_key_bytes(kem_key)
        records[_id_slot(KEM_PREFIX, key_id)] = encode(OneTimeKeyRecord(private=seed))
    records.update(base_key_records(pool.base_keys_seen))
    return records


def base_key_records(base_keys: Iterable[bytes]) -> Records:
    return {BASE_KEY_PREFIX + key: b"" for key in base_keys}


def consumed_slots(pool: PrekeyPool) -> list[bytes]:
    """The slots of the one-time keys consumed since the last save (ids are unique across
    DH and KEM keys, so both slots of an id are named)."""
    ids = pool.unsaved_consumed
    return [_id_slot(p, i) for i in sorted(ids) for p in (DH_PREFIX, KEM_PREFIX)]


def mark_pool_saved(pool: PrekeyPool) -> None:
    pool.unsaved_consumed.clear()
    pool.unsaved_base_keys.clear()


def pool_from_records(identity: Identity, items: Iterable[tuple[bytes, bytes]]) -> PrekeyPool:
    suite = identity.suite
    record: PoolRecord | None = None
    pool_dh, pool_kem, seen = {}, {}, set()
    for slot, raw in items:  # sorted by slot, so one-time keys come in ascending id order
        if slot == POOL_SLOT:
            record = decode(raw, PoolRecord)
        elif slot.startswith(DH_PREFIX):
            private = decode(raw, OneTimeKeyRecord).private
            pool_dh[_ID.unpack(slot[len(DH_PREFIX) :])[0]] = suite.dh.private_key_from_bytes(
                private
            )
        elif slot.startswith(KEM_PREFIX):
            seed = decode(raw, OneTimeKeyRecord).private
            key_id = _ID.unpack(slot[len(KEM_PREFIX) :])[0]
            pool_kem[key_id] = suite.ratchet_kem.private_key_from_seed(seed)
        elif slot.startswith(BASE_KEY_PREFIX):
            seen.add(slot[len(BASE_KEY_PREFIX) :])
    if record is None:
        raise StoreError("the client state holds no prekey pool")
    return PrekeyPool(
        identity=identity,
        signed_prekey_id=record.signed_prekey_id,
        signed_prekey=suite.dh.private_key_from_bytes(record.signed_prekey),
        sealed_key_id=record.sealed_key_id,
        sealed_key=suite.kem.private_key_from_seed(record.sealed_key),
        last_resort_id=record.last_resort_id,
        last_resort=suite.ratchet_kem.private_key_from_seed(record.last_resort),
        one_time_dh=pool_dh,
        one_time_kem=pool_kem,
        next_id=record.next_id,
        published_dh=set(record.published_dh) & set(pool_dh),
        published_kem=set(record.published_kem) & set(pool_kem),
        base_keys_seen=seen,
    )


# --- sessions -----------------------------------------------------------------------------
#
# A session is stored as its wire schema: ``SessionRecord`` holding a ``RatchetRecord``. The
# records declare the fields (with their wire bounds) under the live objects' field names,
# in the same order; the conversion is derived from the live classes' annotations, so no
# field is copied by hand. Each annotation that is not already a wire value has one
# converter (below); every other field is stored as it is. ``Mirror`` refuses, when this
# module is imported, a live class and a record whose fields differ, so a field added to one
# and not the other cannot be dropped silently. The encoding is the one of the field-by-field
# mapping it replaced, byte for byte (tests/client/fixtures/sessions-v1.json).


@dataclass(frozen=True)
class Converter:
    """How one live annotation becomes a stored value and back (``suite``: the device's)."""

    store: Callable[[Suite, Any], Any]
    load: Callable[[Suite, Any], Any]


def _check_suite(suite: Suite, suite_id: int) -> Suite:
    if suite_id != suite.suite_id:
        raise StoreError("a stored session of another suite than the device")
    return suite


def _skipped_records(skipped: dict[tuple[bytes, int], bytes]) -> tuple[SkippedKeyRecord, ...]:
    """Oldest first: the dict's order is the eviction order."""
    return tuple(SkippedKeyRecord(dh, n, mk) for (dh, n), mk in skipped.items())


CONVERTERS: Final[dict[object, Converter]] = {
    Suite: Converter(lambda _, suite: suite.suite_id, _check_suite),
    DhPrivateKey: Converter(
        lambda s, key: s.dh.private_key_bytes(key), lambda s, raw: s.dh.private_key_from_bytes(raw)
    ),
    MlKemPrivateKey: Converter(  # the ratchet's KEM key, stored as its seed
        lambda s, key: s.ratchet_kem.private_key_bytes(key),
        lambda s, seed: s.ratchet_kem.private_key_from_seed(seed),
    ),
    float: Converter(lambda _, t: _FLOAT.pack(t), lambda _, raw: _FLOAT.unpack(raw)[0]),
    dict[tuple[bytes, int], bytes]: Converter(
        lambda _, skipped: _skipped_records(skipped),
        lambda _, records: {(r.dh, r.n): r.mk for r in records},
    ),
}


class Mirror:
    """A live dataclass and the record that stores it, field by field by name."""

    def __init__(self, live: type, record: type, converters: dict[object, Converter]) -> None:
        hints = get_type_hints(live)
        names = tuple(f.name for f in dataclasses.fields(live))
        stored = tuple(f.name for f in dataclasses.fields(record))
        if names != stored:
            raise TypeError(f"{record.__name__} does not store the fields of {live.__name__}")
        self.live, self.record = live, record
        get = operator.attrgetter(*names)
        self._values: Callable[[object], tuple[Any, ...]] = (
            get if len(names) > 1 else lambda obj: (get(obj),)
        )
        found = [converters.get(hints[name]) for name in names]
        self._stores = tuple(None if c is None else c.store for c in found)
        self._loads = tuple(None if c is None else c.load for c in found)

    def store(self, suite: Suite, obj: object) -> Any:
        """The record of ``obj`` (an instance of the live class)."""
        values = self._values(obj)
        return self.record(
            *[v if f is None else f(suite, v) for f, v in zip(self._stores, values, strict=True)]
        )

    def load(self, suite: Suite, record: object) -> Any:
        """The live object of ``record``; converters raise ``StoreError`` for a mismatch."""
        values = self._values(record)
        return self.live(
            *[v if f is None else f(suite, v) for f, v in zip(self._loads, values, strict=True)]
        )


RATCHET: Final = Mirror(RatchetState, RatchetRecord, CONVERTERS)
SESSION: Final = Mirror(
    Session,
    SessionRecord,
    {RatchetState: Converter(lambda _, state: RATCHET.store(state.suite, state), RATCHET.load)},
)


def session_record(session: Session) -> SessionRecord:
    record: SessionRecord = SESSION.store(session.state.suite, session)
    return record


def session_from_record(suite: Suite, record: SessionRecord) -> Session:
    session: Session = SESSION.load(suite, record)
    return session


def session_value(device: Device, address: str, device_id: int) -> bytes | None:
    session = device.sessions.get((address, device_id))
    return None if session is None else encode(session_record(session))


def session_records(device: Device) -> Records:
    return {_peer_key(peer): encode(session_record(s)) for peer, s in device.sessions.items()}


def sessions_from_records(
    suite: Suite, items: Iterable[tuple[bytes, bytes]]
) -> dict[Peer, Session]:
    return {
        _peer(key): session_from_record(suite, decode(raw, SessionRecord)) for key, raw in items
    }


# --- trust and certificates ---------------------------------------------------------------


def trust_value(device: Device, address: str) -> bytes | None:
    trust = device.trust.get(address)
    if trust is None:
        return None
    return encode(TrustRecord(identity=trust.identity, accepted=trust.accepted))


def trust_records(device: Device) -> Records:
    return {
        address.encode(): encode(TrustRecord(identity=t.identity, accepted=t.accepted))
        for address, t in device.trust.items()
    }


def trust_from_records(items: Iterable[tuple[bytes, bytes]]) -> dict[str, Trust]:
    trust = {}
    for key, raw in items:
        record = decode(raw, TrustRecord)
        trust[key.decode()] = Trust(record.identity, record.accepted)
    return trust


def _cert_value(entry: tuple[bytes, SenderCertificate]) -> bytes:
    return encode(PeerCertRecord(hash=entry[0], certificate=entry[1]))


def cert_value(device: Device, address: str, device_id: int) -> bytes | None:
    entry = device.peer_certs.get((address, device_id))
    return None if entry is None else _cert_value(entry)


def cert_records(device: Device) -> Records:
    return {_peer_key(peer): _cert_value(entry) for peer, entry in device.peer_certs.items()}


def certs_from_records(
    items: Iterable[tuple[bytes, bytes]],
) -> dict[Peer, tuple[bytes, SenderCertificate]]:
    certs = {}
    for key, raw in items:
        record = decode(raw, PeerCertRecord)
        certs[_peer(key)] = (record.hash, record.certificate)
    return certs
