"""The devices the client-boundary cases attack, and a device's state before and after.

Per suite, ``bob`` (the target) and ``alice`` live on ``alpha.example``; ``mallory`` and
``carol`` on ``charlie.example``, a domain bob's keyring trusts for its own users. Every
device is a real :class:`client.session.Device` (the pure core a client shell drives);
:func:`device_state` is everything ``client.persist`` would save of one (sessions, prekeys,
trusted identities, sender certificates), so a refused input must leave it equal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from client import persist
from client.entropy import SYSTEM_ENTROPY
from client.identity import Identity, PrekeyPool, new_dh_key, new_mlkem_key
from client.sealed import StaticKeyring, issue_certificate
from client.session import Device
from client.store.base import (
    NS_ACCOUNT,
    NS_CERTS,
    NS_IDENTITIES,
    NS_META,
    NS_PREKEYS,
    NS_SESSIONS,
)
from client.store.memory import MemoryStore
from suites import Suite
from tests.client.pairs import DAY_MS, Clock, Domain, keyring_for
from wire.e2e import PrekeyBundle, PrekeyUpload

HOME: Final = "alpha.example"
OTHER: Final = "charlie.example"
NAMESPACES: Final = (NS_META, NS_ACCOUNT, NS_PREKEYS, NS_SESSIONS, NS_IDENTITIES, NS_CERTS)

DeviceState = dict[str, list[tuple[bytes, bytes]]]


@dataclass
class ClientWorld:
    suite: Suite
    clock: Clock
    home: Domain
    other: Domain
    keyring: StaticKeyring
    bob: Device
    alice: Device
    mallory: Device
    carol: Device

    def now_ms(self) -> int:
        return int(self.clock.now * 1000)

    upload: PrekeyUpload | None = None
    used: int = 0

    def bob_bundle(self) -> PrekeyBundle:
        """A bundle of bob's as his node would serve it: each with the next one-time
        keys of one upload (signed once: an upload signs a hundred KEM prekeys)."""
        if self.upload is None:
            self.upload = self.bob.pool.upload()
        u, at = self.upload, self.used
        self.used += 1
        return PrekeyBundle(
            suite=u.suite,
            address=self.bob.address,
            device=self.bob.device_id,
            identity=u.identity,
            signed_prekey=u.signed_prekey,
            one_time=u.one_time[at],
            kem_prekey=u.kem_one_time[at],
            sealed_key=u.sealed_key,
        )

    def fresh(self, domain: Domain, user: str) -> Device:
        """A new device of ``user`` at ``domain`` (no one-time prekeys of its own: it only
        sends) with a session to bob."""
        identity = Identity.generate(self.suite, SYSTEM_ENTROPY)
        address = f"{user}@{domain.name}"
        expires = self.now_ms() + DAY_MS
        cert = issue_certificate(
            self.suite, domain.server_key, domain.key_id, address, 1, identity.public, expires
        )
        device = Device(
            address, 1, identity, sender_pool(identity), self.keyring, cert, clock=self.clock
        )
        device.start_session(self.bob_bundle())
        return device


def sender_pool(identity: Identity) -> PrekeyPool:
    """A pool as ``PrekeyPool.create`` makes one, but without one-time keys."""
    suite = identity.suite
    return PrekeyPool(
        identity=identity,
        signed_prekey_id=1,
        signed_prekey=new_dh_key(suite, SYSTEM_ENTROPY),
        sealed_key_id=2,
        sealed_key=suite.kem.generate(),
        last_resort_id=3,
        last_resort=new_mlkem_key(suite, SYSTEM_ENTROPY),
        next_id=4,
    )


def make_world(suite_name: str) -> ClientWorld:
    clock = Clock()
    home = Domain.create(suite_name, HOME, clock)
    other = Domain.create(suite_name, OTHER, clock)
    keyring = keyring_for(home, other)
    bob = home.device("bob", keyring)
    alice = home.device("alice", keyring)
    mallory = other.device("mallory", keyring)
    carol = other.device("carol", keyring)
    return ClientWorld(home.suite, clock, home, other, keyring, bob, alice, mallory, carol)


def device_state(device: Device) -> DeviceState:
    store = MemoryStore()
    persist.save_device(store, device)
    return {ns: store.items(ns) for ns in NAMESPACES}
