"""The signalling shell of a group's meeting: the trio loop around the pure
:class:`~client.meetings.group.GroupMeeting` (issue 18).

    client.receive --meeting_note--> MeetingInbox --> MeetingNet.run --> GroupMeeting
                   --meeting_shared->
    GroupMeeting's Note events   composed in order into the outbox by one sender task
                                 (``client.sendpath``, like any pairwise message), each
                                 a ``client.content.MeetingNote`` with this account's reply
                                 token and mailbox, since members of a group may never
                                 have written to each other
    its SharedNote events        in the same order, one shared upload of the sealed roster
                                 to every device of the addresses named (``SendShared`` for
                                 the home domain, a routing layer for each other domain, as
                                 a group message travels: ``client.groupnet.uploads``); an
                                 address whose devices are unknown gets it pairwise
    every other event            to ``on_event`` (the media side, the JSON lines)

Notes of other groups are dropped (counted in :attr:`MeetingNet.other_groups`): only a
running ``meet`` reads them. The loop ticks the core every :data:`TICK` seconds, and at the
core's next deadline when that is sooner (the key schedule's timers, 200 ms and 1 s, then
cost no extra tick). Time is the client's clock, Unix ms.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Callable, Iterable
from typing import Final, Protocol

import trio

from client.calls.callnet import ReplyDetails, SignalSender
from client.clock import Clock, now_ms
from client.content import MeetingNote, pack_meeting
from client.entropy import Entropy
from client.errors import ClientError, Refused
from client.groupnet.transport import uploads
from client.meetings.group import Event, GroupMeeting, Note, SharedNote
from client.meetings.roster import sealed_body
from client.outbox import AnyItem
from client.records import Contact
from wire.meeting import SealedRoster
from wire.server import ServerKeyDocument

TICK: Final = 0.05
"""Seconds between ticks of the core."""
MIN_WAIT: Final = 0.001
"""Seconds the loop waits at least between two ticks (a deadline already past)."""
NOTE_TTL: Final = 120
"""Seconds a meeting note's envelopes live (an invite's life)."""
MAX_QUEUED: Final = 4096
"""Meeting notes waiting for the loop at most (older ones are dropped)."""

log = logging.getLogger(__name__)


class SharedSender(SignalSender, Protocol):
    """What a shared upload needs of ``client.sendpath.SendPath`` besides signalling."""

    home: str

    async def targets(self, to: str) -> dict[int, Contact]: ...

    async def documents(self, domains: Iterable[str]) -> dict[str, ServerKeyDocument]: ...

    def write_items(self, make: Callable[[], Iterable[AnyItem]]) -> list[bytes]: ...


class MeetingInbox:
    """Where the receive path puts meeting notes and sealed rosters
    (``client.receive.MeetingSink``)."""

    def __init__(self) -> None:
        self.notes: deque[tuple[str, int, bytes, MeetingNote]] = deque(maxlen=MAX_QUEUED)
        self.shared: deque[SealedRoster] = deque(maxlen=MAX_QUEUED)
        self.arrived = trio.Event()

    def meeting_note(self, sender: str, device: int, key: bytes, note: MeetingNote) -> None:
        self.notes.append((sender, device, key, note))
        self.arrived.set()

    def meeting_shared(self, sealed: SealedRoster) -> None:
        self.shared.append(sealed)
        self.arrived.set()


class MeetingNet:
    """One group meeting on the network (module docstring)."""

    def __init__(
        self,
        core: GroupMeeting,
        inbox: MeetingInbox,
        sender: SignalSender,
        *,
        reply: ReplyDetails,
        clock: Clock,
        on_event: Callable[[Event], object],
        shared: tuple[SharedSender, Entropy] | None = None,
    ) -> None:
        self.core = core
        self._inbox, self._sender, self._reply = inbox, sender, reply
        self._clock, self._on_event = clock, on_event
        self._shared = shared  # None: a sealed roster goes pairwise to each
        self._out_send, self._out = trio.open_memory_channel[Note | SharedNote](math.inf)
        self._pending: set[bytes] = set()
        self._idle = trio.Event()
        self._idle.set()
        self._queued = 0
        self.other_groups = 0
        self.refused = 0

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Start the core, then handle notes and ticks, forever."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._send_loop)
            self._perform(self.core.start(now_ms(self._clock)))
            task_status.started()
            while True:
                while self._inbox.notes:
                    sender, device, key, note = self._inbox.notes.popleft()
                    if note.group != self.core.group:
                        self.other_groups += 1
                        continue
                    now = now_ms(self._clock)
                    self._perform(self.core.receive(sender, device, key, note.signal, now))
                while self._inbox.shared:
                    sealed = self._inbox.shared.popleft()
                    self._perform(self.core.receive_shared(sealed, now_ms(self._clock)))
                now = now_ms(self._clock)
                self._perform(self.core.tick(now))
                self._inbox.arrived = trio.Event()
                with trio.move_on_after(self._wait(now)):
                    await self._inbox.arrived.wait()

    def _wait(self, now: int) -> float:
        """Seconds until the next tick: :data:`TICK`, or less when the core has a deadline
        sooner (a leave batch to flush, a switch timeout)."""
        deadline = self.core.next_deadline()
        if deadline is None:
            return TICK
        return min(TICK, max(MIN_WAIT, (deadline - now) / 1000))

    async def leave(self) -> None:
        """Leave the meeting; returns once its notes were composed and settled by the node
        (the caller bounds the wait)."""
        self._perform(self.core.leave(now_ms(self._clock)))
        await self._idle.wait()
        await self._sender.wait(set(self._pending))

    def _perform(self, events: list[Event]) -> None:
        for event in events:
            if isinstance(event, Note | SharedNote):
                self._queued += 1
                self._idle = trio.Event()
                self._out_send.send_nowait(event)
            else:
                self._on_event(event)

    async def _send_loop(self) -> None:
        """Compose the notes in order (one at a time keeps an epoch before its switch)."""
        async for note in self._out:
            if isinstance(note, SharedNote):
                await self._upload(note)
            else:
                await self._compose(note)
            self._queued -= 1
            if not self._queued:
                self._idle.set()

    async def _compose(self, note: Note) -> None:
        token, mailbox = self._reply()
        plaintext = pack_meeting(MeetingNote(self.core.group, note.signal, token, mailbox))
        try:
            eids = await self._sender.compose(note.to, plaintext, NOTE_TTL)
        except ClientError as exc:
            self.refused += 1
            log.info("a meeting note to %s was not sent (%s)", note.to, exc.code)
        else:
            self._pending.update(eids)
            self._sender.wake()

    async def _upload(self, note: SharedNote) -> None:
        """The sealed roster once to every device of ``note.to`` (module docstring)."""
        if self._shared is None:
            for to in note.to:
                await self._compose(Note(to, note.signal))
            return
        sender, entropy = self._shared
        recipients: dict[str, list[tuple[bytes, bytes | None]]] = {}
        for to in note.to:
            try:
                contacts = await sender.targets(to)
            except ClientError:
                await self._compose(Note(to, note.signal))  # it refuses, or says why not
                continue
            domain = to.rpartition("@")[2].lower()
            recipients.setdefault(domain, []).extend(
                (c.mailbox, c.delivery_token) for c in contacts.values()
            )
        if not recipients:
            return
        try:
            docs = await sender.documents(recipients)
        except ClientError as exc:
            self.refused += 1
            log.info("a meeting roster was not sent (%s)", exc.code)
            return
        body, now = sealed_body(note.signal), now_ms(self._clock)
        home = sender.home
        eids = sender.write_items(
            lambda: uploads(home, recipients, docs, body, NOTE_TTL, now, entropy)
        )
        self._pending.update(eids)
        sender.wake()

    async def refusals(self) -> dict[bytes, Refused]:
        """The notes the node refused so far (waits for the pending ones)."""
        return await self._sender.wait(set(self._pending))
