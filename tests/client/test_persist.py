"""Client state survives restarts: sessions, identities, prekeys and seen-message ids.

A "restart" drops the ``Device`` and the store object, reopens the store (for SQLite, the
file again with its passphrase) and loads a new device from it. The shell's habit is
modelled: ``save_device`` once, then ``save_peer`` after every message.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from client import persist
from client.errors import DecryptionFailed, NoAccount, StoreError, UntrustedIdentity
from client.persist import AccountInfo, Contact
from client.session import Device
from client.store import NS_META, NS_SESSIONS, MemoryStore, SqliteStore, StateStore
from tests.client.envelopes import SUITES, open_envelope, snapshot
from tests.client.pairs import Clock, Domain, keyring_for, pair

PASSPHRASE = "correct horse battery staple"  # noqa: S105 (a test passphrase)
FAST_N = 2**10  # scrypt cost for tests only
BACKENDS = ["memory", "sqlite"]


@dataclass
class Disk:
    """Where one device's state lives; ``reopen`` is a process restart."""

    backend: str
    path: Path
    memory: MemoryStore = field(default_factory=MemoryStore)
    store: StateStore | None = None

    def open(self) -> StateStore:
        if self.backend == "memory":
            self.store = self.memory  # a MemoryStore outlives the "process" in tests
        else:
            self.store = SqliteStore.open(self.path, PASSPHRASE, scrypt_n=FAST_N)
        return self.store

    def reopen(self) -> StateStore:
        if self.backend == "sqlite" and self.store is not None:
            self.store.close()
        return self.open()

    def close(self) -> None:
        if self.backend == "sqlite" and self.store is not None:
            self.store.close()


@pytest.fixture
def disks(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[str], Disk]]:
    made: list[Disk] = []

    def make(name: str) -> Disk:
        disk = Disk(request.param, tmp_path / f"{name}.db")
        disk.open()
        made.append(disk)
        return disk

    yield make
    for disk in made:
        disk.close()


def backends(test: Callable[..., Any]) -> Callable[..., Any]:
    return pytest.mark.parametrize("disks", BACKENDS, indirect=True)(test)


@dataclass
class Side:
    """A device and its disk, as a client process would hold them."""

    device: Device
    disk: Disk

    @property
    def store(self) -> StateStore:
        assert self.disk.store is not None
        return self.disk.store

    def restart(self) -> None:
        old = self.device
        self.disk.reopen()
        self.device = persist.load_device(self.store, old.keyring, clock=old.clock)

    def encrypt(self, peer: Device, plaintext: bytes) -> bytes:
        body = self.device.encrypt(peer.address, peer.device_id, plaintext)
        persist.save_peer(self.store, self.device, peer.address, peer.device_id)
        return body

    def decrypt(self, body: bytes) -> bytes:
        received = self.device.decrypt(body)
        persist.save_peer(self.store, self.device, received.sender, received.device)
        return received.plaintext


def side(device: Device, disk: Disk) -> Side:
    persist.save_device(disk.store or disk.open(), device)
    return Side(device, disk)


def device_snapshot(device: Device) -> tuple[Any, ...]:
    """Everything of a device that must survive a restart, comparable with ``==``."""
    suite, pool = device.suite, device.pool
    sessions = {
        peer: (
            snapshot(s.state),
            s.peer_identity,
            s.peer_sealed_key,
            s.pending,
            s.base_key,
            s.cert_acked,
        )
        for peer, s in device.sessions.items()
    }
    return (
        device.address,
        device.device_id,
        device.identity.public,
        suite.sig.private_key_bytes(device.identity.sig_key),
        suite.dh.private_key_bytes(device.identity.dh_key),
        device.certificate,
        sessions,
        dict(device.trust),
        dict(device.peer_certs),
        (pool.signed_prekey_id, suite.dh.private_key_bytes(pool.signed_prekey)),
        (pool.sealed_key_id, suite.kem.private_key_bytes(pool.sealed_key)),
        (pool.last_resort_id, suite.ratchet_kem.private_key_bytes(pool.last_resort)),
        [(i, suite.dh.private_key_bytes(k)) for i, k in pool.one_time_dh.items()],
        [(i, suite.ratchet_kem.private_key_bytes(k)) for i, k in pool.one_time_kem.items()],
        pool.next_id,
        pool.published_dh,
        pool.published_kem,
        pool.base_keys_seen,
    )


