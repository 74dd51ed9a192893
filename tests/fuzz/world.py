"""The fixed world the fuzz targets run against: one domain with its server keys, two
devices with a session, a group, and their encoded artefacts.

Everything is derived from fixed seeds (``DeterministicEntropy``, seeded server keys, a
fixed clock), so an input saved in the corpus means the same thing in every process: a
seed envelope made by ``tests.fuzz.seeds`` opens when the corpus is replayed. Hybrid
signatures are randomised, though, and a device's identity key (which PQXDH binds into
every session) carries one: the devices' identity signatures are therefore kept in
``identity-signatures`` beside this file (written when missing). Built once per process,
on first use (:func:`world`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path

from client.groups.changes import member_of
from client.groups.group import Group
from client.identity import Identity, PrekeyPool
from client.sealed import ServerVerifyKey, StaticKeyring, issue_certificate
from client.session import Device
from node.keys import ServerKeys
from suites import Suite, get_suite
from tests.client.pairs import Clock, DeterministicEntropy
from wire import encode
from wire.server import ServerKeyDocument, ServerVerifyKeyEntry

SUITE_NAME = "xwing"
DOMAIN = "fuzz.example"
OTHER_DOMAIN = "peer.example"
ENDPOINTS = ("https://fuzz.example",)
NOW_S = 1_800_000_000
NOW_MS = NOW_S * 1000
DAY_MS = 86_400_000
DOC_LIFETIME_S = 7 * 86_400
SIGNATURES = Path(__file__).parent / "identity-signatures"


@dataclass
class World:
    suite: Suite
    server: ServerKeys
    document: bytes
    doc: ServerKeyDocument
    verify_entry: ServerVerifyKeyEntry
    keyring: StaticKeyring
    alice: Device
    bob: Device
    group: bytes
    """Alice's group (Alice, admin, and Bob), as ``Group.to_bytes``; it holds Bob's
    sender key."""
    bob_group: bytes
    """The same group as Bob holds it (he joined by Alice's welcome)."""
    group_key: bytes
    """A transport key for group envelopes (``client.groupnet.wrap``)."""


def seeded(label: str, n: int) -> bytes:
    return hashlib.shake_256(b"sealrelay-fuzz/" + label.encode()).digest(n)


def server_keys(suite: Suite, label: str) -> ServerKeys:
    sig_key = suite.sig.private_key_from_bytes(seeded(label + "/sig", suite.sig.private_len))
    kem_key = suite.kem.private_key_from_seed(seeded(label + "/kem", suite.kem.seed_len))
    return ServerKeys(suite, sig_key, kem_key)


def device(suite: Suite, server: ServerKeys, user: str, keyring: StaticKeyring) -> Device:
    entropy = DeterministicEntropy(b"sealrelay-fuzz/" + user.encode())
    identity = _stable(Identity.generate(suite, entropy), user)
    pool = PrekeyPool.create(identity, entropy)
    address = f"{user}@{DOMAIN}"
    cert = issue_certificate(
        suite, server.sig_key, server.sig_key_id, address, 1, identity.public, NOW_MS + DAY_MS
    )
    return Device(
        address=address,
        device_id=1,
        identity=identity,
        pool=pool,
        keyring=keyring,
        certificate=cert,
        entropy=entropy,
        clock=Clock(float(NOW_S)),
    )


def _stable(identity: Identity, user: str) -> Identity:
    """``identity`` with the ``dh_sig`` kept for ``user`` (kept now if there is none)."""
    kept = dict(_kept_signatures())
    if user not in kept:
        kept[user] = identity.public.dh_sig
        lines = [f"{name} {sig.hex()}" for name, sig in sorted(kept.items())]
        SIGNATURES.write_text("\n".join(lines) + "\n")
    identity.public = replace(identity.public, dh_sig=kept[user])
    return identity


def _kept_signatures() -> list[tuple[str, bytes]]:
    if not SIGNATURES.is_file():
        return []
    pairs = (line.split() for line in SIGNATURES.read_text().splitlines() if line.strip())
    return [(name, bytes.fromhex(sig)) for name, sig in pairs]


def _groups(alice: Device, bob: Device) -> tuple[bytes, bytes]:
    """Alice's and Bob's view of a group of the two, each holding the other's sender key."""
    suite = alice.suite
    bob_member = member_of(suite, bob.address, {1: bob.identity.public.sig})
    entropy = DeterministicEntropy(b"sealrelay-fuzz/group")
    group, _ = Group.create(alice.identity, alice.address, 1, "fuzz", (bob_member,), entropy)
    joined = Group.join(bob.identity, bob.address, 1, group.welcome(), entropy)
    group.receive_distribution(bob.address, 1, joined.distribution())
    joined.receive_distribution(alice.address, 1, group.distribution())
    return group.to_bytes(), joined.to_bytes()


@cache
def world() -> World:
    suite = get_suite(SUITE_NAME)
    server = server_keys(suite, DOMAIN)
    doc = server.sign_document(DOMAIN, ENDPOINTS, NOW_MS, DOC_LIFETIME_S)
    entry = doc.body.verify_keys[0]
    verify = ServerVerifyKey(entry.id, entry.suite, entry.public, entry.not_after)
    keyring = StaticKeyring({DOMAIN: [verify]})
    alice = device(suite, server, "alice", keyring)
    bob = device(suite, server, "bob", keyring)
    group, bob_group = _groups(alice, bob)
    return World(
        suite=suite,
        server=server,
        document=encode(doc),
        doc=doc,
        verify_entry=entry,
        keyring=keyring,
        alice=alice,
        bob=bob,
        group=group,
        bob_group=bob_group,
        group_key=seeded("group-key", 32),
    )
