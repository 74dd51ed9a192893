"""The key leader's cost of one new epoch at 200 (issue 18, "a key leader sends a 32-byte
epoch secret pairwise over the post-quantum sessions (N-1 messages)"): the client's own
session code, no network. The signed roster goes once, sealed, as one shared upload; each
pairwise message carries the epoch, the roster's hash and the secret.

The rekey row of ``benchmarks.meetings`` carries the key messages between simulated
participants in the clear (in-process, or over a local socket between load processes), so
it does not pay for the pairwise encryption. This row does, on its own: a leader
:class:`client.session.Device` with an established session with each of :data:`PEERS`
peers (a message each way, so the certificate goes by hash and the next message opens a
new sending chain, as after an acknowledgement), then one leave's epoch timed on one core:
:meth:`client.meetings.keys.MeetingLeader.leave` and ``tick`` (a fresh secret, the roster
of the remaining participants signed and sealed once, a ``MeetingEpochKey`` per peer), each
key message wrapped as the client sends it (``client.content.MeetingNote``, without a reply
token) and sealed with ``Device.encrypt`` (ratchet step, sealed sender, padding), and the
sealed roster padded as its shared upload's body.

``mean µs`` per peer; ``seconds`` the whole epoch; ``sign_ms`` the roster's signature in
it; ``envelope_bytes`` one pairwise message, ``shared_bytes`` the roster's one upload body,
``bytes_out`` all of them (what the leader uploads per new epoch, for peers of one domain:
each other domain adds a routing layer of about ``shared_bytes``); ``peer_open_ms`` one
peer's ``Device.decrypt`` of its key message and ``MeetingMember.on_epoch_key`` and
``on_sealed_roster`` (the roster opened, hashed and its signature checked), which every
participant does in parallel on its own device. The peers share one identity and prekey
pool (each has its own address, certificate and session with the leader): the leader's work
per peer is the same.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace
from typing import Final

from benchmarks.client import _device, _last_resort_bundle
from benchmarks.harness import Result
from benchmarks.meetrows import GROUP
from client.content import MeetingNote, pack_meeting, unpack_pairwise
from client.meetings.keys import LEAVE_BATCH_MS, MeetingLeader, MeetingMember, Out, Send, Shared
from client.meetings.roster import key_fingerprint, parse_sealed, sealed_body
from client.sealed import ServerVerifyKey, StaticKeyring, issue_certificate
from client.session import Device
from suites import Suite, get_suite, labels
from suites.sig import SigPrivateKey
from wire import encode
from wire.meeting import (
    EpochCause,
    MeetingEpochKey,
    MeetingMessage,
    RosterBody,
    RosterEntry,
    SealedRoster,
)

PEERS: Final = 199
QUICK_PEERS: Final = 9
SUITE: Final = "cnsa2"
DOMAIN: Final = "bench.example"
GROUP_ID: Final = bytes(16)
_NOW: Final = 1_800_000_000.0
_DAY_MS: Final = 86_400_000
_HELLO: Final = b"hello"


@dataclass(frozen=True)
class Epoch:
    """One timed epoch of the leader (module docstring)."""

    peers: int
    wall_s: float
    cpu_s: float
    sign_s: float
    envelope_bytes: int
    shared_bytes: int
    bytes_out: int
    open_s: float


def _keyring(suite: Suite) -> tuple[SigPrivateKey, StaticKeyring]:
    server_key, server_pub = suite.sig.generate()
    until = int(_NOW * 1000) + 365 * _DAY_MS
    key = ServerVerifyKey(b"k1", suite.suite_id, server_pub, until)
    return server_key, StaticKeyring({DOMAIN: [key]})


def _peers(suite: Suite, count: int, keyring: StaticKeyring, key: SigPrivateKey) -> list[Device]:
    """``count`` peer devices sharing one identity and pool (module docstring)."""
    first = _device(suite, "peer0", keyring, key)
    peers = [first]
    expires = int(_NOW * 1000) + _DAY_MS
    for i in range(1, count):
        address = f"peer{i}@{DOMAIN}"
        cert = issue_certificate(suite, key, b"k1", address, 1, first.identity.public, expires)
        peers.append(
            replace(first, address=address, certificate=cert, sessions={}, trust={}, peer_certs={})
        )
    return peers


def _connect(leader: Device, peers: list[Device]) -> None:
    """An established session from ``leader`` to each peer: a message each way."""
    bundle = _last_resort_bundle(peers[0])
    for peer in peers:
        leader.start_session(replace(bundle, address=peer.address))
        peer.decrypt(leader.encrypt(peer.address, 1, _HELLO))
        leader.decrypt(peer.encrypt(leader.address, 1, _HELLO))


def run_epoch(peers: int) -> Epoch:
    """Set up a leader and ``peers`` sessions, then time one leave's epoch (docstring)."""
    suite = get_suite(SUITE)
    server_key, keyring = _keyring(suite)
    leader = _device(suite, "leader", keyring, server_key)
    devices = _peers(suite, peers + 1, keyring, server_key)  # the last one leaves
    _connect(leader, devices)
    meeting, sig_key = os.urandom(16), leader.identity.public.sig
    entries = [RosterEntry(0, leader.address, 1, key_fingerprint(sig_key))]
    entries += [
        RosterEntry(i + 1, d.address, 1, key_fingerprint(d.identity.public.sig))
        for i, d in enumerate(devices)
    ]
    verify = suite.sig.verify
    chief = MeetingLeader(
        meeting, entries[0], sig_key, leader.identity, verify, os.urandom, 0,
        participants=tuple(entries),
    )  # fmt: skip
    member = MeetingMember(meeting, 1, verify)
    first, shared = _split(chief.sends())
    member.on_sealed_roster(shared, 0)
    member.on_epoch_key(first[1], sig_key, 0)
    chief.leave(len(devices), 0)
    sign_s = _sign_seconds(meeting, chief, leader)
    wall, cpu = time.perf_counter(), time.process_time()
    keys, sealed = _split(chief.tick(LEAVE_BATCH_MS))
    upload = sealed_body(sealed)
    bodies = [
        leader.encrypt(devices[pid - 1].address, 1, pack_meeting(_note(msg)))
        for pid, msg in keys.items()
    ]
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    opened = time.perf_counter()
    note = unpack_pairwise(devices[0].decrypt(bodies[0]).plaintext)
    assert isinstance(note, MeetingNote)
    assert isinstance(note.signal, MeetingEpochKey)
    came = parse_sealed(upload)
    assert came is not None
    member.on_sealed_roster(came, LEAVE_BATCH_MS)
    assert member.on_epoch_key(note.signal, sig_key, LEAVE_BATCH_MS)
    opened = time.perf_counter() - opened
    sizes = [len(b) for b in bodies]
    return Epoch(
        len(bodies), wall, cpu, sign_s, sizes[0], len(upload), sum(sizes) + len(upload), opened
    )