# --- a conversation across restarts -------------------------------------------------------


@dataclass(frozen=True)
class InFlight:
    sender: int
    plaintext: bytes
    body: bytes


def _run_conversation(alice: Side, bob: Side, clock: Clock, seed: int, steps: int) -> None:
    """Random sends, out-of-order deliveries and restarts; every message is delivered
    exactly once and a redelivery of any of them fails."""
    rng = random.Random(seed)
    sides = (alice, bob)
    queue: list[InFlight] = []
    delivered: list[InFlight] = []
    for step in range(steps):
        roll = rng.random()
        who = rng.randrange(2)
        if roll < 0.1:
            sides[who].restart()
        elif roll < 0.45 or not queue:
            sender, recipient = sides[who], sides[1 - who]
            if sender.device.has_session(recipient.device.address, 1) and _can_send(sender):
                text = f"{step} from {sender.device.address}".encode()
                queue.append(InFlight(who, text, sender.encrypt(recipient.device, text)))
        else:
            item = queue.pop(rng.randrange(len(queue)) if rng.random() < 0.5 else 0)
            assert sides[1 - item.sender].decrypt(item.body) == item.plaintext
            delivered.append(item)
        if step == steps // 2:
            clock.now += 3601  # the next chain of each side is due a time-based KEM step
    for item in queue:
        assert sides[1 - item.sender].decrypt(item.body) == item.plaintext
        delivered.append(item)
    alice.restart()
    bob.restart()
    for item in rng.sample(delivered, min(20, len(delivered))):
        with pytest.raises(DecryptionFailed):
            sides[1 - item.sender].device.decrypt(item.body)
    assert len({d.body for d in delivered}) == len(delivered) > steps // 4


def _can_send(s: Side) -> bool:
    return any(session.state.cks is not None for session in s.device.sessions.values())


@pytest.mark.parametrize("suite_name", SUITES)
@pytest.mark.parametrize("seed", [1, 2])
@backends
def test_conversation_continues_across_restarts(
    suite_name: str, seed: int, disks: Callable[[str], Disk]
) -> None:
    a, b, domain = pair(suite_name)
    alice, bob = side(a, disks("alice")), side(b, disks("bob"))
    bob.restart()  # before Alice's first message: her session is already saved
    alice.restart()
    _run_conversation(alice, bob, domain.clock, seed, steps=120)
    kem_steps = [
        s.device.sessions[(p.device.address, 1)].state.kem_steps
        for s, p in ((alice, bob), (bob, alice))
    ]
    assert min(kem_steps) >= 2  # the KEM ratchet stepped (and was saved) along the way


@pytest.mark.parametrize("suite_name", SUITES)
@backends
def test_load_is_exact(suite_name: str, disks: Callable[[str], Disk]) -> None:
    """Skipped keys, the pending prekey message, KEM state, trust, certificates, pool."""
    a, b, _ = pair(suite_name)
    alice, bob = side(a, disks("alice")), side(b, disks("bob"))
    first = alice.encrypt(b, b"first")
    held = [alice.encrypt(b, f"held {i}".encode()) for i in range(3)]
    bob.decrypt(first)
    late = alice.encrypt(b, b"late")
    bob.decrypt(late)  # three skipped keys at Bob, Alice still pending
    for s in (alice, bob):
        before = device_snapshot(s.device)
        s.restart()
        assert device_snapshot(s.device) == before
    assert len(bob.device.sessions[(a.address, 1)].state.skipped) == 3
    assert alice.device.sessions[(b.address, 1)].pending is not None
    for i, body in reversed(list(enumerate(held))):
        assert bob.decrypt(body) == f"held {i}".encode()
        bob.restart()
    assert bob.device.sessions[(a.address, 1)].state.skipped == {}
    assert alice.decrypt(bob.encrypt(alice.device, b"reply")) == b"reply"
    alice.restart()
    assert alice.device.sessions[(b.address, 1)].pending is None


# --- what must stay refused after a restart -------------------------------------------------


