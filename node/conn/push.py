"""The pushes of one authenticated connection: catch-up from the store, then memory.

On authentication the connection *catches up*: it reads the mailbox from the store in
pages after ``floor`` (the highest seq read) until a short page, then sends ``Drained``.
Envelopes the hub hands over meanwhile wait in memory (kept in seq order); afterwards
they are pushed straight from memory, skipping any with ``seq <= floor`` (already read) —
the store shows seqs in commit order, so nothing above ``floor`` was missed. If the
in-memory buffer overflows (a slow reader), it is dropped and the connection catches up
from the store again; that may push an envelope twice, which clients de-duplicate by
``eid``. Only an ``Ack`` deletes; expired envelopes are never pushed.

Pure: the shell reads the store (:class:`ReadMailbox`) and passes the time in.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from wire.relay import Deliver, Drained, Envelope

PAGE: Final = 256
BATCH_ENVELOPES: Final = 256
BATCH_BYTES: Final = 512 * 1024
LIVE_MAX: Final = 1024
LIVE_MAX_BYTES: Final = 4 * 1024 * 1024


class Stored(Protocol):
    """What a push needs of a stored envelope (``node.store.StoredEnvelope``)."""

    @property
    def eid(self) -> bytes: ...
    @property
    def seq(self) -> int: ...
    @property
    def ts(self) -> int: ...
    @property
    def expires(self) -> int: ...
    @property
    def origin(self) -> str: ...
    @property
    def sender(self) -> str | None: ...
    @property
    def body(self) -> bytes: ...


Pushed = Callable[[Sequence[Stored], int], None]
"""Told of the envelopes pushed and the time (Unix ms): the shell counts them."""


@dataclass(frozen=True, slots=True)
class ReadMailbox:
    """Action: read a page of the mailbox after ``floor`` and pass it to
    :meth:`PushQueue.caught_up`."""

    floor: int
    limit: int = PAGE


class PushQueue:
    """The push state of one connection: the catch-up flags, ``floor``, the count of
    envelopes pushed, and the in-memory buffer of hand-overs."""

    __slots__ = (
        "_catching_up",
        "_drained",
        "_floor",
        "_live",
        "_live_bytes",
        "_on_pushed",
        "_pushed",
        "_reread",
    )

    def __init__(self, on_pushed: Pushed) -> None:
        self._on_pushed = on_pushed
        self._catching_up = False
        self._reread = False
        self._drained = False
        self._floor = 0
        self._pushed = 0
        self._live: deque[Stored] | None = None  # made on the first hand-over
        self._live_bytes = 0

    def start(self) -> None:
        """Authenticated: catch up from the store first."""
        self._catching_up = True

    def offer(self, envelope: Stored) -> None:
        """Buffer a newly stored envelope (dropping the buffer when it overflows)."""
        live = self._live
        if live is None:
            live = self._live = deque()
        if live and live[-1].seq > envelope.seq:
            # The senders woken by one group commit resume in any order: keep the buffer
            # in seq order (the arrival order is nearly sorted, so this walk is short).
            at = len(live)
            while at and live[at - 1].seq > envelope.seq:
                at -= 1
            live.insert(at, envelope)
        else:
            live.append(envelope)
        self._live_bytes += len(envelope.body)
        if len(live) > LIVE_MAX or self._live_bytes > LIVE_MAX_BYTES:
            self._live = None
            self._live_bytes = 0
            self._catching_up = self._reread = True

    def next(self, now_ms: int) -> ReadMailbox | list[object]:
        """A page to read from the store while catching up, else the frames to push from
        memory ([] when idle)."""
        if self._catching_up:
            self._reread = False
            return ReadMailbox(self._floor)
        return self._from_memory(now_ms)

    def caught_up(self, page: Sequence[Stored], now_ms: int) -> list[object]:
        """The frames for a page read after :class:`ReadMailbox` (then ``Drained`` once,
        after the first short page that no overflow made stale)."""
        if page:
            self._floor = max(self._floor, page[-1].seq)
        frames = self._batches(page, now_ms)
        if len(page) < PAGE and not self._reread:
            self._catching_up = False
            if not self._drained:
                self._drained = True
                frames.append(Drained(self._pushed))
        return frames

    def _from_memory(self, now_ms: int) -> list[object]:
        live = self._live
        batch: list[Stored] = []
        size = 0
        while live and len(batch) < BATCH_ENVELOPES and size < BATCH_BYTES:
            env = live.popleft()
            self._live_bytes -= len(env.body)
            if env.seq > self._floor and env.expires > now_ms:
                batch.append(env)
                size += len(env.body)
        if not live:
            self._live = None  # an idle connection keeps no buffer
        return self._batches(batch, now_ms)

    def _batches(self, envelopes: Sequence[Stored], now_ms: int) -> list[object]:
        frames: list[object] = []
        batch: list[Envelope] = []
        size = 0
        for env in envelopes:
            if batch and (len(batch) >= BATCH_ENVELOPES or size + len(env.body) > BATCH_BYTES):
                frames.append(Deliver(tuple(batch)))
                batch, size = [], 0
            batch.append(Envelope(env.eid, env.ts, env.expires, env.origin, env.sender, env.body))
            size += len(env.body)
        if batch:
            frames.append(Deliver(tuple(batch)))
        self._pushed += len(envelopes)
        self._on_pushed(envelopes, now_ms)
        return frames
