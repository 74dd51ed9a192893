"""The meeting key schedule of ``benchmarks.meetload``'s simulated participants (issue 18,
"rekey after a leave at 200").

Every participant of a load process runs the client's own key schedule: a
:class:`client.meetings.keys.MeetingMember` (the key leader's
:class:`~client.meetings.keys.MeetingLeader` in the process that holds pid
:data:`LEADER_PID`) and a :class:`client.meetings.media.MeetingCrypto` for its SFrame keys
(KID = epoch, pid). A participant's pid is its global index in the meeting.

Key messages (``MeetingEpochKey``, ``MeetingAck``, ``MeetingSwitch``) are *not* sent over
the pairwise post-quantum sessions and the node's mailboxes, as the client sends them:
between two participants of one load process they are handed over in-process (a queue),
between load processes they travel as one datagram on a local Unix socket of the receiving
process (:class:`KeyBus`, :func:`bus_frame`), with the identity signing key the pairwise
session would vouch for (the leader's, in its epochs). An epoch's sealed roster
(``SealedRoster``, the client's one shared upload) goes once to each load process that holds
some of its recipients (:func:`bus_shared`, as the node stores one body for many mailboxes),
and each recipient there opens, decodes and checks its own copy. The roster's signature is
made and checked for real. ``benchmarks.meetpairwise`` times the leader's pairwise
encryption separately.

Received frames (:meth:`Keys.on_frame`): a receiver opens the first frame of each
(epoch, sender) it sees and one frame in :data:`OPEN_EVERY` of the rest (opening every one
of 10,000 frames a second would take a load process's CPU on this machine); it tries every
frame under an epoch it does not hold (that fails at once: no key), so a removed
participant's attempts after the switch are all counted. It records, per (epoch, receiver,
sender), when it first opened a frame and when that frame was sent; per participant, when
it switched to each epoch (sends under it from then on: a silent participant's next
discontinuous-transmission frame, a speaker's within 20 ms).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import struct
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import trio

from client.identity import Identity
from client.meetings.errors import MeetingError
from client.meetings.keys import MeetingLeader, MeetingMember, Out, Shared, kid_parts
from client.meetings.media import MeetingCrypto
from client.meetings.net import MIN_WAIT, TICK
from client.meetings.roster import key_fingerprint
from suites import get_suite, sframe
from wire import WireError, encode
from wire.meeting import (
    MeetingAck,
    MeetingEpochKey,
    MeetingMessage,
    MeetingSwitch,
    RosterEntry,
    SealedRoster,
    decode_meeting,
)

LEADER_PID: Final = 0
OPEN_EVERY: Final = 25
"""A receiver opens one frame in this many of a (epoch, sender) it has opened before."""
BUS_HEADER: Final = struct.Struct(">IIH")
"""A key message between load processes: from pid, to pid, length of the sender's key."""
SHARED_TO: Final = 0xFFFF_FFFF
"""The ``to`` of a shared message's bus datagram: the recipients' pids follow the header
(a u16 count, then each a u32), then the encoded message."""
_COUNT: Final = struct.Struct(">H")
_PID: Final = struct.Struct(">I")
BUS_MAX: Final = 256 * 1024
"""Largest key message datagram (a sealed 200-entry roster is about 33 KB)."""
BUS_SLICE: Final = 0.25
"""Seconds of key messages handled before the media tasks of the process get a turn: long
enough for a process's share of an epoch (49 roster checks) in one turn, as each real
participant handles its own at once; a starved process's media waits meanwhile."""
FP_INFO: Final = b"sealrelay bench meeting participant"


@dataclass(frozen=True)
class Owner:
    """The participants ``first`` .. ``first + count - 1`` of one load process."""

    first: int
    count: int
    address: str


def owner_of(owners: Sequence[Owner], pid: int) -> int:
    """The index of the load process that holds ``pid``; ``ValueError`` if none does."""
    for index, owner in enumerate(owners):
        if owner.first <= pid < owner.first + owner.count:
            return index
    raise ValueError(f"no load process holds pid {pid}")


def bus_frame(sender: int, to: int, key: bytes, message: MeetingMessage) -> bytes:
    """A key message as one bus datagram (:data:`BUS_HEADER`, key, encoded message)."""
    return BUS_HEADER.pack(sender, to, len(key)) + key + encode(message)


def bus_shared(sender: int, to: Sequence[int], message: MeetingMessage) -> bytes:
    """A message for many (a sealed roster) as one bus datagram (:data:`SHARED_TO`)."""
    pids = b"".join(_PID.pack(pid) for pid in to)
    return BUS_HEADER.pack(sender, SHARED_TO, 0) + _COUNT.pack(len(to)) + pids + encode(message)


