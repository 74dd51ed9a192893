"""Where a meeting datagram's time goes inside the node: ``benchmarks.profiled`` with two
timing hooks, for ``benchmarks.meetings``' *trace* window (issue 18: the relay-added p99).

    python -m benchmarks.nodetrace TRACE_OUT PROFILE_OUT MODULE [ARG ...]

runs ``MODULE`` as ``benchmarks.profiled`` does (``SIGUSR1``/``SIGUSR2``: the profile) with
``node.sfu.shell.MeetingService.forward`` and ``transport.quic.QuicChannel.send_datagrams``
wrapped in this process only (the node's code is not changed). Between :data:`START`
(counts reset; the window read from :func:`window_path`) and :data:`STOP` (counts written
to ``TRACE_OUT`` as JSON) it counts, for the datagrams sent within the window and from
the send time every load-generator payload starts with (``benchmarks.meetload.STAMP``,
``CLOCK_MONOTONIC``, one clock for every process of the machine):

``enter``
    send -> ``forward`` starts on the datagram's batch (the sender's stack, the loopback,
    the node's socket queue, its QUIC receive and its scheduling), voice datagrams only;
``copy``
    send -> one copy handed to the destination's QUIC connection and flushed to the socket
    (``enter`` plus the node's fan-out up to that copy), every copy;
``forward_us``
    the wall time of one ``forward`` call (its ``send_datagrams`` yield to other tasks);
``batch``
    datagrams per ``forward`` call;
``cwnd_limited``
    copies after whose flush the destination's congestion window was full (qh3's
    ``bytes_in_flight`` at least its ``congestion_window``): copies that wait in the node
    for acknowledgements, not for the CPU; ``rtt_ms`` the destination's smoothed RTT,
    sampled one copy in :data:`RTT_SAMPLE`.

Histograms are in :data:`BUCKET_US` buckets. A wrapper costs a few µs a batch; it is in
place only in its own window (put in at :data:`START`, taken out at :data:`STOP`), not while
CPU or forwarding per CPU-second is measured.
"""

from __future__ import annotations

import json
import os
import signal
import struct
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Final

BUCKET_US: Final = 100
"""Resolution of the trace's histograms, µs."""
RTT_SAMPLE: Final = 16
START: Final = signal.SIGRTMIN + 1
STOP: Final = signal.SIGRTMIN + 2
HEADER_SIZE: Final = 21
"""``wire.media.HEADER_SIZE`` (kept here so that this module imports nothing of the node
before it patches)."""
LEVEL_BYTE: Final = 2
VOICE_BIT: Final = 0x80
_SENT_AT: Final = struct.Struct(">Q")


@dataclass
class Trace:
    """The counts of one window (module docstring)."""

    on: bool = False
    start: int = 0
    """Only datagrams sent in ``[start, end)`` (monotonic ns) count."""
    end: int = 0
    enter: Counter[int] = field(default_factory=Counter)
    copy: Counter[int] = field(default_factory=Counter)
    forward_us: Counter[int] = field(default_factory=Counter)
    batch: Counter[int] = field(default_factory=Counter)
    rtt_ms: Counter[int] = field(default_factory=Counter)
    copies: int = 0
    cwnd_limited: int = 0

    def document(self) -> dict[str, Any]:
        def keyed(c: Counter[int]) -> dict[str, int]:
            return {str(k): v for k, v in sorted(c.items())}

        return {
            "bucket_us": BUCKET_US,
            "enter": keyed(self.enter),
            "copy": keyed(self.copy),
            "forward_us": keyed(self.forward_us),
            "batch": keyed(self.batch),
            "rtt_ms": keyed(self.rtt_ms),
            "copies": self.copies,
            "cwnd_limited": self.cwnd_limited,
        }


def sent_at(data: bytes) -> int | None:
    """The send time (monotonic ns) a load generator's payload starts with, if long enough."""
    if len(data) < HEADER_SIZE + _SENT_AT.size:
        return None
    return int(_SENT_AT.unpack_from(data, HEADER_SIZE)[0])


def _voiced(data: bytes) -> bool:
    return len(data) > LEVEL_BYTE and bool(data[LEVEL_BYTE] & VOICE_BIT)


