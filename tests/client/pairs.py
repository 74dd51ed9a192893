"""Builders for client-core tests: a domain with a server key, and devices enrolled in it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from client.identity import Identity, PrekeyPool
from client.sealed import ServerVerifyKey, StaticKeyring, issue_certificate
from client.session import Device
from suites import Suite, get_suite
from suites.kem import MlKem
from suites.sig import SigPrivateKey

DAY_MS = 86_400_000


class DeterministicEntropy:
    """SHAKE-256 stream from a seed; ML-KEM encapsulation derandomised with kyber-py
    (FIPS 203 ``Encaps_internal``), so whole conversations replay bit for bit."""

    def __init__(self, seed: bytes) -> None:
        self._seed = seed
        self._counter = 0

    def random_bytes(self, n: int) -> bytes:
        self._counter += 1
        block = self._seed + self._counter.to_bytes(8, "big")
        return hashlib.shake_256(block).digest(n)

    def mlkem_encapsulate(self, kem: MlKem, public_key: bytes) -> tuple[bytes, bytes]:
        from kyber_py.ml_kem import ML_KEM_768, ML_KEM_1024

        impl = ML_KEM_1024 if kem.level == 1024 else ML_KEM_768
        m = self.random_bytes(32)
        kem.check_public(public_key)
        ss, ct = impl._encaps_internal(public_key, m)
        return ct, ss


@dataclass
class Clock:
    now: float = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Domain:
    suite: Suite
    name: str
    server_key: SigPrivateKey
    key_id: bytes
    clock: Clock = field(default_factory=Clock)

    @classmethod
    def create(cls, suite_name: str, name: str, clock: Clock | None = None) -> Domain:
        suite = get_suite(suite_name)
        server_key, _ = suite.sig.generate()
        return cls(suite, name, server_key, b"k1", clock or Clock())

    def verify_key(self) -> ServerVerifyKey:
        public = self.suite.sig.public_key_bytes(self.server_key)
        return ServerVerifyKey(
            self.key_id, self.suite.suite_id, public, int(self.clock.now * 1000) + 365 * DAY_MS
        )

    def device(
        self,
        user: str,
        keyring: StaticKeyring,
        entropy=None,
        device_id: int = 1,
        identity: Identity | None = None,
    ) -> Device:
        from client.entropy import SYSTEM_ENTROPY

        entropy = entropy or SYSTEM_ENTROPY
        identity = identity or Identity.generate(self.suite, entropy)
        pool = PrekeyPool.create(identity, entropy)
        address = f"{user}@{self.name}"
        cert = issue_certificate(
            self.suite,
            self.server_key,
            self.key_id,
            address,
            device_id,
            identity.public,
            int(self.clock.now * 1000) + DAY_MS,
        )
        return Device(
            address=address,
            device_id=device_id,
            identity=identity,
            pool=pool,
            keyring=keyring,
            certificate=cert,
            entropy=entropy,
            clock=self.clock,
        )


def keyring_for(*domains: Domain) -> StaticKeyring:
    return StaticKeyring({d.name: [d.verify_key()] for d in domains})


def pair(suite_name: str, entropy_a=None, entropy_b=None) -> tuple[Device, Device, Domain]:
    """Alice and Bob on one domain, Alice holding a session started from Bob's bundle."""
    domain = Domain.create(suite_name, "example.org")
    keyring = keyring_for(domain)
    alice = domain.device("alice", keyring, entropy_a)
    bob = domain.device("bob", keyring, entropy_b)
    alice.start_session(bob.pool.bundle(bob.address, bob.device_id))
    return alice, bob, domain