def bus_unframe(data: bytes) -> tuple[int, int, bytes, MeetingMessage]:
    """``(from, to, key, message)`` of a bus datagram (the key of a shared one is empty);
    ``WireError`` or ``struct.error`` if it is not one."""
    sender, to, size = BUS_HEADER.unpack_from(data)
    start = BUS_HEADER.size
    if to == SHARED_TO:
        (count,) = _COUNT.unpack_from(data, start)
        start += _COUNT.size + count * _PID.size
    return sender, to, data[start : start + size], decode_meeting(data[start + size :])


def shared_pids(data: bytes) -> list[int]:
    """The recipients of a shared bus datagram (:func:`bus_shared`)."""
    start = BUS_HEADER.size
    (count,) = _COUNT.unpack_from(data, start)
    start += _COUNT.size
    return [_PID.unpack_from(data, start + i * _PID.size)[0] for i in range(count)]


def roster_entries(owners: Sequence[Owner], leader_key: bytes) -> tuple[RosterEntry, ...]:
    """Every participant, in pid order: the load process's account address, device 1, the
    leader's key fingerprint for the leader and a fixed stand-in for the others (their
    keys are not checked by the key schedule)."""
    entries = []
    for owner in owners:
        for pid in range(owner.first, owner.first + owner.count):
            fp = (
                key_fingerprint(leader_key)
                if pid == LEADER_PID
                else hashlib.sha384(FP_INFO + pid.to_bytes(4, "big")).digest()
            )
            entries.append(RosterEntry(pid, owner.address, 1, fp))
    return tuple(entries)


def socket_path(directory: Path, index: int) -> Path:
    return directory / f"keys{index}.sock"


class _Peer:
    """The way to one other load process: a socket connected to its bound one (so that
    waiting for writability waits for room in *its* queue) and what waits to go there."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        self.sock.connect(str(path))
        self.out: deque[bytes] = deque()
        self.queued = trio.Event()

    async def write(self) -> None:
        """Write what is queued, waiting only while the peer's queue is full."""
        while True:
            await self.queued.wait()
            self.queued = trio.Event()
            while self.out:
                try:
                    self.sock.send(self.out[0])
                except BlockingIOError:
                    await trio.lowlevel.wait_writable(self.sock)
                    continue
                self.out.popleft()


class KeyBus:
    """Key messages to participants here (a queue) or in another load process (its Unix
    datagram socket).

    Sending never waits: a message for another process is queued for that process's writer
    task, which writes whatever the peer's socket takes and waits only while it is full (a
    slow process holds up only what goes to it). The reading task reads every datagram
    waiting at once. So a starved load process (this machine is shared) spends its few
    scheduling turns on key messages in batches, not one a turn."""

    def __init__(self, directory: Path, index: int, owners: Sequence[Owner]) -> None:
        self._dir, self._index, self._owners = directory, index, list(owners)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.setblocking(False)
        self._local: deque[bytes] = deque()
        self._peers: dict[int, _Peer] = {}
        self._arrived = trio.Event()
        self._nursery: trio.Nursery | None = None

    def open(self) -> None:
        path = socket_path(self._dir, self._index)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        self._sock.bind(str(path))

    def __enter__(self) -> KeyBus:
        return self

    def __exit__(self, *_exc: object) -> None:
        self._sock.close()
        for peer in self._peers.values():
            peer.sock.close()

    def shared(
        self, to: Sequence[int], message: MeetingMessage, sender: int
    ) -> list[tuple[int, bytes]]:
        """``message`` for ``to`` as one datagram per load process holding some of them
        (naming only those), each with a pid it goes to (for :meth:`send`)."""
        by_owner: dict[int, list[int]] = {}
        for pid in to:
            by_owner.setdefault(owner_of(self._owners, pid), []).append(pid)
        return [(pids[0], bus_shared(sender, pids, message)) for pids in by_owner.values()]

    def send(self, to: int, data: bytes) -> None:
        """Send the bus datagram ``data`` (:func:`bus_frame`) to participant ``to`` (to its
        load process, for a shared one)."""
        index = owner_of(self._owners, to)
        if index == self._index:
            self._local.append(data)
            self._arrived.set()
            return
        peer = self._peers.get(index)
        if peer is None:
            peer = self._peers[index] = _Peer(socket_path(self._dir, index))
            if self._nursery is not None:  # else run() starts its writer
                self._nursery.start_soon(peer.write)
        peer.out.append(data)
        peer.queued.set()

    async def run(self, deliver: Callable[[bytes], object]) -> None:
        """Send what :meth:`send` queued and call ``deliver(data)`` for every key message,
        local or from the socket, until cancelled."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            for peer in self._peers.values():
                nursery.start_soon(peer.write)
            nursery.start_soon(self._read)
            while True:
                await self._arrived.wait()
                self._arrived = trio.Event()
                slice_end = time.monotonic() + BUS_SLICE
                while self._local:
                    deliver(self._local.popleft())
                    if time.monotonic() > slice_end:  # the media tasks here go on
                        await trio.lowlevel.checkpoint()
                        slice_end = time.monotonic() + BUS_SLICE

    async def _read(self) -> None:
        while True:
            await trio.lowlevel.wait_readable(self._sock)
            with contextlib.suppress(BlockingIOError):
                while True:
                    self._local.append(self._sock.recv(BUS_MAX))
            self._arrived.set()


@dataclass
class Records:
    """What :class:`Keys` saw (module docstring); times are ``time.monotonic()``."""

    switched: dict[tuple[int, int], float] = field(default_factory=dict)
    """(epoch, pid) -> when it switched to sending under ``epoch``."""
    first_open: dict[tuple[int, int, int], tuple[float, float]] = field(default_factory=dict)
    """(epoch, receiver, sender) -> (when first opened, when that frame was sent)."""
    opened: Counter[tuple[int, int]] = field(default_factory=Counter)
    """(receiver, epoch) -> frames opened."""
    no_key: Counter[tuple[int, int]] = field(default_factory=Counter)
    """(receiver, epoch) -> frames it could not open: it does not hold the epoch."""
    failures: int = 0
    """Frames that did not open although the receiver holds their epoch (must stay 0)."""
    rejected: int = 0
    """Key messages refused by the key schedule (must stay 0)."""
    sealed: int = 0
    epochs_sent: list[dict[str, float]] = field(default_factory=list)
    """The leader's new epochs: when, how many messages, its CPU seconds for them."""

    def document(self) -> dict[str, Any]:
        return {
            "switched": [[e, p, t] for (e, p), t in self.switched.items()],
            "first_open": [[e, r, s, t, at] for (e, r, s), (t, at) in self.first_open.items()],
            "opened": [[r, e, n] for (r, e), n in self.opened.items()],
            "no_key": [[r, e, n] for (r, e), n in self.no_key.items()],
            "failures": self.failures,
            "rejected": self.rejected,
            "sealed": self.sealed,
            "epochs_sent": self.epochs_sent,
        }