@pytest.mark.parametrize("suite_name", SUITES)
@backends
def test_replayed_first_message_is_refused_after_restart(
    suite_name: str, disks: Callable[[str], Disk]
) -> None:
    """Without one-time keys only ``base_keys_seen`` refuses an old first message once a
    newer session replaced its own; it must survive the restart."""
    a, b, _ = pair(suite_name)
    b.pool.one_time_dh.clear()
    b.pool.one_time_kem.clear()
    a.start_session(b.pool.bundle(b.address, 1))
    alice, bob = side(a, disks("alice")), side(b, disks("bob"))
    old_first = alice.encrypt(b, b"first session")
    assert bob.decrypt(old_first) == b"first session"
    a.start_session(bob.device.pool.bundle(b.address, 1))
    assert bob.decrypt(alice.encrypt(bob.device, b"second session")) == b"second session"
    bob.restart()
    before = device_snapshot(bob.device)
    with pytest.raises(DecryptionFailed):
        bob.device.decrypt(old_first)
    assert device_snapshot(bob.device) == before
    assert alice.decrypt(bob.encrypt(alice.device, b"still here")) == b"still here"


@pytest.mark.parametrize("suite_name", SUITES)
@backends
def test_consumed_one_time_prekeys_stay_consumed(
    suite_name: str, disks: Callable[[str], Disk]
) -> None:
    a, b, domain = pair(suite_name)
    bundle = b.pool.bundle(b.address, 1)  # Alice's: the lowest ids
    assert bundle.one_time is not None
    alice, bob = side(a, disks("alice")), side(b, disks("bob"))
    assert bob.decrypt(alice.encrypt(b, b"hi")) == b"hi"
    bob.restart()
    pool = bob.device.pool
    assert bundle.one_time.id not in pool.one_time_dh
    assert bundle.kem_prekey.id not in pool.one_time_kem
    carol = domain.device("carol", b.keyring)
    carol.start_session(bundle)  # a misbehaving node serves the spent bundle again
    with pytest.raises(DecryptionFailed):
        bob.device.decrypt(carol.encrypt(b.address, 1, b"me too"))
    carol.start_session(bob.device.pool.bundle(b.address, 1))  # control: fresh keys work
    assert bob.decrypt(carol.encrypt(b.address, 1, b"fresh")) == b"fresh"


@pytest.mark.parametrize("suite_name", SUITES)
@backends
def test_forged_prekey_message_consumes_nothing_across_restart(
    suite_name: str, disks: Callable[[str], Disk]
) -> None:
    a, b, _ = pair(suite_name)
    alice, bob = side(a, disks("alice")), side(b, disks("bob"))
    body = alice.encrypt(b, b"genuine")
    pm = open_envelope(b, body).prekey
    assert pm is not None
    forged = body[:-1] + bytes([body[-1] ^ 1])  # the padding: still refused, opaque
    with pytest.raises(DecryptionFailed):
        bob.device.decrypt(forged)
    bob.restart()
    assert pm.opk in bob.device.pool.one_time_dh
    assert bob.decrypt(body) == b"genuine"
    bob.restart()
    assert pm.opk not in bob.device.pool.one_time_dh
    assert pm.kem not in bob.device.pool.one_time_kem


@pytest.mark.parametrize("suite_name", SUITES)
@backends
def test_changed_identity_stays_blocked_after_restart(
    suite_name: str, disks: Callable[[str], Disk]
) -> None:
    a, b, domain = pair(suite_name)
    alice = side(a, disks("alice"))
    bob = side(b, disks("bob"))
    assert bob.decrypt(alice.encrypt(b, b"hi")) == b"hi"
    assert alice.decrypt(bob.encrypt(a, b"hi back")) == b"hi back"
    reinstalled = domain.device("bob", a.keyring)  # same address, new identity
    alice.device.start_session(reinstalled.pool.bundle(reinstalled.address, 1))
    persist.save_peer(alice.store, alice.device, b.address, 1)
    alice.restart()
    assert alice.device.identity_changed(b.address)
    with pytest.raises(UntrustedIdentity):
        alice.device.encrypt(b.address, 1, b"blocked")
    alice.device.accept_identity(b.address)
    persist.save_peer(alice.store, alice.device, b.address, 1)
    alice.restart()
    assert not alice.device.identity_changed(b.address)
    assert reinstalled.decrypt(alice.encrypt(reinstalled, b"welcome back")).plaintext == (
        b"welcome back"
    )


