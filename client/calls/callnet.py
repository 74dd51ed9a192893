"""The signalling shell of calls (issue 17, DESIGN section 9): the trio loop around the pure
:class:`~client.calls.signal_registry.CallRegistry`.

Signals travel as ordinary end-to-end messages: a ``wire.calls`` signal wrapped in a
``client.content.CallNote`` (with this account's reply token and mailbox, since a callee
answers callers it never wrote to), composed by the send path (``client.sendpath``) like any
pairwise message, so it goes through the same sessions, outbox and routing layers::

    client.receive  --call_note(sender, note)-->  CallNet  --registry.receive-->  events
    events: SendSignal            composed into the outbox here (the pump delivers it)
            everything else       published to every subscriber (``subscribe``): the
                                  media side (``client.calls.control``) acts on them

Time is the client's clock (Unix ms) on every input; the loop wakes at the registry's next
deadline (ring timeout, setup timeout). A device that only receives (``sealrelay client
receive``) still rings: ``Call.incoming`` answers an offer with ``CallRinging`` at once.

Identity: an offer (or a dial) with a peer whose identity change is not accepted ends as
``call.untrusted_identity``; so does a live call whose signal the send path refuses with
:class:`~client.errors.UntrustedIdentity`. Another refusal of a signal (no such account,
the node refused the envelope) is reported to the call as a failed send (``call.offline``
for an offer).

Envelope lifetime: every signal is sent with a TTL of the ring timeout (at least
:data:`MIN_SIGNAL_TTL` seconds); an offer that waited longer is stale anyway.
"""

from __future__ import annotations

import functools
import logging
import math
from collections import deque
from collections.abc import Callable, Iterable
from typing import Final, Protocol

import trio

from client.calls.signal import Call
from client.calls.signal_events import Event, SendSignal
from client.calls.signal_registry import CallRegistry
from client.clock import Clock, now_ms
from client.content import CallNote, pack_call
from client.errors import ClientError, Refused, UntrustedIdentity
from wire.calls import CallSignal

MIN_SIGNAL_TTL: Final = 30
"""Least TTL of a signal's envelopes, seconds."""

log = logging.getLogger(__name__)

ReplyDetails = Callable[[], tuple[bytes | None, bytes | None]]
"""This account's delivery token and mailbox (either may be unknown yet)."""
Action = Callable[[Call, int], list[Event]]


class SignalSender(Protocol):
    """The parts of ``client.sendpath.SendPath`` signalling uses."""

    async def compose(self, to: str, plaintext: bytes, ttl: int) -> list[bytes]: ...

    def wake(self) -> None: ...

    async def wait(self, eids: Iterable[bytes]) -> dict[bytes, Refused]: ...


