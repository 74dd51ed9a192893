"""Load generator of ``benchmarks.calls``: one process, several 1:1 calls, both ends of each
call in this process (so a datagram's send and arrival times come from one clock).

    python -m benchmarks.callload SPEC.json

``SPEC.json``: ``{"suite": ..., "pairs": [{"caller": ACCOUNT, "callee": ACCOUNT}, ...]}``
with ``ACCOUNT = {"address": ..., "url": ..., "code": ...}`` (an invite code of the node at
``url``). The process enrolls every account, prints ``{"ready": ...}``, then takes one
command per line on stdin and answers each with one JSON line on stdout:

``media SECONDS VIDEO PAIRS [FROM]``
    ``PAIRS`` pairs (the first, or from the ``FROM``-th on) call at once through their
    nodes: the callee allocates a leg (``LegAllocate``), the caller bridges to it
    (``LegBridge``), both bind QUIC media connections to the node's media port; once every
    call is bound (a ``{"bound": PAIRS}`` line first) both ends of each play the fixture
    (real Opus + VP8, SFrame-encrypted and packetized by ``client.calls.runner``) for
    ``SECONDS``.
``direct SECONDS VIDEO PAIRS [FROM]``
    the same media with no node: the callee's end is a ``QuicServer`` in this process and
    the caller connects to it on loopback (the baseline the relay's cost is measured against).
``flood SECONDS PAIRS``
    the first ``PAIRS`` pairs bind legs as for ``media``, then both ends of each send the
    fixture's datagrams (encrypted once beforehand) as fast as the other end receives them
    (at most ``FLOOD_WINDOW`` in flight each way), for ``SECONDS``: how many were sent and
    received (the node's capacity, not a call).
``setup COUNT``
    the first pair places ``COUNT`` calls one after the other with the call signalling of
    ``client.calls.control`` (``place_call`` / ``answer_call``: an end-to-end CallOffer over
    the pairwise session, the callee's leg, the caller's bridge, QUIC binds) and reports,
    for each, the time from just before the offer to the first frame each side received.
``quit``

Per-datagram timing (:class:`Probe`, a ``MediaTransport`` wrapper): the sender's probe notes
``time.perf_counter()`` when a datagram is handed to ``send_datagrams`` under the datagram's
clear header (all of it but the sender id, which the node may rewrite); the receiver's probe
takes the time ``receive_datagram_batch`` returns it. The difference is one datagram's
path, sender's QUIC stack to receiver's task, through the node or not. "First frame": the
first batch that brings a whole frame (an Opus frame is one datagram); the runner decrypts
it in the same step (its ``decrypt_failures`` are reported and must be 0).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
import traceback
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import trio

from benchmarks.callflood import flood
from benchmarks.callkit import STEP_TIMEOUT, Barrier, Pair, emit, loopback_quic
from client.app import Client
from client.calls.control import MediaOptions, answer_call, place_call
from client.calls.keys import CallSecret, Direction
from client.calls.runner import MediaRun, run_media
from client.enroll import enroll
from client.store.memory import MemoryStore
from transport.base import DATAGRAM_BATCH, MediaTransport, TransportKind, TransportStats
from wire.calls import LegRef
from wire.media import HEADER_SIZE

DELAY: Final = 0.2
"""Jitter buffer delay (seconds) of the runners: generous, the cores are shared."""
SETUP_SECONDS: Final = 1.0
"""Seconds of media per call of a ``setup`` command."""
SETUP_PAUSE: Final = 0.3


def _last_packet(datagram: bytes) -> bool:
    """Whether ``datagram`` is the last packet of its frame (header bytes 17-20)."""
    return int.from_bytes(datagram[17:19], "big") + 1 == int.from_bytes(datagram[19:21], "big")


def _key(datagram: bytes) -> bytes:
    """A datagram's identity within one direction: its clear header without the sender id
    (bytes 3-6, which the node may rewrite)."""
    return datagram[:3] + datagram[7:HEADER_SIZE]


@dataclass
class Flow:
    """One direction of one call: send times by datagram key, and what arrived."""

    sent: dict[bytes, float] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    received: int = 0
    first_frame: float | None = None


class Probe:
    """A ``MediaTransport`` that times each datagram it sends (into ``out``) and receives
    (from ``into``); see the module docstring."""

    def __init__(self, inner: MediaTransport, out: Flow, into: Flow) -> None:
        self._inner, self._out, self._into = inner, out, into

    @property
    def kind(self) -> TransportKind:
        return self._inner.kind

    async def send_datagram(self, payload: bytes) -> None:
        await self.send_datagrams([payload])

    async def send_datagrams(self, payloads: Iterable[bytes]) -> None:
        batch = list(payloads)
        now = time.perf_counter()
        sent = self._out.sent
        for datagram in batch:
            sent[_key(datagram)] = now
        await self._inner.send_datagrams(batch)

    async def receive_datagram(self) -> bytes:
        return (await self.receive_datagram_batch(1))[0]

    async def receive_datagram_batch(self, limit: int = DATAGRAM_BATCH) -> list[bytes]:
        batch = await self._inner.receive_datagram_batch(limit)
        now = time.perf_counter()
        into = self._into
        for datagram in batch:
            at = into.sent.get(_key(datagram))
            if at is not None:
                into.latencies.append(now - at)
                into.received += 1
            if into.first_frame is None and _last_packet(datagram):
                into.first_frame = now
        return batch

    def datagrams(self) -> AsyncIterator[bytes]:
        return self._inner.datagrams()

    async def send_control(self, message: bytes) -> None:
        await self._inner.send_control(message)

    async def receive_control(self) -> bytes:
        return await self._inner.receive_control()

    async def aclose(self) -> None:
        await self._inner.aclose()

    def stats(self) -> TransportStats:
        return self._inner.stats()


# --- accounts ---------------------------------------------------------------------------------


async def _enroll(account: dict[str, str], suite: str, home: Path) -> Client:
    store = MemoryStore()
    await enroll(store, account["address"], account["url"], account["code"], suite)
    return Client.load(store, save_dir=home)


def _accounts(spec: dict[str, Any]) -> list[dict[str, str]]:
    """Every account of the spec once (one caller may call callees of two domains)."""
    accounts = [pair[side] for pair in spec["pairs"] for side in ("caller", "callee")]
    return list({account["address"]: account for account in accounts}.values())


def _homes(spec: dict[str, Any], home: Path) -> None:
    for n in range(len(_accounts(spec))):
        (home / str(n)).mkdir(parents=True, exist_ok=True)


async def _enroll_all(spec: dict[str, Any], home: Path) -> list[Pair]:
    """Every account of ``spec`` enrolled (client state in memory, saved files under
    ``home``, whose numbered folders :func:`_homes` made)."""
    clients: dict[str, Client] = {}
    accounts = _accounts(spec)

    async def one(n: int, account: dict[str, str]) -> None:
        clients[account["address"]] = await _enroll(account, spec["suite"], home / str(n))

    async with trio.open_nursery() as nursery:
        for n, account in enumerate(accounts):
            nursery.start_soon(one, n, account)
    return [
        Pair(clients[p["caller"]["address"]], clients[p["callee"]["address"]])
        for p in spec["pairs"]
    ]


# --- one call's media -------------------------------------------------------------------------


@dataclass
class CallResult:
    forward: Flow = field(default_factory=Flow)
    back: Flow = field(default_factory=Flow)
    runs: list[MediaRun] = field(default_factory=list)

    def document(self) -> dict[str, Any]:
        sent = len(self.forward.sent) + len(self.back.sent)
        stats = [run.stats for run in self.runs]
        return {
            "sent": sent,
            "received": self.forward.received + self.back.received,
            "latencies": [round(x * 1e6, 1) for x in self.forward.latencies + self.back.latencies],
            "frames_sent": sum(s.frames_sent for s in stats),
            "frames_received": sum(s.frames_received for s in stats),
            "frames_lost": sum(s.frames_lost for s in stats),
            "frames_late": sum(s.frames_late for s in stats),
            "decrypt_failures": sum(s.decrypt_failures for s in stats),
            "digest_mismatches": sum(s.digest_mismatches for s in stats),
        }


async def _play(
    result: CallResult,
    ends: tuple[MediaTransport, MediaTransport],
    senders: tuple[int | None, int | None],
    seconds: float,
    video: bool,
) -> None:
    """Both ends of one call play the fixture for ``seconds``."""
    secret = CallSecret(os.urandom(32))
    caller = Probe(ends[0], result.forward, result.back)
    callee = Probe(ends[1], result.back, result.forward)

    async def side(media: MediaTransport, direction: Direction, sender: int | None) -> None:
        run = await run_media(
            media, secret, direction, video=video, seconds=seconds, delay=DELAY, sender=sender
        )
        result.runs.append(run)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(side, caller, Direction.CALLER_TO_CALLEE, senders[0])
        nursery.start_soon(side, callee, Direction.CALLEE_TO_CALLER, senders[1])


async def _relayed(pair: Pair, seconds: float, video: bool, barrier: Barrier) -> CallResult:
    """One call through the nodes: allocate, bridge, bind QUIC on both sides, play."""
    result = CallResult()
    granted = await pair.callee.leg_allocate()
    bridged = await pair.caller.leg_bridge(LegRef(pair.callee.domain, granted.leg_id))
    callee_media, callee_sender = await pair.callee.media_quic(granted)
    caller_media, caller_sender = await pair.caller.media_quic(bridged)
    try:
        await barrier.arrive()
        await _play(
            result, (caller_media, callee_media), (caller_sender, callee_sender), seconds, video
        )
    finally:
        await pair.caller.leg_hang_up(bridged.leg_id)
        await caller_media.aclose()
        await callee_media.aclose()
    return result


async def _direct(seconds: float, video: bool, barrier: Barrier) -> CallResult:
    """One call with no node: a QUIC connection on loopback between the two ends."""
    result = CallResult()
    async with trio.open_nursery() as nursery:
        caller, callee = await loopback_quic(nursery)
        await barrier.arrive()
        await _play(result, (caller, callee), (None, None), seconds, video)
        await caller.aclose()
        nursery.cancel_scope.cancel()
    return result


async def _media(pairs: list[Pair], seconds: float, video: bool, relayed: bool) -> dict[str, Any]:
    results: list[CallResult] = []
    barrier = Barrier(len(pairs))

    async def one(pair: Pair) -> None:
        if relayed:
            results.append(await _relayed(pair, seconds, video, barrier))
        else:
            results.append(await _direct(seconds, video, barrier))

    with trio.fail_after(seconds + STEP_TIMEOUT):
        async with trio.open_nursery() as nursery:
            for pair in pairs:
                nursery.start_soon(one, pair)
    docs = [r.document() for r in results]
    merged: dict[str, Any] = {"cpu_s": time.process_time() - barrier.cpu_s, "calls": len(docs)}
    for key in docs[0]:
        merged[key] = (
            [x for d in docs for x in d[key]] if key == "latencies" else sum(d[key] for d in docs)
        )
    return merged


# --- call setup through the signalling --------------------------------------------------------


class Legs:
    """A client's legs (``client.calls.control.Legs``) whose media transports are probed."""

    def __init__(self, client: Client, into: Flow) -> None:
        self._client, self._into = client, into

    @property
    def domain(self) -> str:
        return self._client.domain

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    async def media_quic(self, grant: Any) -> tuple[MediaTransport, int]:
        media, sender = await self._client.media_quic(grant)
        return Probe(media, Flow(), self._into), sender

    async def media_websocket(self, grant: Any) -> tuple[MediaTransport, int]:
        media, sender = await self._client.media_websocket(grant)
        return Probe(media, Flow(), self._into), sender


