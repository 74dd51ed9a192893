"""Conversions between the client's live objects and the records of ``client.records``.

``client.persist`` decides what to write when; this module only maps a ``Device``, its
``PrekeyPool``, sessions, trust and certificates to ``{store key: encoded record}`` and
back. Loading is exact: every field of a ratchet state, a session and the pool reads back as
it was (private keys through their suite's serialisation, the skipped keys in eviction
order, the time of the last KEM step bit for bit).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import Final

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


def ratchet_record(state: RatchetState) -> RatchetRecord:
    suite = state.suite
    return RatchetRecord(
        suite=suite.suite_id,
        ad=state.ad,
        rk=state.rk,
        dhs=suite.dh.private_key_bytes(state.dhs),
        dhr=state.dhr,
        cks=state.cks,
        ckr=state.ckr,
        ns=state.ns,
        nr=state.nr,
        pn=state.pn,
        kem_own=suite.ratchet_kem.private_key_bytes(state.kem_own),
        kem_peer=state.kem_peer,
        advertise=state.advertise,
        send_kc=state.send_kc,
        send_kp=state.send_kp,
        kem_steps=state.kem_steps,
        since_kem=state.since_kem,
        last_kem=_FLOAT.pack(state.last_kem),
        skipped=tuple(SkippedKeyRecord(dh, n, mk) for (dh, n), mk in state.skipped.items()),
    )


def ratchet_from_record(suite: Suite, r: RatchetRecord) -> RatchetState:
    if r.suite != suite.suite_id:
        raise StoreError("a stored session of another suite than the device")
    return RatchetState(
        suite=suite,
        ad=r.ad,
        rk=r.rk,
        dhs=suite.dh.private_key_from_bytes(r.dhs),
        dhr=r.dhr,
        cks=r.cks,
        ckr=r.ckr,
        ns=r.ns,
        nr=r.nr,
        pn=r.pn,
        kem_own=suite.ratchet_kem.private_key_from_seed(r.kem_own),
        kem_peer=r.kem_peer,
        advertise=r.advertise,
        send_kc=r.send_kc,
        send_kp=r.send_kp,
        kem_steps=r.kem_steps,
        since_kem=r.since_kem,
        last_kem=_FLOAT.unpack(r.last_kem)[0],
        skipped={(s.dh, s.n): s.mk for s in r.skipped},
    )


def session_record(session: Session) -> SessionRecord:
    return SessionRecord(
        peer_identity=session.peer_identity,
        peer_sealed_key=session.peer_sealed_key,
        state=ratchet_record(session.state),
        pending=session.pending,
        base_key=session.base_key,
        cert_acked=session.cert_acked,
    )


def session_from_record(suite: Suite, r: SessionRecord) -> Session:
    return Session(
        peer_identity=r.peer_identity,
        peer_sealed_key=r.peer_sealed_key,
        state=ratchet_from_record(suite, r.state),
        pending=r.pending,
        base_key=r.base_key,
        cert_acked=r.cert_acked,
    )


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