class CallNet:
    """The calls of one device on the network (see the module docstring)."""

    def __init__(
        self,
        registry: CallRegistry,
        sender: SignalSender,
        *,
        identity_changed: Callable[[str], bool],
        reply: ReplyDetails,
        clock: Clock,
    ) -> None:
        self.registry = registry
        self._sender = sender
        self._identity_changed = identity_changed
        self._reply = reply
        self._clock = clock
        self._notes: deque[tuple[str, CallSignal]] = deque()
        self._wake = trio.Event()
        self._lock = trio.Lock()
        self._subscribers: list[trio.MemorySendChannel[Event]] = []
        self._pending: set[bytes] = set()
        self._nursery: trio.Nursery | None = None
        ring_s = math.ceil(registry.config.ring_timeout_ms / 1000)
        self.signal_ttl = max(MIN_SIGNAL_TTL, ring_s)

    # --- intake (sync: called inside the receive path's store transaction) ---------------

    def call_note(self, sender: str, note: CallNote) -> None:
        """A call note from ``sender`` opened; handled by :meth:`run` in arrival order."""
        self._notes.append((sender, note.signal))
        self._wake.set()

    # --- subscribers ------------------------------------------------------------------

    def subscribe(self) -> trio.MemoryReceiveChannel[Event]:
        """Every event but ``SendSignal`` from now on, in order (close it to leave)."""
        send, receive = trio.open_memory_channel[Event](math.inf)
        self._subscribers.append(send)
        return receive

    def _publish(self, event: Event) -> None:
        for channel in list(self._subscribers):
            try:
                channel.send_nowait(event)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self._subscribers.remove(channel)

    # --- the loop ---------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Handle received notes and deadlines, forever (while the client is online)."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            try:
                while True:
                    self._wake = trio.Event()
                    await self._step(self.registry.tick)
                    while self._notes:
                        sender, signal = self._notes.popleft()
                        await self._step(functools.partial(self._receive, sender, signal))
                    await self._sleep()
            finally:
                self._nursery = None

    def _receive(self, sender: str, signal: CallSignal, now: int) -> list[Event]:
        accepted = not self._identity_changed(sender)
        return self.registry.receive(sender, signal, now, identity_accepted=accepted)

    async def _sleep(self) -> None:
        deadline = self.registry.next_deadline()
        delay = math.inf if deadline is None else max(0, deadline - now_ms(self._clock)) / 1000
        with trio.move_on_after(delay):
            await self._wake.wait()

    # --- commands (the user's and the media side's) -----------------------------------

    async def dial(self, peer: str, video: bool) -> Call:
        """Call ``peer``; the offer is composed before this returns."""
        async with self._lock:
            now = now_ms(self._clock)
            accepted = not self._identity_changed(peer)
            call, events = self.registry.dial(peer, video, now, identity_accepted=accepted)
            await self._perform(events)
        self._wake.set()  # a new deadline
        return call

    async def act(self, call_id: bytes, action: Action) -> None:
        """Apply ``action`` (a :class:`Call` method taking ``now_ms``) to call ``call_id``
        and perform its events; nothing for a call this device does not know."""

        def apply(now: int) -> list[Event]:
            call = self.registry.get(call_id)
            return [] if call is None else action(call, now)

        await self._step(apply)
        self._wake.set()

    async def flush(self) -> dict[bytes, Refused]:
        """Wait until the node settled every signal composed so far; the refused ones."""
        return await self._sender.wait(set(self._pending))

    # --- performing events ------------------------------------------------------------

    async def _step(self, make: Callable[[int], list[Event]]) -> None:
        async with self._lock:
            await self._perform(make(now_ms(self._clock)))

    async def _perform(self, events: list[Event]) -> None:
        queue = deque(events)
        while queue:
            event = queue.popleft()
            if isinstance(event, SendSignal):
                queue.extend(await self._send(event))
            else:
                self._publish(event)

    async def _send(self, event: SendSignal) -> list[Event]:
        """Compose ``event``'s signal; the events of a refusal."""
        call_id = event.signal.call_id
        token, mailbox = self._reply()
        plaintext = pack_call(CallNote(event.signal, token, mailbox))
        try:
            eids = await self._sender.compose(event.to, plaintext, self.signal_ttl)
        except UntrustedIdentity:
            return self._send_failed(call_id, untrusted=True)
        except ClientError as exc:
            log.info("call %s: a signal was not sent (%s)", call_id.hex(), exc.code)
            return self._send_failed(call_id, untrusted=False)
        self._sender.wake()
        self._pending.update(eids)
        if self._nursery is not None:
            self._nursery.start_soon(self._watch, call_id, eids)
        return []

    def _send_failed(self, call_id: bytes, *, untrusted: bool) -> list[Event]:
        call = self.registry.get(call_id)
        if call is None:
            return []
        return call.send_failed(now_ms(self._clock), untrusted=untrusted)

    async def _watch(self, call_id: bytes, eids: list[bytes]) -> None:
        """Report a signal the node refused for good to its call."""
        refused = await self._sender.wait(eids)
        self._pending.difference_update(eids)
        for failure in refused.values():
            log.info("call %s: a signal was refused (%s)", call_id.hex(), failure.node_code)
        if refused:
            await self.act(call_id, lambda call, now: call.send_failed(now, untrusted=False))
