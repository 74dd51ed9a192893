"""The end-to-end core per suite: session setup, message cost and bytes of overhead.

- ``setup``: the initiator verifies a bundle, runs PQXDH and seals its first message; the
  responder opens it, verifies the sender certificate and runs PQXDH (no one-time DH key,
  last-resort KEM key, so the case repeats without exhausting prekeys);
- ``steady``: one 1 KiB message from ``encrypt`` (ratchet + sealed sender) to ``decrypt``
  within a chain, certificate sent by hash;
- ``kem_step``: the same with a KEM step on every chain (both directions alternate, each
  chain encapsulates to the peer's fresh key);
- ``overhead_bytes``: the sealed envelope before padding minus the 1 KiB plaintext.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from benchmarks.harness import Result, measure
from client.entropy import SYSTEM_ENTROPY as _ENTROPY
from client.identity import Identity, PrekeyPool
from client.sealed import ServerVerifyKey, StaticKeyring, issue_certificate
from client.session import Device
from suites import SUITE_NAMES, Suite, get_suite
from suites.sig import SigPrivateKey
from wire.e2e import PrekeyBundle

PAYLOAD: Final = bytes(range(256)) * 4
_NOW: Final = 1_800_000_000.0
_DAY_MS: Final = 86_400_000


def _device(suite: Suite, user: str, keyring: StaticKeyring, server_key: SigPrivateKey) -> Device:
    identity = Identity.generate(suite, _ENTROPY)
    pool = PrekeyPool.create(identity, _ENTROPY)
    address = f"{user}@bench.example"
    expires = int(_NOW * 1000) + _DAY_MS
    cert = issue_certificate(suite, server_key, b"k1", address, 1, identity.public, expires)
    return Device(
        address=address,
        device_id=1,
        identity=identity,
        pool=pool,
        keyring=keyring,
        certificate=cert,
        clock=lambda: _NOW,
    )


def _pair(suite: Suite) -> tuple[Device, Device]:
    server_key, server_pub = suite.sig.generate()
    keyring = StaticKeyring(
        {
            "bench.example": [
                ServerVerifyKey(b"k1", suite.suite_id, server_pub, int(_NOW * 1000) + 365 * _DAY_MS)
            ]
        }
    )
    return (
        _device(suite, "alice", keyring, server_key),
        _device(suite, "bob", keyring, server_key),
    )


def _last_resort_bundle(bob: Device) -> PrekeyBundle:
    up = bob.pool.upload()
    return PrekeyBundle(
        suite=up.suite,
        address=bob.address,
        device=bob.device_id,
        identity=up.identity,
        signed_prekey=up.signed_prekey,
        one_time=None,
        kem_prekey=up.last_resort,
        sealed_key=up.sealed_key,
    )


def _established(suite: Suite) -> tuple[Device, Device]:
    alice, bob = _pair(suite)
    alice.start_session(bob.pool.bundle(bob.address, bob.device_id))
    bob.decrypt(alice.encrypt(bob.address, 1, PAYLOAD))
    alice.decrypt(bob.encrypt(alice.address, 1, PAYLOAD))
    bob.decrypt(alice.encrypt(bob.address, 1, PAYLOAD))  # both certificates now by hash
    alice.decrypt(bob.encrypt(alice.address, 1, PAYLOAD))
    return alice, bob


def _setup_case(alice: Device, bob: Device, bundle: PrekeyBundle) -> Callable[[], object]:
    def setup() -> object:
        alice.start_session(bundle)
        return bob.decrypt(alice.encrypt(bob.address, 1, PAYLOAD))

    return setup


def _one_way(a: Device, b: Device) -> Callable[[], object]:
    def step() -> object:
        return b.decrypt(a.encrypt(b.address, 1, PAYLOAD))

    return step


def _kem_every_chain(a: Device, b: Device) -> Callable[[], object]:
    sa = a.sessions[(b.address, 1)].state
    sb = b.sessions[(a.address, 1)].state

    def round_trip() -> object:
        sa.since_kem = sb.since_kem = 10**6  # every new chain is due a KEM step
        b.decrypt(a.encrypt(b.address, 1, PAYLOAD))
        return a.decrypt(b.encrypt(a.address, 1, PAYLOAD))

    return round_trip


def _overhead(suite: Suite, body: bytes) -> int:
    return len(suite.unpad(body)) - len(PAYLOAD)


def run(quick: bool) -> list[Result]:
    results: list[Result] = []
    for name in SUITE_NAMES:
        suite = get_suite(name)
        alice, bob = _pair(suite)
        bundle = _last_resort_bundle(bob)

        setup = _setup_case(alice, bob, bundle)
        results.append(measure("setup (initiator + responder)", setup, quick=quick, group=name))
        a, b = _established(suite)
        probe = a.encrypt(b.address, 1, PAYLOAD)
        b.decrypt(probe)
        steady = _overhead(suite, probe)
        results.append(
            measure(
                "steady 1 KiB encrypt+seal+open+decrypt",
                _one_way(a, b),
                quick=quick,
                group=name,
                extra={"overhead_bytes": steady},
            )
        )
        a, b = _established(suite)
        rt = _kem_every_chain(a, b)
        sa = a.sessions[(b.address, 1)].state
        sa.since_kem = 10**6
        rt()
        kem_body = a.encrypt(b.address, 1, PAYLOAD)
        b.decrypt(kem_body)
        with_kem = _overhead(suite, kem_body)
        r = measure(
            "KEM step 1 KiB, 2 messages (one each way)",
            rt,
            quick=quick,
            group=name,
            extra={"overhead_bytes": with_kem},
        )
        results.append(r)
    return results
