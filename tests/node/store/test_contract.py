"""The Store contract: every backend behaves exactly alike (memory, SQLite and Redis; the
Redis backend runs against one real ``redis-server`` per session, each test under a fresh
key prefix)."""

from __future__ import annotations

import dataclasses
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import trio

from node.store import (
    DeviceRecord,
    MemoryStore,
    PrekeyRecord,
    RedisStore,
    SqliteStore,
    Store,
    StoreClosed,
    StoredEnvelope,
    SweepResult,
)
from tests.node.harness import eid
from tests.redisproc import RedisServer

_MEMORY_IS_A_STORE: type[Store] = MemoryStore  # mypy checks both against the Protocol
_SQLITE_IS_A_STORE: type[Store] = SqliteStore
_REDIS_IS_A_STORE: type[Store] = RedisStore

NOW = 1_700_000_000_000
HOUR = 3_600_000
MAILBOX = b"M" * 16
OTHER_MAILBOX = b"N" * 16


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One real redis-server for the whole session; tests separate by key prefix."""
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server


def fresh_prefix() -> str:
    return f"test-{uuid.uuid4().hex}:"


async def open_backend(kind: str, directory: Path, redis_url: str | None = None) -> Store:
    if kind == "memory":
        return MemoryStore()
    if kind == "redis":
        assert redis_url is not None
        return await RedisStore.open(redis_url, prefix=fresh_prefix())
    return await SqliteStore.open(directory / "node.sqlite3")


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    url = request.getfixturevalue("redis_server").url if request.param == "redis" else None
    s = await open_backend(request.param, tmp_path, url)
    yield s
    await s.aclose()


def device(
    address: str = "alice@a.example", number: int = 1, mailbox: bytes = MAILBOX
) -> DeviceRecord:
    return DeviceRecord(
        address=address,
        device=number,
        identity=b"id:" + address.encode(),
        mailbox=mailbox,
        created=NOW,
    )


def envelope(
    eid: bytes, mailbox: bytes = MAILBOX, expires: int = NOW + HOUR, body: bytes = b"sealed"
) -> StoredEnvelope:
    return StoredEnvelope(
        mailbox=mailbox,
        eid=eid,
        seq=0,
        ts=NOW,
        expires=expires,
        origin="b.example",
        sender=None,
        body=body,
    )


def prekeys(dh: range = range(0), kem: range = range(0), tag: bytes = b"") -> PrekeyRecord:
    return PrekeyRecord(
        identity=b"identity",
        signed_prekey=b"spk" + tag,
        last_resort=b"last-resort" + tag,
        sealed_key=b"sealed" + tag,
        one_time={i: b"dh%d" % i for i in dh},
        kem_one_time={i: b"kem%d" % i for i in kem},
    )


async def registered(store: Store, name: str = "alice", mailbox: bytes = MAILBOX) -> DeviceRecord:
    code = b"code:" + name.encode()
    await store.add_invite(code, name, NOW + HOUR)
    record = device(f"{name}@a.example", 1, mailbox)
    assert await store.register(code, name, record, NOW)
    return record


# --- invites and registration ----------------------------------------------------------


async def test_an_invite_registers_once(store: Store) -> None:
    await store.add_invite(b"h1", "alice", NOW + HOUR)
    assert await store.register(b"h1", "alice", device(), NOW)
    other = device(mailbox=OTHER_MAILBOX)
    assert not await store.register(b"h1", "alice", other, NOW)
    assert (await store.stats())["invites"] == 0


async def test_an_unknown_invite_registers_nothing(store: Store) -> None:
    assert not await store.register(b"nope", "alice", device(), NOW)
    assert await store.device("alice@a.example", 1) is None


async def test_an_invite_expires_at_its_expiry(store: Store) -> None:
    await store.add_invite(b"h1", "alice", NOW)
    assert not await store.register(b"h1", "alice", device(), NOW)
    await store.add_invite(b"h2", "alice", NOW + 1)
    assert await store.register(b"h2", "alice", device(), NOW)


async def test_an_invite_for_another_name_is_refused_and_not_spent(store: Store) -> None:
    await store.add_invite(b"h1", "bob", NOW + HOUR)
    assert not await store.register(b"h1", "alice", device(), NOW)
    assert await store.device("alice@a.example", 1) is None
    assert await store.register(b"h1", "bob", device("bob@a.example"), NOW)


async def test_a_taken_address_is_refused_and_the_invite_kept(store: Store) -> None:
    await registered(store, "alice")
    await store.add_invite(b"h2", "alice", NOW + HOUR)
    again = device("alice@a.example", 2, OTHER_MAILBOX)
    assert not await store.register(b"h2", "alice", again, NOW)
    assert await store.device("alice@a.example", 2) is None
    assert (await store.stats())["invites"] == 1


async def test_a_taken_mailbox_is_refused(store: Store) -> None:
    await registered(store, "alice", MAILBOX)
    await store.add_invite(b"h2", "bob", NOW + HOUR)
    assert not await store.register(b"h2", "bob", device("bob@a.example", 1, MAILBOX), NOW)
    assert await store.devices("bob@a.example") == []


# --- devices and mailboxes -------------------------------------------------------------


async def test_devices_are_found_by_address_and_by_mailbox(store: Store) -> None:
    alice = await registered(store, "alice", MAILBOX)
    bob = await registered(store, "bob", OTHER_MAILBOX)
    assert await store.device("alice@a.example", 1) == alice
    assert await store.device("alice@a.example", 2) is None
    assert await store.devices("alice@a.example") == [alice]
    assert await store.devices("carol@a.example") == []
    assert await store.mailbox_owner(OTHER_MAILBOX) == bob
    assert await store.mailbox_owner(b"\x00" * 16) is None


async def test_has_account_by_name_alone(store: Store) -> None:
    """``admin invite`` refuses a name with an account (it does not know the domain)."""
    assert not await store.has_account("alice")
    await store.add_invite(b"h1", "alice", NOW + HOUR)
    assert not await store.has_account("alice")  # an invite is no account
    await registered(store, "a_b.c-d")
    await registered(store, "alice", OTHER_MAILBOX)
    assert await store.has_account("alice")
    assert await store.has_account("a_b.c-d")
    assert not await store.has_account("alic")  # a prefix is another name
    assert not await store.has_account("axb.c-d")  # "_" and "." are no wildcards
    assert not await store.has_account("a")


async def test_token_verifier_is_set_and_replaced(store: Store) -> None:
    assert await store.token_verifier("alice@a.example") is None
    await store.set_token_verifier("alice@a.example", b"v1" * 16)
    await store.set_token_verifier("bob@a.example", b"w1" * 16)
    await store.set_token_verifier("alice@a.example", b"v2" * 16)
    assert await store.token_verifier("alice@a.example") == b"v2" * 16
    assert await store.token_verifier("bob@a.example") == b"w1" * 16


async def test_introductions_are_refused_until_accepted_and_per_address(store: Store) -> None:
    assert await store.accepts_introductions("alice@a.example") is False
    await store.set_accepts_introductions("alice@a.example", True)
    assert await store.accepts_introductions("alice@a.example") is True
    assert await store.accepts_introductions("bob@a.example") is False
    await store.set_accepts_introductions("alice@a.example", False)
    assert await store.accepts_introductions("alice@a.example") is False
    await store.set_accepts_introductions("bob@a.example", True)
    assert await store.accepts_introductions("bob@a.example") is True
    assert await store.accepts_introductions("alice@a.example") is False


# --- prekeys ---------------------------------------------------------------------------


async def test_no_bundle_before_publishing(store: Store) -> None:
    assert await store.take_bundle("alice@a.example", 1) is None
    assert await store.prekey_counts("alice@a.example", 1) == (0, 0)


async def test_take_bundle_consumes_one_time_keys_lowest_first_then_last_resort(
    store: Store,
) -> None:
    await store.put_prekeys("alice@a.example", 1, prekeys(dh=range(10, 12), kem=range(20, 21)))
    assert await store.prekey_counts("alice@a.example", 1) == (2, 1)
    first = await store.take_bundle("alice@a.example", 1)
    assert first is not None
    assert (first.one_time, first.kem_prekey, first.kem_last_resort) == (b"dh10", b"kem20", False)
    assert (first.identity, first.signed_prekey, first.sealed_key) == (
        b"identity",
        b"spk",
        b"sealed",
    )
    second = await store.take_bundle("alice@a.example", 1)
    assert second is not None
    assert (second.one_time, second.kem_prekey, second.kem_last_resort) == (
        b"dh11",
        b"last-resort",
        True,
    )
    third = await store.take_bundle("alice@a.example", 1)
    assert third is not None
    assert (third.one_time, third.kem_prekey, third.kem_last_resort) == (None, b"last-resort", True)
    assert await store.prekey_counts("alice@a.example", 1) == (0, 0)


async def test_put_prekeys_replaces_standing_keys_and_adds_only_new_ids(store: Store) -> None:
    await store.put_prekeys("alice@a.example", 1, prekeys(dh=range(3), kem=range(3)))
    taken = await store.take_bundle("alice@a.example", 1)
    assert taken is not None
    assert taken.one_time == b"dh0"
    # A full re-upload (ids 0..2, with 0 already handed out) plus new ids 3..4, new keys.
    await store.put_prekeys("alice@a.example", 1, prekeys(dh=range(5), kem=range(5), tag=b"2"))
    assert await store.prekey_counts("alice@a.example", 1) == (4, 4)
    handed_out: list[tuple[bytes | None, bytes]] = []
    for _ in range(5):
        bundle = await store.take_bundle("alice@a.example", 1)
        assert bundle is not None
        assert (bundle.signed_prekey, bundle.sealed_key) == (b"spk2", b"sealed2")
        handed_out.append((bundle.one_time, bundle.kem_prekey))
    assert handed_out == [
        (b"dh1", b"kem1"),
        (b"dh2", b"kem2"),
        (b"dh3", b"kem3"),
        (b"dh4", b"kem4"),
        (None, b"last-resort2"),
    ]


async def test_prekeys_are_per_device(store: Store) -> None:
    await store.put_prekeys("alice@a.example", 1, prekeys(dh=range(1)))
    await store.put_prekeys("alice@a.example", 2, prekeys(kem=range(1)))
    assert await store.prekey_counts("alice@a.example", 1) == (1, 0)
    assert await store.prekey_counts("alice@a.example", 2) == (0, 1)
    assert await store.take_bundle("bob@a.example", 1) is None


async def test_concurrent_takes_never_hand_out_a_key_twice(store: Store) -> None:
    await store.put_prekeys("alice@a.example", 1, prekeys(dh=range(50), kem=range(30)))
    bundles = []

    async def take() -> None:
        bundle = await store.take_bundle("alice@a.example", 1)
        assert bundle is not None
        bundles.append(bundle)

    async with trio.open_nursery() as nursery:
        for _ in range(100):
            nursery.start_soon(take)
    dh = [b.one_time for b in bundles if b.one_time is not None]
    kem = [b.kem_prekey for b in bundles if not b.kem_last_resort]
    assert sorted(dh) == sorted(b"dh%d" % i for i in range(50))
    assert sorted(kem) == sorted(b"kem%d" % i for i in range(30))
    assert sum(b.kem_last_resort for b in bundles) == 70
    assert all(b.kem_prekey == b"last-resort" for b in bundles if b.kem_last_resort)


# --- mailboxes -------------------------------------------------------------------------


async def test_enqueue_assigns_increasing_seqs_and_ignores_the_callers(store: Store) -> None:
    seqs = []
    for n in range(5):
        stored, seq = await store.enqueue(dataclasses.replace(envelope(eid(n)), seq=999))
        assert stored
        seqs.append(seq)
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == 5
    assert seqs[0] > 0
    assert [e.seq for e in await store.pending(MAILBOX, 0, 10, NOW)] == seqs


async def test_enqueue_is_idempotent_by_mailbox_and_eid(store: Store) -> None:
    stored, seq = await store.enqueue(envelope(eid(1), body=b"first"))
    assert stored
    assert await store.enqueue(envelope(eid(1), body=b"second")) == (False, seq)
    (only,) = await store.pending(MAILBOX, 0, 10, NOW)
    assert only.body == b"first"
    stored_elsewhere, other_seq = await store.enqueue(envelope(eid(1), mailbox=OTHER_MAILBOX))
    assert stored_elsewhere
    assert other_seq > seq


async def test_an_acked_eid_stays_a_duplicate_until_its_tombstone_is_swept(store: Store) -> None:
    await store.enqueue(envelope(eid(1), expires=NOW + HOUR))
    assert await store.ack(MAILBOX, [eid(1)]) == 1
    assert await store.enqueue(envelope(eid(1))) == (False, 0)
    assert await store.pending(MAILBOX, 0, 10, NOW) == []
    assert (await store.sweep(NOW + HOUR - 1)).tombstones == 0
    assert await store.enqueue(envelope(eid(1))) == (False, 0)
    assert (await store.sweep(NOW + HOUR)).tombstones == 1
    stored, seq = await store.enqueue(envelope(eid(1), expires=NOW + 2 * HOUR))
    assert stored
    assert seq > 0


async def test_seqs_are_never_reused_after_the_highest_is_acked(store: Store) -> None:
    _, first = await store.enqueue(envelope(eid(1)))
    await store.ack(MAILBOX, [eid(1)])
    await store.sweep(NOW + 2 * HOUR)  # not even once its tombstone is gone
    _, second = await store.enqueue(envelope(eid(2), expires=NOW + 3 * HOUR))
    assert second > first


async def test_pending_is_in_order_with_after_seq_and_limit(store: Store) -> None:
    seqs = [(await store.enqueue(envelope(eid(n))))[1] for n in range(10)]
    await store.enqueue(envelope(eid(99), mailbox=OTHER_MAILBOX))
    page = await store.pending(MAILBOX, 0, 4, NOW)
    assert [e.eid for e in page] == [eid(n) for n in range(4)]
    page = await store.pending(MAILBOX, page[-1].seq, 4, NOW)
    assert [e.eid for e in page] == [eid(n) for n in range(4, 8)]
    page = await store.pending(MAILBOX, page[-1].seq, 4, NOW)
    assert [e.eid for e in page] == [eid(8), eid(9)]
    assert await store.pending(MAILBOX, seqs[-1], 4, NOW) == []
    assert await store.pending(MAILBOX, 0, 0, NOW) == []
    assert await store.pending(b"\x01" * 16, 0, 10, NOW) == []


async def test_pending_returns_the_envelope_as_stored(store: Store) -> None:
    sent = StoredEnvelope(
        mailbox=MAILBOX,
        eid=eid(7),
        seq=0,
        ts=NOW - 5,
        expires=NOW + HOUR,
        origin="b.example",
        sender="bob@b.example",
        body=os.urandom(3000),
    )
    _, seq = await store.enqueue(sent)
    assert await store.pending(MAILBOX, 0, 1, NOW) == [dataclasses.replace(sent, seq=seq)]


async def test_expired_envelopes_are_never_pending(store: Store) -> None:
    await store.enqueue(envelope(eid(1), expires=NOW))
    await store.enqueue(envelope(eid(2), expires=NOW + 1))
    assert [e.eid for e in await store.pending(MAILBOX, 0, 10, NOW)] == [eid(2)]
    assert await store.count_pending(MAILBOX, NOW) == 1
    assert await store.pending(MAILBOX, 0, 10, NOW + 1) == []
    assert await store.count_pending(MAILBOX, NOW + 1) == 0


async def test_ack_deletes_only_this_mailboxs_envelopes_once(store: Store) -> None:
    for n in range(4):
        await store.enqueue(envelope(eid(n)))
    await store.enqueue(envelope(eid(0), mailbox=OTHER_MAILBOX))
    assert await store.ack(MAILBOX, [eid(0), eid(2), eid(2), eid(42)]) == 2
    assert await store.ack(MAILBOX, [eid(0)]) == 0
    assert await store.ack(MAILBOX, []) == 0
    assert [e.eid for e in await store.pending(MAILBOX, 0, 10, NOW)] == [eid(1), eid(3)]
    assert await store.count_pending(OTHER_MAILBOX, NOW) == 1
    assert await store.count_pending(MAILBOX, NOW) == 2


async def test_concurrent_enqueues_of_one_eid_store_it_once(store: Store) -> None:
    results: list[tuple[bool, int]] = []

    async def send() -> None:
        results.append(await store.enqueue(envelope(eid(1))))

    async with trio.open_nursery() as nursery:
        for _ in range(20):
            nursery.start_soon(send)
    assert sum(stored for stored, _ in results) == 1
    assert len({seq for _, seq in results}) == 1
    assert await store.count_pending(MAILBOX, NOW) == 1


# --- blobs -----------------------------------------------------------------------------


async def test_a_blob_uploads_once_with_the_right_token_and_size(store: Store) -> None:
    data = os.urandom(1000)
    await store.grant_blob(b"B" * 16, b"T" * 32, len(data), NOW + HOUR)
    assert await store.get_blob(b"B" * 16, NOW) is None
    assert not await store.put_blob(b"B" * 16, b"X" * 32, data, NOW)
    assert not await store.put_blob(b"B" * 16, b"T" * 32, data[:-1], NOW)
    assert not await store.put_blob(b"B" * 16, b"T" * 32, data + b"!", NOW)
    assert not await store.put_blob(b"C" * 16, b"T" * 32, data, NOW)
    assert await store.put_blob(b"B" * 16, b"T" * 32, data, NOW)
    assert not await store.put_blob(b"B" * 16, b"T" * 32, os.urandom(1000), NOW)
    assert await store.get_blob(b"B" * 16, NOW) == data


async def test_blob_grant_names_the_size_of_an_unused_unexpired_matching_grant(
    store: Store,
) -> None:
    await store.grant_blob(b"B" * 16, b"T" * 32, 5, NOW + HOUR)
    assert await store.blob_grant(b"B" * 16, b"T" * 32, NOW) == 5
    assert await store.blob_grant(b"B" * 16, b"X" * 32, NOW) is None
    assert await store.blob_grant(b"C" * 16, b"T" * 32, NOW) is None
    assert await store.blob_grant(b"B" * 16, b"T" * 32, NOW + HOUR) is None
    assert await store.put_blob(b"B" * 16, b"T" * 32, b"hello", NOW)
    assert await store.blob_grant(b"B" * 16, b"T" * 32, NOW) is None


async def test_a_blob_expires(store: Store) -> None:
    await store.grant_blob(b"B" * 16, b"T" * 32, 3, NOW + HOUR)
    assert not await store.put_blob(b"B" * 16, b"T" * 32, b"abc", NOW + HOUR)
    assert await store.put_blob(b"B" * 16, b"T" * 32, b"abc", NOW + HOUR - 1)
    assert await store.get_blob(b"B" * 16, NOW + HOUR - 1) == b"abc"
    assert await store.get_blob(b"B" * 16, NOW + HOUR) is None


async def test_a_large_blob_round_trips(store: Store) -> None:
    data = os.urandom(5 << 20)
    await store.grant_blob(b"L" * 16, b"T" * 32, len(data), NOW + HOUR)
    assert await store.put_blob(b"L" * 16, b"T" * 32, data, NOW)
    assert await store.get_blob(b"L" * 16, NOW) == data
    stats = await store.stats()
    assert (stats["blobs"], stats["blob_bytes"]) == (1, 5 << 20)


async def test_concurrent_uploads_to_one_grant_store_one(store: Store) -> None:
    await store.grant_blob(b"B" * 16, b"T" * 32, 4, NOW + HOUR)
    results: list[bool] = []

    async def upload(data: bytes) -> None:
        results.append(await store.put_blob(b"B" * 16, b"T" * 32, data, NOW))

    async with trio.open_nursery() as nursery:
        for n in range(8):
            nursery.start_soon(upload, b"%04d" % n)
    assert sorted(results) == [False] * 7 + [True]
    assert await store.get_blob(b"B" * 16, NOW) in {b"%04d" % n for n in range(8)}


# --- housekeeping ----------------------------------------------------------------------


async def test_sweep_deletes_what_expired_and_counts_it(store: Store) -> None:
    later = NOW + HOUR
    for n in range(3):  # expired, never acked
        await store.enqueue(envelope(eid(n), expires=later))
    for n in range(3, 5):  # expired, acked: tombstones
        await store.enqueue(envelope(eid(n), expires=later))
    await store.ack(MAILBOX, [eid(3), eid(4)])
    await store.enqueue(envelope(eid(9), expires=later + 1))  # still alive
    await store.add_invite(b"old", "x", later)
    await store.add_invite(b"new", "y", later + 1)
    await store.grant_blob(b"B" * 16, b"T" * 32, 1, later)
    assert await store.put_blob(b"B" * 16, b"T" * 32, b"z", NOW)
    await store.grant_blob(b"C" * 16, b"T" * 32, 1, later)  # never uploaded
    await store.grant_blob(b"D" * 16, b"T" * 32, 1, later + 1)

    assert await store.sweep(later) == SweepResult(envelopes=3, blobs=2, tombstones=2, invites=1)
    assert await store.sweep(later) == SweepResult(envelopes=0, blobs=0, tombstones=0, invites=0)
    assert [e.eid for e in await store.pending(MAILBOX, 0, 10, NOW)] == [eid(9)]
    assert await store.get_blob(b"B" * 16, NOW) is None
    assert await store.put_blob(b"D" * 16, b"T" * 32, b"d", NOW)
    assert await store.register(b"new", "y", device("y@a.example"), NOW)
    assert not await store.register(b"old", "x", device("x@a.example", 1, OTHER_MAILBOX), NOW)


async def test_stats(store: Store) -> None:
    assert await store.stats() == {
        "envelopes": 0,
        "tombstones": 0,
        "blobs": 0,
        "blob_bytes": 0,
        "accounts": 0,
        "devices": 0,
        "invites": 0,
        "shared_bodies": 0,
    }
    await registered(store, "alice", MAILBOX)
    await registered(store, "bob", OTHER_MAILBOX)
    await store.add_invite(b"spare", "carol", NOW + HOUR)
    for n in range(3):
        await store.enqueue(envelope(eid(n)))
    await store.ack(MAILBOX, [eid(0)])
    await store.grant_blob(b"B" * 16, b"T" * 32, 2, NOW + HOUR)
    await store.grant_blob(b"C" * 16, b"T" * 32, 2, NOW + HOUR)
    await store.put_blob(b"B" * 16, b"T" * 32, b"hi", NOW)
    assert await store.stats() == {
        "envelopes": 2,
        "tombstones": 1,
        "blobs": 1,
        "blob_bytes": 2,
        "accounts": 2,
        "devices": 2,
        "invites": 1,
        "shared_bodies": 0,
    }


async def test_a_closed_store_refuses_calls(tmp_path: Path) -> None:
    for kind in ("memory", "sqlite"):
        store = await open_backend(kind, tmp_path / kind)
        await store.aclose()
        with pytest.raises(StoreClosed):
            await store.enqueue(envelope(eid(1)))


# --- batches of envelopes (SendBatch) ------------------------------------------------------


async def test_enqueue_many_stores_in_order_and_reports_each(store: Store) -> None:
    stored_before, first = await store.enqueue(envelope(eid(1)))
    assert stored_before
    batch = [envelope(eid(2)), envelope(eid(1)), envelope(eid(3)), envelope(eid(2))]
    results = await store.enqueue_many(batch)
    assert [stored for stored, _ in results] == [True, False, True, False]
    assert results[1] == (False, first)
    assert results[3] == (False, results[0][1])
    assert first < results[0][1] < results[2][1]
    pending = await store.pending(MAILBOX, 0, 10, NOW)
    assert [e.eid for e in pending] == [eid(1), eid(2), eid(3)]


async def test_enqueue_many_of_nothing(store: Store) -> None:
    assert await store.enqueue_many([]) == []
    assert await store.pending(MAILBOX, 0, 10, NOW) == []
