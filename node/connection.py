"""The shell of one client WebSocket (``WS /v1/client``): reads frames, writes answers.

Each WebSocket runs one task reading frames and answering them through its
:class:`~node.session.Session` (which drives the pure core, ``node.conn``); pushes run in a
short-lived task (in the node's nursery) started only when there is something to push, so
an idle connection costs one task (an anonymous one two: the second sleeps until its idle
timeout, ``_IdleWatch``). Pushes wait while a login is being answered (so
Authenticated comes first), never behind other requests. Under ``node.gateway``, the
messages already read after the one received are answered together
(``Session.receive_many``) and answers and pushes of one turn leave in one write. A close
that becomes due while a turn is answered is sent by the reading task after that turn's
answers (a Sent for an envelope stored in the turn is never dropped), not by a push task.

Calls (``node.calls_requests``): once authenticated, binary messages that are media
datagrams (``wire.relay_calls.is_media_message``) bypass the frame core; each run of them
read together goes to the call relay at once (``Session.media``), between the answers to
the frames around it. The connection is the media connection of the legs it attached
(:meth:`send_binary` carries forwarded datagrams) and receives ``LegEnded`` and a meeting
leg's notices (:meth:`push`, in the order pushed: a pause and a resume of one layer must
not cross).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final

import trio

from node.gateway import READY_EXTENSION, SEND_MANY_EXTENSION
from node.session import Session
from wire import encode
from wire.relay import MEDIA_MESSAGE_BYTE, Deliver, deliver_parts, is_media_message
from wire.relay_calls import SIGNATURE_MESSAGE_BYTE

log = logging.getLogger("sealrelay.node.app")

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

GATHER_MAX: Final = 256
"""Most messages already read that an authenticated (or anonymous) connection answers
together."""
MEDIA_PREFIX: Final = bytes((MEDIA_MESSAGE_BYTE,))
"""A media datagram's first byte (``is_media_message``) as bytes: an authenticated
connection's turn compares each message's first byte with it (and with
:data:`SIGNATURE_PREFIX`), and looks for runs of media only when one matches."""
SIGNATURE_PREFIX: Final = bytes((SIGNATURE_MESSAGE_BYTE,))
"""A meeting's signature datagram's first byte: it travels as media does."""
CLOSE_INTERNAL: Final = 1011  # the node failed; the client reconnects
CLOSE_DRAIN_SECONDS: Final = 10.0
"""After the node closes a WebSocket, how long it keeps reading (and discarding) what the
client still sends, until the client's own close frame. hypercorn hands every message to
the application through a small queue; if nobody read it, frames arriving after our close
would fill it, the close handshake would never be seen, and the socket would sit in
CLOSE-WAIT until shutdown."""


class Connection:
    """The shell of one client WebSocket."""

    __slots__ = (
        "_pushes",
        "_pushing",
        "_send",
        "_send_many",
        "answering",
        "auth_deadline",
        "closed",
        "flushing",
        "held",
        "nursery",
        "ready",
        "session",
        "woken",
    )

    def __init__(
        self, session: Session, send: Send, nursery: trio.Nursery, extensions: Scope | None = None
    ) -> None:
        self.session = session
        # Offered by node.gateway: messages already read, and several sent in one write.
        self.ready: Callable[[], bytes | None] | None = (extensions or {}).get(READY_EXTENSION)
        self._send_many: Callable[[list[list[bytes]]], Awaitable[None]] | None = (
            extensions or {}
        ).get(SEND_MANY_EXTENSION)
        # (trio time) until which the client may stay unauthenticated
        self.auth_deadline = trio.current_time() + session.relay.config.auth_timeout
        self._send = send
        self.nursery = nursery  # shared by all connections: pushes run there
        self.closed = False
        self.flushing = False
        self.held = False
        self.answering = False
        self.woken = False
        self._pushes: deque[object] = deque()
        self._pushing = False
        session.wake = self.wake
        session.shell = self

    def wake(self) -> None:
        """Push soon: start the flusher unless it runs or a reply is being answered."""
        if self.held:
            self.woken = True
        elif not self.flushing and not self.closed:
            self.flushing = True
            self.nursery.start_soon(self._flush)

    async def send_frame(self, frame: object) -> None:
        if not self.closed:
            await self._send({"type": "websocket.send", "bytes": encode(frame)})

    async def send_frames(self, frames: list[object]) -> None:
        """``frames`` in order; in one write when the server offers it, with the bodies of
        Deliver frames written from their own buffers (``wire.relay.deliver_parts``)."""
        if self._send_many is not None:
            if not self.closed:
                await self._send_many([_pieces(frame) for frame in frames])
            return
        for frame in frames:
            await self.send_frame(frame)

    async def send_binary(self, messages: Sequence[bytes]) -> None:
        """Each of ``messages`` as a binary message (call media), in one write when the
        server offers it."""
        if self.closed:
            return
        if self._send_many is not None:
            await self._send_many([[message] for message in messages])
            return
        for message in messages:
            await self._send({"type": "websocket.send", "bytes": message})

    def push(self, frame: object) -> None:
        """Send ``frame`` soon (a ``LegEnded``, a meeting notice), after the frames pushed
        before it: one short task sends what is queued."""
        if self.closed:
            return
        self._pushes.append(frame)
        if not self._pushing:
            self._pushing = True
            self.nursery.start_soon(self._push_queued)

    async def _push_queued(self) -> None:
        try:
            while self._pushes and not self.closed:
                await self.send_frame(self._pushes.popleft())
        except Exception as exc:  # the socket went: the client learns it on reconnecting
            log.warning("push failed", extra={"error": type(exc).__name__})
            self._pushes.clear()
        finally:
            self._pushing = False

    async def close(self, code: int) -> None:
        if not self.closed:
            self.closed = True
            self.session.closed()
            await self._send({"type": "websocket.close", "code": code})

    async def serve(self, receive: Receive) -> None:
        """Read and answer frames until the client goes or the session asks to close."""
        await self.send_frame(self.session.hello())
        timeout = self.session.idle_timeout
        if timeout is None:
            while not self.closed:
                if not await self._next(receive) or not await self._after_turn():
                    return
            return
        async with trio.open_nursery() as nursery:
            await self._serve_watched(receive, _IdleWatch(timeout), nursery)
            nursery.cancel_scope.cancel()

    async def _after_turn(self) -> bool:
        """Send a close that became due, else start a push that waited for the turn;
        whether to read on."""
        due = self.session.close_due()
        if due is not None:
            await self.close(due.code)
        elif self.woken:
            self.woken = False
            self.wake()
        return not self.closed

    async def _next(self, receive: Receive) -> bool:
        """Answer the next message; False once the client is gone. (A function of its own
        so that no reference to the last message outlives it while the connection idles.)

        Until the session authenticates, waiting is bounded by ``auth_deadline``; only the
        wait is, never the answer (a Register in progress finishes its store write)."""
        session = self.session
        awaiting = session.caller is None and session.awaits_login  # (logged in: never)
        if awaiting:
            message = None
            with trio.move_on_at(self.auth_deadline):
                message = await receive()
            if message is None:
                if not self.closed:  # (a push task may have closed it meanwhile)
                    for frame in self.session.auth_timed_out():
                        await self.send_frame(frame)
                return True
        else:
            message = await receive()
        return await self._take(message, held=awaiting)

    async def _serve_watched(
        self, receive: Receive, watch: _IdleWatch, nursery: trio.Nursery
    ) -> None:
        """:meth:`serve` for an anonymous session, which never logs in: it waits at most
        ``sealed_idle_timeout`` for each message, then closes (1000). The wait is bounded
        by ``watch``, one sleeping task that cancels ``watch.scope`` only while the reader
        waits, rather than by a cancel scope per message (several microseconds each, on
        the path of every sealed envelope). A message that arrives just as the watch
        fires is answered outside the cancelled scope, and the watch starts again."""
        now = trio.lowlevel.current_clock().current_time
        while not self.closed:
            message: Message | None = None
            with trio.CancelScope() as watch.scope:
                watch.fired = False
                nursery.start_soon(watch.run)
                while not self.closed:
                    watch.since = now()
                    watch.waiting = True
                    message = await receive()
                    watch.waiting = False
                    if watch.fired:
                        break  # (the watch fired as it came: answered below)
                    if not await self._take(message) or not await self._after_turn():
                        return
                    message = None
            if message is None:  # the wait was cancelled: idle
                if not self.closed:
                    self.session.idle()
            elif not await self._take(message):
                return
            if not await self._after_turn():
                return

    async def _take(self, message: Message, *, held: bool = False) -> bool:
        """Answer ``message`` (the turn's first); False once the client is gone. Pushes
        wait while a login is answered (``held``: Authenticated goes first); afterwards a
        request never holds them back (a Deliver must not wait for an Ack's commit)."""
        if message["type"] == "websocket.disconnect":
            return False
        if self.closed:  # (a push task closed it while we waited: nothing is answered)
            return True
        self.held = held
        self.answering = True
        try:
            await self._answer(message)
        finally:
            self.held = self.answering = False
        return True

    async def _answer(self, message: Message) -> None:
        data = message.get("bytes")
        if data is None:
            frames = self.session.refuse_text()
        elif self.session.anonymous:  # (it gathers, and has no media)
            if self.ready is not None:
                frames = await self.session.receive_many([data, *self._gather()])
            else:
                frames = await self.session.receive(data)
        elif self.session.caller is not None:
            messages = [data, *self._gather()]
            heads = [item[:1] for item in messages]
            if MEDIA_PREFIX in heads or SIGNATURE_PREFIX in heads:
                frames = await self._answer_runs(messages)
            elif self.ready is not None:  # (no media: the common case, one run of frames)
                frames = await self.session.receive_many(messages)
            else:
                frames = await self.session.receive(data)
        else:
            frames = await self.session.receive(data)
        await self.send_frames(frames)

    async def _answer_runs(self, messages: list[bytes]) -> list[object]:
        """An authenticated connection's messages read together: each run of media
        datagrams to the call relay, each run of frames answered together."""
        frames: list[object] = []
        for media, run in itertools.groupby(messages, is_media_message):
            if media:
                await self.session.media(list(run))
            elif self.ready is not None:
                frames += await self.session.receive_many(list(run))
            else:  # (hypercorn: one message at a time)
                frames += await self.session.receive(next(run))
        return frames

    def _gather(self) -> list[bytes]:
        """The binary messages already read after this one (answered together)."""
        more: list[bytes] = []
        while self.ready is not None and len(more) < GATHER_MAX:
            data = self.ready()
            if data is None:
                break
            more.append(data)
        return more

    async def _flush(self) -> None:
        try:
            while not self.closed:
                due = self.session.close_due()
                if due is not None:
                    if not self.answering:  # (else serve() closes after the turn's answers)
                        await self.close(due.code)
                    return
                frames = await self.session.next_push()
                if not frames:
                    return
                await self.send_frames(frames)
        except Exception as exc:  # the envelopes stay stored; the client reconnects
            log.warning("push failed", exc_info=True, extra={"error": type(exc).__name__})
            with contextlib.suppress(Exception):
                await self.close(CLOSE_INTERNAL)
        finally:
            self.flushing = False


def _pieces(frame: object) -> list[bytes]:
    """The encoding of ``frame`` as pieces: a Deliver's bodies apart, else one piece."""
    if type(frame) is Deliver:
        return deliver_parts(frame.envelopes)
    return [encode(frame)]


class _IdleWatch:
    """The idle timeout of an anonymous connection (``Connection._serve_watched``): the
    reader notes when each wait begins (``since``) and whether it is waiting; :meth:`run`
    sleeps until ``since + timeout`` and cancels ``scope`` if the reader is still waiting
    then (never while it answers), else sleeps on."""

    __slots__ = ("fired", "scope", "since", "timeout", "waiting")

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.since = trio.current_time()
        self.waiting = False
        self.scope = trio.CancelScope()
        self.fired = False
        """``scope`` was cancelled (a plain flag: ``CancelScope.cancel_called`` reads the
        clock each time)."""

    async def run(self) -> None:
        while True:
            # While the reader answers, its next wait begins later than now.
            start = self.since if self.waiting else trio.current_time()
            await trio.sleep_until(start + self.timeout)
            if self.waiting and trio.current_time() >= self.since + self.timeout:
                self.fire()
                return

    def fire(self) -> None:
        """Cancel the reader's wait."""
        self.fired = True
        self.scope.cancel()


async def drain(receive: Receive) -> None:
    """Discard messages until the client's close arrives (see ``CLOSE_DRAIN_SECONDS``)."""
    with trio.move_on_after(CLOSE_DRAIN_SECONDS):
        while (await receive())["type"] != "websocket.disconnect":
            pass


def peer_of(scope: Scope) -> str:
    """The client's IP address (the key of per-address limits)."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"