def _split(sends: list[Out]) -> tuple[dict[int, MeetingEpochKey], SealedRoster]:
    """An epoch's key messages by pid, and its one sealed roster."""
    keys = {
        s.to: s.message
        for s in sends
        if isinstance(s, Send) and isinstance(s.message, MeetingEpochKey)
    }
    (shared,) = [s.message for s in sends if isinstance(s, Shared)]
    return keys, shared


def _note(message: MeetingMessage) -> MeetingNote:
    return MeetingNote(GROUP_ID, message, None, None)


def _sign_seconds(meeting: bytes, chief: MeetingLeader, leader: Device) -> float:
    """One roster signature's time (what ``tick`` does once per epoch), on a roster of the
    same participants."""
    body = RosterBody(meeting, 1, 0, EpochCause.LEAVE, 0, chief.participants)
    start = time.perf_counter()
    leader.identity.sign(encode(body), labels.CTX_MEETING_ROSTER)
    return time.perf_counter() - start


def run_pairwise(quick: bool) -> Result:
    e = run_epoch(QUICK_PEERS if quick else PEERS)
    return Result(
        group=GROUP,
        name=f"leader's epoch, {e.peers} pairwise messages (client session code)",
        ops_per_s=e.peers / max(e.cpu_s, 1e-9),
        mean_us=e.wall_s / max(e.peers, 1) * 1e6,
        p50_us=None,
        p99_us=None,
        calls=e.peers,
        samples=1,
        batch=e.peers,
        extra={
            "seconds": round(e.wall_s, 3),
            "cpu_s": round(e.cpu_s, 3),
            "sign_ms": round(e.sign_s * 1000, 2),
            "envelope_bytes": e.envelope_bytes,
            "shared_bytes": e.shared_bytes,
            "bytes_out": e.bytes_out,
            "peer_open_ms": round(e.open_s * 1000, 2),
            "loadavg_1m": round(os.getloadavg()[0], 2),
        },
    )