def count_since(histogram: Counter[int], stamps: Iterable[int], now_ns: int) -> None:
    """Add ``now_ns - stamp`` of each stamp to ``histogram`` (:data:`BUCKET_US` buckets)."""
    bucket_ns = BUCKET_US * 1000
    for stamp in stamps:
        histogram[max(0, now_ns - stamp) // bucket_ns] += 1


def in_window(stamps: Iterable[int | None]) -> list[int]:
    """The stamps sent within the trace's window."""
    start, end = TRACE.start, TRACE.end
    return [s for s in stamps if s is not None and start <= s < end]


TRACE: Final = Trace()


def _hooks() -> Callable[[bool], None]:
    """What wraps ``MeetingService.forward`` and ``QuicChannel.send_datagrams`` (module
    docstring) when called with True and puts the node's own back with False: outside the
    trace window the node runs its own code, not a wrapper."""
    import trio

    from node.sfu.shell import MeetingService
    from transport.base import MAX_DATAGRAM_PAYLOAD
    from transport.quic import QuicChannel

    forward = MeetingService.forward
    send_datagrams = QuicChannel.send_datagrams

    async def traced_forward(self: MeetingService, source: Any, batch: Sequence[bytes]) -> None:
        if not TRACE.on:
            return await forward(self, source, batch)
        start = time.monotonic_ns()
        voiced = in_window(sent_at(d) for d in batch if _voiced(d))
        count_since(TRACE.enter, voiced, start)
        await forward(self, source, batch)
        TRACE.forward_us[(time.monotonic_ns() - start) // 1000 // BUCKET_US] += 1
        TRACE.batch[len(batch)] += 1
        return None

    async def traced_send(self: QuicChannel, payloads: Iterable[bytes]) -> None:
        if not TRACE.on:
            return await send_datagrams(self, payloads)
        batch = list(payloads)
        for payload in batch:  # send_datagrams' own steps, timed before its checkpoint
            self._check_sendable(len(payload), MAX_DATAGRAM_PAYLOAD)
        for payload in batch:
            self._queue_datagram(payload)
        self.flush()
        _note_copies(self, in_window(sent_at(d) for d in batch), time.monotonic_ns())
        if _YIELD_PER_SEND:
            await trio.lowlevel.checkpoint()
        return None

    def hook(on: bool) -> None:
        MeetingService.forward = traced_forward if on else forward  # type: ignore[method-assign]
        QuicChannel.send_datagrams = traced_send if on else send_datagrams  # type: ignore[method-assign]

    return hook


def _note_copies(channel: Any, stamps: list[int], now: int) -> None:
    count_since(TRACE.copy, stamps, now)
    TRACE.copies += len(stamps)
    core = getattr(getattr(channel, "_conn", None), "_core", None)
    if core is None:
        return
    try:
        if core.bytes_in_flight >= core.congestion_window:
            TRACE.cwnd_limited += len(stamps)
        if TRACE.copies % RTT_SAMPLE < len(stamps) and core.smoothed_rtt is not None:
            TRACE.rtt_ms[int(core.smoothed_rtt * 1000)] += 1
    except Exception:  # a diagnostic: a connection closing under it counts nothing
        return


def window_path(out: Path) -> Path:
    """Where the orchestrator writes the window (``START_NS END_NS``) before :data:`START`."""
    return out.with_suffix(".window")


IDEAS_ENV: Final = "SEALRELAY_BENCH_NODE_IDEAS"
"""Comma-separated experiments on the node's forwarding, put in at its start (for a run
compared with one without; the node's own code is not changed):

``batch_send``
    ``QuicChannel.send_datagrams`` without its checkpoint, so the node's forward hands one
    batch's copies to every destination without a checkpoint per destination and one
    datagram's fan-out is not interleaved with the other tasks of a starved node;
``short_queue``
    every QUIC connection keeps at most :data:`SHORT_QUEUE` received datagrams waiting
    for the application instead of ``QuicSettings.datagram_queue`` (256: five seconds of a
    speaker's audio), so a node that falls behind drops old audio instead of forwarding
    it seconds late."""
SHORT_QUEUE: Final = 16
_YIELD_PER_SEND = True
"""Whether a send yields to other tasks (``QuicChannel.send_datagrams`` does; not with
``batch_send``)."""


def _ideas(names: str) -> None:
    """Put in the experiments ``names`` (:data:`IDEAS_ENV`)."""
    wanted = {n.strip() for n in names.split(",") if n.strip()}
    if "short_queue" in wanted:
        _short_queue()
    if "batch_send" in wanted:
        _batch_send()


def _short_queue() -> None:
    from dataclasses import replace

    from transport.quic import QuicChannel

    init = QuicChannel.__init__

    def short(self: QuicChannel, *args: Any, **kwargs: Any) -> None:
        kwargs["settings"] = replace(kwargs["settings"], datagram_queue=SHORT_QUEUE)
        init(self, *args, **kwargs)

    QuicChannel.__init__ = short  # type: ignore[method-assign]


def _batch_send() -> None:
    """``QuicChannel.send_datagrams`` without its checkpoint: the node's forward then hands a
    batch's copies to every destination before any other task runs (it still yields when
    it reads the next batch)."""
    from transport.base import MAX_DATAGRAM_PAYLOAD
    from transport.quic import QuicChannel

    async def send_at_once(self: QuicChannel, payloads: Iterable[bytes]) -> None:
        batch = list(payloads)
        for payload in batch:
            self._check_sendable(len(payload), MAX_DATAGRAM_PAYLOAD)
        for payload in batch:
            self._queue_datagram(payload)
        self.flush()

    global _YIELD_PER_SEND
    _YIELD_PER_SEND = False
    QuicChannel.send_datagrams = send_at_once  # type: ignore[method-assign]


def main() -> None:
    out = Path(sys.argv[1])
    sys.argv = [sys.argv[0], *sys.argv[2:]]

    _ideas(os.environ.get(IDEAS_ENV, ""))
    hook = _hooks()

    def start(_signum: int, _frame: FrameType | None) -> None:
        first, last = (int(w) for w in window_path(out).read_text(encoding="utf-8").split())
        fresh = Trace(on=True, start=first, end=last)
        for name in vars(fresh):
            setattr(TRACE, name, getattr(fresh, name))
        hook(True)

    def stop(_signum: int, _frame: FrameType | None) -> None:
        hook(False)
        TRACE.on = False
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps(TRACE.document()), encoding="utf-8")
        tmp.replace(out)

    signal.signal(START, start)
    signal.signal(STOP, stop)
    from benchmarks.profiled import main as profiled_main

    profiled_main()


if __name__ == "__main__":
    main()