# --- seen ids, account data, errors ----------------------------------------------------------


@backends
def test_seen_ids_deduplicate_across_restart(disks: Callable[[str], Disk]) -> None:
    disk = disks("client")
    store = disk.store
    assert store is not None
    assert persist.mark_seen(store, b"e1" * 8, 2_000)
    assert persist.mark_seen(store, b"e2" * 8, 5_000)
    assert not persist.mark_seen(store, b"e1" * 8, 2_000)
    store = disk.reopen()
    assert not persist.mark_seen(store, b"e1" * 8, 2_000)
    assert not persist.mark_seen(store, b"e2" * 8, 5_000)
    assert persist.purge_seen(store, 1_999) == 0
    assert persist.purge_seen(store, 2_000) == 1
    store = disk.reopen()
    assert persist.mark_seen(store, b"e1" * 8, 9_000)  # forgotten once expired
    assert not persist.mark_seen(store, b"e2" * 8, 5_000)


@backends
def test_account_info_and_contacts_round_trip(disks: Callable[[str], Disk]) -> None:
    disk = disks("client")
    store = disk.store
    assert store is not None
    assert persist.load_account_info(store) is None
    info = AccountInfo(
        node_url="wss://node.example.org/v1/client",
        server_key_document=b"\x93signed document",
        mailbox=bytes(range(16)),
        delivery_token=bytes(range(16, 32)),
    )
    persist.save_account_info(store, info)
    bob = Contact(mailbox=b"m" * 16, delivery_token=b"t" * 16)
    carol = Contact(mailbox=b"c" * 16, delivery_token=None)
    persist.save_contact(store, "bob@example.org", 1, bob)
    persist.save_contact(store, "bob@example.org", 2, carol)
    store = disk.reopen()
    assert persist.load_account_info(store) == info
    assert persist.load_contact(store, "bob@example.org", 1) == bob
    assert persist.load_contact(store, "bob@example.org", 3) is None
    assert persist.contacts(store) == {("bob@example.org", 1): bob, ("bob@example.org", 2): carol}
    persist.delete_contact(store, "bob@example.org", 2)
    assert persist.contacts(store) == {("bob@example.org", 1): bob}


@backends
def test_a_compared_safety_number_holds_for_that_identity_only(
    disks: Callable[[str], Disk],
) -> None:
    disk = disks("client")
    store = disk.store
    assert store is not None
    old, new = b"\x01identity of bob", b"\x02another identity of bob"
    assert not persist.is_verified(store, "bob@example.org", old)
    persist.mark_verified(store, "bob@example.org", old)
    store = disk.reopen()
    assert persist.is_verified(store, "bob@example.org", old)
    assert not persist.is_verified(store, "bob@example.org", new)
    assert not persist.is_verified(store, "carol@example.org", old)
    persist.mark_verified(store, "bob@example.org", new)
    assert persist.is_verified(store, "bob@example.org", new)
    assert not persist.is_verified(store, "bob@example.org", old)


@backends
def test_load_without_a_device_raises_no_account(disks: Callable[[str], Disk]) -> None:
    store = disks("client").store
    assert store is not None
    assert not persist.has_device(store)
    domain = Domain.create("xwing", "example.org")
    with pytest.raises(NoAccount):
        persist.load_device(store, keyring_for(domain))


def test_corrupt_or_foreign_records_raise_store_error() -> None:
    a, _, _ = pair("xwing")
    store = MemoryStore()
    persist.save_device(store, a)
    assert persist.has_device(store)
    store.put(NS_META, persist.RECORDS_SLOT, b"\x00")
    with pytest.raises(StoreError):
        persist.load_device(store, a.keyring)
    persist.save_device(store, a)
    ((key, value),) = store.items(NS_SESSIONS)
    store.put(NS_SESSIONS, key, value[:-1])
    with pytest.raises(StoreError):
        persist.load_device(store, a.keyring)
    persist.save_device(store, a)  # rewrites what differs: loads again
    assert device_snapshot(persist.load_device(store, a.keyring)) == device_snapshot(a)
