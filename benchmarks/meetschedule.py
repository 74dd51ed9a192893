"""The meeting key schedule alone at 200 (issue 18, rekey after a leave): no node, no media,
every participant in this one process, so on one core.

The same :class:`benchmarks.meetkeys.Keys` as the load processes (the client's
``MeetingLeader`` and ``MeetingMember``, the roster signed and checked, key messages handed
over in-process), for :data:`PARTICIPANTS` participants: epoch 0 for all, then
:data:`LEAVES` single leaves one after the other. A participant is done with a leave when
it switched to sending under the new epoch; ``p50``/``p99`` are over every remaining
participant of every leave, from the removal. It is the key schedule's own cost on one core
(199 roster signature checks in a row, the 200 ms leave batch, the acknowledgements and the
switch), without the media path or the load processes' competition for the CPU that the
``rekey after a leave`` rows include.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Final

import trio

from benchmarks.harness import Result
from benchmarks.meetkeys import KeyBus, Keys, Owner
from benchmarks.meetrekey import TARGET_P99_MS, percentile
from benchmarks.meetrows import GROUP

PARTICIPANTS: Final = 200
QUICK_PARTICIPANTS: Final = 20
LEAVES: Final = 3
SUITE: Final = "cnsa2"
POLL: Final = 0.01
WITHIN: Final = 30.0
"""Seconds a leave may take before the row gives up on it."""


async def _run(directory: Path, participants: int) -> tuple[float, list[list[float]]]:
    owners = [Owner(0, participants, "m0@bench.example")]
    keys = Keys(os.urandom(16), range(participants), SUITE, KeyBus(directory, 0, owners))
    keys.bus.open()
    with keys.bus:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(keys.run, nursery)
            started = time.monotonic()
            await keys.start(owners)
            with trio.fail_after(WITHIN):
                await keys.sending.wait()
            start_s = time.monotonic() - started
            gone: set[int] = set()
            times = []
            for i in range(LEAVES):
                times.append(await _leave(keys, participants - 1 - i, gone))
            nursery.cancel_scope.cancel()
    return start_s, times


async def _leave(keys: Keys, pid: int, gone: set[int]) -> list[float]:
    """Remove ``pid``; each remaining participant's seconds until it switched."""
    assert keys.leader is not None
    epoch, at = keys.leader.epoch + 1, time.monotonic()
    keys.remove(pid)
    gone.add(pid)
    for _ in range(int(WITHIN / POLL)):
        if keys.settled(epoch, (), gone):
            break
        await trio.sleep(POLL)
    switched = keys.records.switched
    return [
        switched[(epoch, p)] - at for p in keys.members if p not in gone and (epoch, p) in switched
    ]


def run_schedule(quick: bool) -> Result:
    participants = QUICK_PARTICIPANTS if quick else PARTICIPANTS
    with tempfile.TemporaryDirectory(prefix="sealrelay-bench-keys-") as tmp:
        cpu = time.process_time()
        start_s, leaves = trio.run(_run, Path(tmp), participants)
        cpu = time.process_time() - cpu
    times = [t for leave in leaves for t in leave]
    every = [max(leave, default=0.0) for leave in leaves]
    p99 = percentile(times, 99) * 1000
    return Result(
        group=GROUP,
        name=f"rekey, key schedule alone, {participants} participants in one process",
        ops_per_s=0.0,
        mean_us=sum(times) / max(len(times), 1) * 1e6,
        p50_us=percentile(times, 50) * 1e6,
        p99_us=p99 * 1000,
        calls=len(leaves),
        samples=len(times),
        batch=1,
        extra={
            "target_p99_ms": TARGET_P99_MS,
            "every_ms": "/".join(f"{t * 1000:.0f}" for t in every),
            "start_epoch_s": round(start_s, 3),
            "not_done": sum(participants - 1 - i - len(leave) for i, leave in enumerate(leaves)),
            "cpu_s": round(cpu, 3),
            "loadavg": "/".join(f"{x:.2f}" for x in os.getloadavg()),
        },
    )