class Keys:
    """The key schedule and SFrame keys of one load process's participants."""

    def __init__(self, meeting: bytes, pids: Sequence[int], suite: str, bus: KeyBus) -> None:
        self.meeting, self.bus = meeting, bus
        self._suite = get_suite(suite)
        verify = self._suite.sig.verify
        self.members = {pid: MeetingMember(meeting, pid, verify) for pid in pids}
        self.crypto = {pid: MeetingCrypto(m) for pid, m in self.members.items()}
        self.leader: MeetingLeader | None = None
        self._identity: Identity | None = None
        self.records = Records()
        self._seen: Counter[tuple[int, int, int]] = Counter()
        self._sending: dict[int, int | None] = dict.fromkeys(pids)
        self.sending = trio.Event()
        """Set once every participant here sends under an epoch."""

    @property
    def leads(self) -> bool:
        return LEADER_PID in self.members

    # --- the key schedule ---------------------------------------------------------------------
    async def start(self, owners: Sequence[Owner]) -> None:
        """The leader (its process only) starts epoch 0 with every participant."""
        if not self.leads:
            return
        from client.entropy import SYSTEM_ENTROPY

        identity = self._identity = Identity.generate(self._suite, SYSTEM_ENTROPY)
        key = identity.public.sig
        entries = roster_entries(owners, key)
        own = self.members[LEADER_PID]
        self.leader = MeetingLeader(
            self.meeting, entries[LEADER_PID], key, identity, own.verify, os.urandom, _now_ms(),
            participants=entries, member=own,
        )  # fmt: skip
        self._route(self.leader.sends())

    def remove(self, pid: int) -> None:
        """The leader removes ``pid`` (its epoch comes at the next tick after the batch)."""
        assert self.leader is not None
        self.leader.leave(pid, _now_ms())

    async def run(self, nursery: trio.Nursery) -> None:
        """Deliver key messages and tick (every ``client.meetings.net.TICK``, sooner at the
        leader's deadlines), forever."""
        nursery.start_soon(self.bus.run, self._deliver)
        while True:
            await trio.sleep(self._wait())
            now = _now_ms()
            if self.leader is not None:
                cpu = time.process_time()
                sends = self.leader.tick(now)
                self._route(sends, cpu=time.process_time() - cpu)
            for member in self.members.values():
                member.tick(now)

    def _wait(self) -> float:
        """Seconds to the next tick: ``TICK``, or the leader's next deadline if sooner (as
        ``client.meetings.net.MeetingNet`` waits)."""
        deadline = None if self.leader is None else self.leader.next_deadline()
        if deadline is None:
            return TICK
        return min(TICK, max(MIN_WAIT, (deadline - _now_ms()) / 1000))

    def settled(self, epoch: int, speakers: Iterable[int], gone: set[int]) -> bool:
        """Whether every participant here but ``gone`` switched to ``epoch`` and opened a
        frame under it from every speaker (but ``gone`` and itself)."""
        talkers = [s for s in speakers if s not in gone]
        switched, opened = self.records.switched, self.records.first_open
        return all(
            (epoch, pid) in switched and all((epoch, pid, s) in opened for s in talkers if s != pid)
            for pid in self.members
            if pid not in gone
        )

    def all_sending(self) -> bool:
        return all(m.send_epoch is not None for m in self.members.values())

    def _deliver(self, data: bytes) -> None:
        try:
            sender, to, key, message = bus_unframe(data)
        except (WireError, struct.error):
            self.records.rejected += 1
            return
        now = _now_ms()
        if to == SHARED_TO and isinstance(message, SealedRoster):
            for pid in shared_pids(data):
                self._take(pid, lambda m, at: m.on_sealed_roster(message, at), now)
            self._note_switches()
            return
        try:
            if isinstance(message, MeetingAck) and self.leader is not None and to == LEADER_PID:
                self._route(self.leader.on_ack(sender, message, now))
            elif isinstance(message, MeetingEpochKey):
                self._take(to, lambda m, at: m.on_epoch_key(message, key, at), now)
            elif isinstance(message, MeetingSwitch):
                self.members[to].on_switch(message, now)
        except (MeetingError, KeyError):
            self.records.rejected += 1
        self._note_switches()

    def _take(self, pid: int, handle: Callable[[MeetingMember, int], list[Out]], now: int) -> None:
        """``handle`` a key message at participant ``pid``; route its acks."""
        try:
            self._route(handle(self.members[pid], now), sender=pid)
        except (MeetingError, KeyError):
            self.records.rejected += 1

    def _route(self, sends: list[Out], sender: int = LEADER_PID, cpu: float = 0.0) -> None:
        """Send ``sends`` from ``sender``; ``cpu``: the leader's seconds to make them. A new
        epoch is recorded with that and the CPU seconds to encode its messages."""
        if not sends:
            return
        key = b""
        if sender == LEADER_PID and self._identity is not None:
            key = self._identity.public.sig
        started = time.process_time()
        frames = [
            frame
            for s in sends
            for frame in (
                self.bus.shared(s.to, s.message, sender)
                if isinstance(s, Shared)
                else [(s.to, bus_frame(sender, s.to, key, s.message))]
            )
        ]
        epochs = sum(isinstance(s.message, MeetingEpochKey) for s in sends)
        if epochs:
            self.records.epochs_sent.append(
                {"at": time.monotonic(), "n": epochs, "cpu_s": cpu,
                 "encode_cpu_s": time.process_time() - started}
            )  # fmt: skip
        for to, data in frames:
            self.bus.send(to, data)
        self._note_switches()

    def _note_switches(self) -> None:
        for pid, member in self.members.items():
            epoch = member.send_epoch
            if epoch != self._sending[pid]:
                self._sending[pid] = epoch
                if epoch is not None:
                    self.records.switched[(epoch, pid)] = time.monotonic()
        if not self.sending.is_set() and self.all_sending():
            self.sending.set()

    # --- media --------------------------------------------------------------------------------
    def seal(self, pid: int, metadata: bytes, plaintext: bytes) -> bytes | None:
        """``pid``'s SFrame ciphertext of a frame, or None before it has a send epoch."""
        if self._sending.get(pid) is None:
            return None
        self.records.sealed += 1
        return self.crypto[pid].protect(metadata, plaintext)

    def on_frame(self, pid: int, metadata: bytes, frame: bytes, sent: float) -> None:
        """Participant ``pid`` received ``frame`` sent at ``sent`` (module docstring)."""
        try:
            epoch, sender = kid_parts(sframe.decode_header(frame).kid)
        except sframe.SFrameError:
            self.records.failures += 1
            return
        crypto = self.crypto[pid]
        track = (epoch, pid, sender)
        seen = self._seen[track] = self._seen[track] + 1
        opened = track in self.records.first_open
        if opened and seen % OPEN_EVERY and crypto.member.holds(epoch):
            return
        try:
            crypto.unprotect(frame, metadata)
        except sframe.UnknownKidError:
            self.records.no_key[(pid, epoch)] += 1
            return
        except sframe.SFrameError:
            self.records.failures += 1
            return
        self.records.opened[(pid, epoch)] += 1
        self.records.first_open.setdefault(track, (time.monotonic(), sent))


def _now_ms() -> int:
    return int(time.monotonic() * 1000)
