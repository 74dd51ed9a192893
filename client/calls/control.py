"""One call from dial (or ring) to summary: the media side of the signalling events (issue
17, DESIGN section 9). What ``sealrelay client call`` and ``answer`` run.

It follows one call's events from :class:`~client.calls.callnet.CallNet` and does what they
ask with the legs of this device's own node (:class:`Legs`, the client's leg requests)::

    caller  dial -> (Ringing) -> StartMedia: bridge to the callee's leg, bind media,
            connected (Answered) -> media for ``seconds`` -> hang up
    callee  Ringing -> accept -> AllocateLeg: allocate a leg, bind media to it -> leg ready
            (the CallAnswer carries LegRef{own domain, leg id}) -> StartMedia -> media
            -> hang up

The callee binds its leg before it answers, so the caller's first datagrams find it bound,
and sends only once the caller's first datagram came (``client.calls.primed``), so none of
its media is lost before the caller's side is up: no frame is lost to the set-up.

Binding: QUIC to the node's media port by default; when QUIC cannot connect within
:data:`QUIC_FALLBACK_AFTER` seconds (UDP blocked, no endpoint listed, a handshake that
fails), the same datagrams over the client WebSocket. ``transport="websocket"`` skips QUIC.

End: after ``seconds`` of media this side hangs up (``CallHangup`` to the peer, the leg
released); a peer's hang-up (``StopMedia``), the node's ``LegEnded`` push for the leg, or a
media connection the node closed ends the media early. Either way the run's summary is
kept (:attr:`CallOutcome.summary`). Each step's JSON line goes to ``emit``: ``ringing``,
``answered``, ``ended``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, Protocol

import trio

from client.calls.callnet import CallNet
from client.calls.primed import after_first_datagram
from client.calls.runner import MediaRun, run_media
from client.calls.signal import Call
from client.calls.signal_events import (
    AllocateLeg,
    Answered,
    Ended,
    EndReason,
    Event,
    Ringing,
    Role,
    StartMedia,
    StopMedia,
)
from client.errors import ClientError
from transport.base import MediaTransport, TransportKind
from transport.errors import TransportError
from trust.errors import DocumentRefused
from wire.calls import LegRef
from wire.relay_calls import LegGrant

QUIC_FALLBACK_AFTER: Final = 4.0
"""Seconds QUIC has to bind the media before the WebSocket carries it instead."""
BIND_ERRORS: Final = (ClientError, TransportError, DocumentRefused, OSError)
"""What binding a media connection may raise (translated by the client's shell or not)."""

Emit = Callable[[dict[str, Any]], None]

log = logging.getLogger(__name__)


class Legs(Protocol):
    """This device's leg requests to its own node (``client.app.Client``)."""

    @property
    def domain(self) -> str: ...

    async def leg_allocate(self) -> LegGrant: ...

    async def leg_bridge(self, ref: LegRef) -> LegGrant: ...

    async def leg_hang_up(self, leg_id: bytes) -> None: ...

    async def leg_ended(self, leg_id: bytes) -> object:
        """Return once the node pushed that leg ``leg_id`` ended."""

    async def media_quic(self, grant: LegGrant) -> tuple[MediaTransport, int]: ...

    async def media_websocket(self, grant: LegGrant) -> tuple[MediaTransport, int]: ...


@dataclass(frozen=True)
class MediaOptions:
    """How long media runs, and over what."""

    seconds: float
    transport: TransportKind = "quic"
    quic_timeout: float = QUIC_FALLBACK_AFTER


@dataclass(frozen=True)
class CallOutcome:
    """How a call ended; ``summary`` is the media run's (``None`` if no media ran)."""

    call_id: bytes
    peer: str
    reason: EndReason
    summary: dict[str, object] | None

    @property
    def ok(self) -> bool:
        """Whether the call was up and one side hung up."""
        return self.reason is EndReason.HANGUP


async def place_call(
    net: CallNet, legs: Legs, to: str, *, video: bool, options: MediaOptions, emit: Emit
) -> CallOutcome:
    """Call ``to`` and follow the call to its end."""
    events = net.subscribe()
    with events:
        call = await net.dial(to, video)
        return await CallSession(net, legs, call, options, emit).follow(events)


async def answer_call(
    net: CallNet, legs: Legs, *, wait: float, options: MediaOptions, emit: Emit
) -> CallOutcome | None:
    """Wait up to ``wait`` seconds for a call to ring, answer it and follow it to its end;
    ``None`` if none rang. An incoming call refused because its caller's identity change is
    not accepted ends this too (as ``call.untrusted_identity``)."""
    events = net.subscribe()
    with events:
        first: Ringing | Ended | None = None
        with trio.move_on_after(wait):
            first = await _incoming(events)
        if first is None:
            return None
        call = net.registry.get(first.call_id)
        if isinstance(first, Ended) or call is None:
            peer = call.peer if call is not None else ""
            emit(ended_line(first.call_id, peer, EndReason.UNTRUSTED_IDENTITY))
            return CallOutcome(first.call_id, peer, EndReason.UNTRUSTED_IDENTITY, None)
        session = CallSession(net, legs, call, options, emit)
        emit(_ringing_line(call))
        await net.act(call.call_id, Call.accept)
        return await session.follow(events)


async def _incoming(events: trio.MemoryReceiveChannel[Event]) -> Ringing | Ended:
    """The first call that rings here, or that was refused for an unaccepted identity."""
    async for event in events:
        if isinstance(event, Ringing) and event.role is Role.CALLEE:
            return event
        if isinstance(event, Ended) and event.reason is EndReason.UNTRUSTED_IDENTITY:
            return event
    raise trio.EndOfChannel


def _ringing_line(call: Call) -> dict[str, Any]:
    who = "to" if call.role is Role.CALLER else "from"
    return {"event": "ringing", "call": call.call_id.hex(), who: call.peer, "video": call.video}


def ended_line(call_id: bytes, peer: str, reason: str) -> dict[str, Any]:
    """The ``ended`` JSON line."""
    return {"event": "ended", "call": call_id.hex(), "peer": peer, "reason": reason}


Bound = tuple[MediaTransport, int]
"""A media connection bound to this side's leg, and the sender id the node bound."""


class CallSession:
    """One call followed from its events (see the module docstring)."""

    def __init__(
        self, net: CallNet, legs: Legs, call: Call, options: MediaOptions, emit: Emit
    ) -> None:
        self._net, self._legs, self._call = net, legs, call
        self._options, self._emit = options, emit
        self._grant: LegGrant | None = None
        self._bound: Bound | None = None
        self._stop = trio.Event()
        self._setups: list[trio.CancelScope] = []
        self._run: MediaRun | None = None
        self._released = False

    async def follow(self, events: trio.MemoryReceiveChannel[Event]) -> CallOutcome:
        """Act on this call's events until it ends and its media stopped. A call that gave
        way in a glare (the peer called us at the same time and its call won) is followed
        into the peer's call, which the registry accepted."""
        reason = EndReason.FAILED
        async with trio.open_nursery() as nursery:
            async for event in events:
                if getattr(event, "call_id", None) != self._call.call_id:
                    continue
                if isinstance(event, Ended) and self._follow_glare(event):
                    continue
                if isinstance(event, Ended):
                    reason = event.reason
                    self._stop_media()
                    self._emit(ended_line(event.call_id, self._call.peer, reason))
                    break
                self._handle(event, nursery)
        if self._bound is not None and self._run is None:  # bound, never played
            await self._bound[0].aclose()
        summary = None if self._run is None else self._run.summary()
        return CallOutcome(self._call.call_id, self._call.peer, reason, summary)

    def _follow_glare(self, ended: Ended) -> bool:
        """Move to the call that replaced this one in a glare, if any."""
        if ended.reason is not EndReason.GLARE or ended.replaced_by is None:
            return False
        replacement = self._net.registry.get(ended.replaced_by)
        if replacement is None or not replacement.live:
            return False
        self._call = replacement
        return True

    def _handle(self, event: Event, nursery: trio.Nursery) -> None:
        if isinstance(event, Ringing) and event.role is Role.CALLER:
            self._emit(_ringing_line(self._call))
        elif isinstance(event, Answered):
            self._emit({"event": "answered", "call": event.call_id.hex(), "peer": event.peer})
        elif isinstance(event, AllocateLeg):
            nursery.start_soon(self._allocate)
        elif isinstance(event, StartMedia):
            nursery.start_soon(self._media, event)
        elif isinstance(event, StopMedia):
            self._stop_media()

    async def _allocate(self) -> None:
        """(callee) A leg on this device's node, with media bound to it before the answer
        names it, so that the caller's first datagrams find it bound."""
        cid = self._call.call_id
        try:
            self._bound = await self._setting_up(self._allocate_and_bind())
        except BIND_ERRORS as exc:
            log.info("call %s: no leg or no media (%s)", cid.hex(), _code(exc))
            await self._net.act(cid, Call.leg_failed)
            await self._release()
            return
        if self._bound is None or self._grant is None:  # the call ended meanwhile
            await self._release()
            return
        leg = LegRef(self._legs.domain, self._grant.leg_id)
        await self._net.act(cid, lambda call, now: call.leg_ready(leg, now))

    async def _allocate_and_bind(self) -> Bound:
        self._grant = await self._legs.leg_allocate()
        return await self._bind(self._grant)

    async def _bridge_and_bind(self, leg: LegRef) -> Bound:
        self._grant = await self._legs.leg_bridge(leg)
        return await self._bind(self._grant)

    async def _setting_up(self, step: Awaitable[Bound]) -> Bound | None:
        """``step``'s result; ``None`` if the call stopped first (it is cancelled)."""
        with trio.CancelScope() as scope:
            self._setups.append(scope)
            if self._stop.is_set():
                scope.cancel()
            return await step
        return None

    async def _media(self, start: StartMedia) -> None:
        """Bridge (caller) and bind, play media until the end or a stop; then hang up."""
        cid = self._call.call_id
        bound = self._bound
        if bound is None:
            try:
                bound = self._bound = await self._setting_up(self._bridge_and_bind(start.leg))
            except BIND_ERRORS as exc:
                log.info("call %s: media not set up (%s)", cid.hex(), _code(exc))
                await self._net.act(cid, Call.media_failed)
                await self._release()
                return
        if bound is None or self._grant is None:
            await self._release()
            return
        transport, sender = bound
        try:
            if self._call.role is Role.CALLER:
                await self._net.act(cid, Call.connected)
            if not self._stop.is_set():
                self._run = await self._play(transport, start, sender, self._grant)
        finally:
            await transport.aclose()
            await self._release()
        await self._net.act(cid, Call.hangup)

    def _stop_media(self) -> None:
        """End the media: a setup under way, or the run (its transport is closed)."""
        self._stop.set()
        for scope in self._setups:
            scope.cancel()

    async def _bind(self, grant: LegGrant) -> Bound:
        """QUIC, falling back to the WebSocket (see the module docstring)."""
        if self._options.transport == "quic":
            with trio.move_on_after(self._options.quic_timeout):
                try:
                    return await self._legs.media_quic(grant)
                except BIND_ERRORS as exc:
                    log.info("QUIC media not bound (%s): the WebSocket carries it", _code(exc))
        return await self._legs.media_websocket(grant)

    async def _play(
        self, transport: MediaTransport, start: StartMedia, sender: int, grant: LegGrant
    ) -> MediaRun | None:
        """Run the media until its end, or until a stop (the peer's hang-up, the node's
        ``LegEnded``) closes ``transport``; ``None`` if it stopped before media began."""
        run = None
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._close_on_stop, transport)
            nursery.start_soon(self._stop_when_ended, grant)
            if self._call.role is Role.CALLEE:  # send once the caller's media comes
                transport = await after_first_datagram(transport)
            if not self._stop.is_set():
                run = await run_media(
                    transport,
                    start.secret,
                    start.direction,
                    video=start.video,
                    seconds=self._options.seconds,
                    sender=sender,
                )
            nursery.cancel_scope.cancel()
        return run

    async def _stop_when_ended(self, grant: LegGrant) -> None:
        with contextlib.suppress(ClientError):
            await self._legs.leg_ended(grant.leg_id)
            log.info("call %s: the node ended the leg", self._call.call_id.hex())
            self._stop_media()

    async def _close_on_stop(self, transport: MediaTransport) -> None:
        await self._stop.wait()
        await transport.aclose()

    async def _release(self) -> None:
        """Hang up this side's leg, once (it may already be gone with the peer's)."""
        if self._grant is None or self._released:
            return
        self._released = True
        with contextlib.suppress(ClientError), trio.move_on_after(QUIC_FALLBACK_AFTER):
            await self._legs.leg_hang_up(self._grant.leg_id)


def _code(exc: BaseException) -> str:
    return str(getattr(exc, "code", type(exc).__name__))