async def _one_setup(pair: Pair) -> dict[str, Any]:
    heard_by_caller, heard_by_callee = Flow(), Flow()
    options = MediaOptions(seconds=SETUP_SECONDS)
    outcomes: list[Any] = []

    def quiet(_: dict[str, Any]) -> None:
        pass

    async def answer() -> None:
        legs = Legs(pair.callee, heard_by_callee)
        outcomes.append(
            await answer_call(
                pair.callee.calls, legs, wait=STEP_TIMEOUT, options=options, emit=quiet
            )
        )

    with trio.fail_after(STEP_TIMEOUT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(answer)
            await trio.sleep(SETUP_PAUSE)  # the callee is listening
            start = time.perf_counter()
            legs = Legs(pair.caller, heard_by_caller)
            outcomes.append(
                await place_call(
                    pair.caller.calls, legs, pair.callee.device.address, video=True,
                    options=options, emit=quiet,
                )
            )  # fmt: skip
    failures = sum(int((o.summary or {}).get("decrypt_failures", 0)) for o in outcomes if o)
    return {
        "caller_ms": _since(start, heard_by_caller.first_frame),
        "callee_ms": _since(start, heard_by_callee.first_frame),
        "ok": all(o is not None and o.ok for o in outcomes),
        "reasons": sorted({str(o.reason) for o in outcomes if o is not None}),
        "decrypt_failures": failures,
    }


def _since(start: float, at: float | None) -> float | None:
    return None if at is None else round((at - start) * 1000, 2)


async def _setups(pair: Pair, count: int) -> dict[str, Any]:
    runs = []
    for _ in range(count):
        runs.append(await _one_setup(pair))
        await trio.sleep(SETUP_PAUSE)
    return {"setups": runs}


# --- the command loop -------------------------------------------------------------------------


async def _command(line: str, pairs: list[Pair]) -> dict[str, Any]:
    words = line.split()
    if words[0] in ("media", "direct"):
        seconds, video, count = float(words[1]), words[2] == "1", int(words[3])
        at = int(words[4]) if len(words) > 4 else 0
        return await _media(pairs[at : at + count], seconds, video, relayed=words[0] == "media")
    if words[0] == "flood":
        return await flood(pairs[: int(words[2])], float(words[1]))
    if words[0] == "setup":
        return await _setups(pairs[0], int(words[1]))
    raise ValueError(f"unknown command {line!r}")


async def _main(spec: dict[str, Any], home: Path) -> None:
    pairs = await _enroll_all(spec, home)
    stdin = trio.wrap_file(sys.stdin)
    async with contextlib.AsyncExitStack() as stack:
        clients = {id(c): c for p in pairs for c in (p.caller, p.callee)}  # a caller may repeat
        for client in clients.values():
            await stack.enter_async_context(client.online())
        emit({"ready": len(pairs)})
        while (line := (await stdin.readline()).strip()) and line != "quit":
            try:
                emit(await _command(line, pairs))
            except Exception as exc:  # the orchestrator reports it and stops the run
                traceback.print_exc()
                leaf = _leaf(exc)
                emit({"error": f"{type(leaf).__name__}: {leaf}"})


def _leaf(exc: BaseException) -> BaseException:
    """The first exception inside nested exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


if __name__ == "__main__":
    path = Path(sys.argv[1])
    load_spec = json.loads(path.read_text(encoding="utf-8"))
    homes = path.parent / f"{path.stem}-homes"
    _homes(load_spec, homes)
    trio.run(_main, load_spec, homes)
