"""A trio shell around qh3's sans-I/O QUIC connection: one connection as a MediaTransport.

QUIC (RFC 9000) with DATAGRAM frames (RFC 9221) for media and the client-initiated
bidirectional stream 0 for control. qh3 (an aioquic fork with a Rust packet core) does all
of QUIC and TLS 1.3; its key exchange offers X25519MLKEM768 first, so the hop is hybrid
post-quantum. This module only moves bytes between qh3, a UDP socket and trio channels:

    QuicChannel           one connection; the MediaTransport the application holds
    transport.loop        the one task per UDP socket that feeds and flushes channels
    transport.quic_client connect_quic: dial, check the pin, return a QuicChannel
    transport.quic_server QuicServer: one socket, connections by connection id

Timers: see ``transport.clock`` for why a qh3 deadline is converted, never reused, on trio.
When an application task sends, qh3's next deadline can move earlier than the one the
socket task sleeps until; the channel then tightens the socket task's cancel-scope deadline
(``transport.loop.Wakeup``), which is cheaper than waking it through a channel. Until a
connection is established its deadline is also bounded by ``QuicSettings.handshake_timeout``,
so a half-open handshake holds server state for seconds, not for the idle timeout.

Control stream framing: once the server key matched its pin, the client writes
``CONTROL_PREFACE`` (this opens the stream, so the server may write on it), then each
message as a 4-byte big-endian length and the bytes. A length over ``MAX_CONTROL_MESSAGE``
or a wrong preface closes the connection with ``APP_CONTROL_VIOLATION``.

Both ends authenticated (node-to-node): qh3 2.1.0 never sends a TLS CertificateRequest as a
server, so a client certificate cannot be requested or verified. Proposed instead: after
the handshake the accepting node writes a 32-byte random challenge on the control stream;
the connecting node answers with its domain and a signature, by its server signing key (the
one its signed server key document lists), over a labelled tuple (challenge, SHA-256 of the
accepting node's QUIC certificate key, both domains; the label a named constant in
``suites.labels``). The certificate-key hash binds the answer to this TLS peer: a relay
that pins its own key cannot forward it. qh3 offers no TLS exporter (RFC 8446 section
7.5), which would otherwise be the binding of choice.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from typing import Final, Protocol

import trio
from qh3 import QuicConnection, QuicConnectionError
from qh3.quic import events
from qh3.quic.packet import QuicErrorCode

from transport.base import (
    MAX_CONTROL_MESSAGE,
    MAX_DATAGRAM_PAYLOAD,
    MediaTransport,
    TransportKind,
    TransportStats,
)
from transport.clock import QuicClock
from transport.errors import (
    HANDSHAKE_TIMEOUT,
    HandshakeFailed,
    MessageTooLarge,
    PeerKeyMismatch,
    TransportClosed,
    TransportError,
)
from transport.identity import PinnedKey
from transport.inbox import Inbox
from transport.quic_config import EndpointCounters, QuicSettings
from transport.udp import Address, UdpSocket

CONTROL_STREAM_ID: Final = 0
CONTROL_PREFACE: Final = b"\x01"
"""First byte on the control stream: control framing version 1."""

APP_NO_ERROR: Final = 0x0
APP_CONTROL_VIOLATION: Final = 0x101
"""Application close codes (RFC 9000 section 20.2): the control stream broke its framing."""
APP_CONTROL_BACKLOG: Final = 0x102
"""Application close code: the application did not read control messages in time."""
PIN_MISMATCH_CLOSE: Final = QuicErrorCode.CRYPTO_ERROR + 42
"""CRYPTO_ERROR carrying TLS ``bad_certificate`` (RFC 9001 section 4.8): key not pinned."""

_LENGTH: Final = struct.Struct("!I")


class Owner(Protocol):
    """What a channel tells the endpoint that drives it (socket loop and router)."""

    counters: EndpointCounters

    def tighten(self, trio_deadline: float) -> None: ...
    def cid_issued(self, channel: QuicChannel, cid: bytes) -> None: ...
    def cid_retired(self, cid: bytes) -> None: ...
    def established(self, channel: QuicChannel) -> None: ...


class QuicChannel(Inbox):
    """One QUIC connection as a ``MediaTransport`` (its receive methods are the
    :class:`~transport.inbox.Inbox`'s). Built by ``connect_quic`` or the server."""

    def __init__(
        self,
        connection: QuicConnection,
        sock: UdpSocket,
        owner: Owner,
        *,
        settings: QuicSettings,
        clock: QuicClock,
        pin: PinnedKey | None,
    ) -> None:
        self._conn, self._sock, self._owner, self._clock = connection, sock, owner, clock
        self._pin = pin
        self._is_client = connection.configuration.is_client
        super().__init__(settings.datagram_queue, settings.control_queue)
        self._control_buffer = bytearray()
        self._preface_seen = self._is_client
        self._handshake_done = False
        self._closed_locally = False
        self._handshake_deadline = clock.now() + settings.handshake_timeout
        self._qh3_timer: float | None = None
        self._timer_known = False
        """Whether ``_qh3_timer`` is qh3's timer as of the last call into the connection:
        every call that can move it is followed by :meth:`flush`, which reads it once, so
        the socket task's scans (:meth:`timer`, each wake-up) need not ask qh3 again."""
        self._stats: dict[str, int] = dict.fromkeys(vars(TransportStats()), 0)
        self.settled = trio.Event()
        """Set once established or terminated, whichever comes first."""
        self.terminated = trio.Event()
        self.is_established = False
        self.failure: TransportError | None = None
        self.datagram_limit = MAX_DATAGRAM_PAYLOAD
        """Largest datagram :meth:`send_datagrams` takes: a media datagram's bound, which a
        replica link raises to carry relayed ones in their envelope (``node.calls.relayed``)."""
        self.on_close: Callable[[], object] = _nothing
        """Called once the connection is closed or terminated (a client ends its socket task)."""

    # --- MediaTransport -----------------------------------------------------------------

    @property
    def kind(self) -> TransportKind:
        return "quic"

    async def send_datagram(self, payload: bytes) -> None:
        self._queue_datagram(payload)
        self.flush()
        await trio.lowlevel.checkpoint()

    async def send_datagrams(self, payloads: Iterable[bytes]) -> None:
        batch = list(payloads)
        for payload in batch:  # all or nothing: check every size before queueing any
            self._check_sendable(len(payload), self.datagram_limit)
        for payload in batch:
            self._queue_datagram(payload)
        self.flush()
        await trio.lowlevel.checkpoint()

    async def send_control(self, message: bytes) -> None:
        self._check_sendable(len(message), MAX_CONTROL_MESSAGE)
        frame = _LENGTH.pack(len(message)) + message
        self._call(self._conn.send_stream_data, CONTROL_STREAM_ID, frame)
        self._count("control_sent", "bytes_sent", len(message))
        self.flush()
        await trio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        self.close(APP_NO_ERROR, "closed")
        await trio.lowlevel.checkpoint()

    def stats(self) -> TransportStats:
        return TransportStats(**self._stats)

    # --- driven by the endpoint (all synchronous: no await between qh3 calls) -----------

    def close(self, error_code: int, reason: str) -> None:
        """Send CONNECTION_CLOSE (once); local receivers end now, the endpoint reaps later."""
        if not self._closed_locally:
            self._closed_locally = True
            self._conn.close(error_code=error_code, reason_phrase=reason)
            self.flush()
        self._end_receivers()
        self.on_close()

    def start_client(self, address: Address) -> None:
        """Client: begin the handshake (the control preface follows the pin check)."""
        self._conn.connect(address, now=self._clock.now())
        self.flush()

    def feed(self, datagrams: list[bytes], address: Address, now: float) -> None:
        """UDP datagrams for this connection from one address, in arrival order, in one
        qh3 call (its native batch path once the handshake is done). Library errors are
        counted, not raised: hostile input must not end the socket task."""
        try:
            self._timer_known = False  # the socket task calls service() (a flush) next
            self._conn.receive_many_datagrams(datagrams, address, now)
        except Exception:
            self._owner.counters.library_errors += 1

    def timer(self) -> float | None:
        """The next deadline on this channel's ``QuicClock``: qh3's, or until established,
        the handshake deadline (a half-open handshake must not hold state for the whole
        idle timeout)."""
        deadline = self._qh3_timer if self._timer_known else self._conn.get_timer()
        if self.is_established or self._closed_locally:
            return deadline
        return (
            self._handshake_deadline
            if deadline is None
            else min(deadline, self._handshake_deadline)
        )

    def handle_timer(self, now: float) -> None:
        if not (self.is_established or self._closed_locally) and now >= self._handshake_deadline:
            self._fail(QuicErrorCode.CONNECTION_REFUSED, "handshake timeout", _handshake_timeout())
            return
        self._timer_known = False  # the socket task calls service() (a flush) next
        try:
            self._conn.handle_timer(now)
        except Exception:  # see ``_abort``
            self._abort()

    def service(self) -> None:
        """Handle every pending qh3 event, then send what qh3 has queued."""
        while (event := self._conn.next_event()) is not None:
            self._handle(event)
        self.flush()

    def flush(self) -> None:
        try:
            outgoing = self._conn.datagrams_to_send(self._clock.now())
            deadline = self._conn.get_timer()
        except Exception:  # see ``_abort``
            self._abort()
            return
        self._qh3_timer, self._timer_known = deadline, True
        for data, address in outgoing:
            self._sock.send(data, address)
        if deadline is not None:
            self._owner.tighten(self._clock.to_trio(deadline))

    def _abort(self) -> None:
        """qh3 raised where it should not: count it and drop this connection silently (its
        state is unknown), so that one broken connection never ends the socket task."""
        self._owner.counters.library_errors += 1
        self._closed_locally = True
        self._timer_known = False
        if self.failure is None:
            self.failure = TransportClosed("transport library error")
        if not self.terminated.is_set():
            self._on_terminated(events.ConnectionTerminated(QuicErrorCode.INTERNAL_ERROR, None, ""))

    # --- events ---------------------------------------------------------------------------

    def _handle(self, event: events.QuicEvent) -> None:
        if isinstance(event, events.DatagramFrameReceived):
            self._on_datagram(event.data)
        elif isinstance(event, events.StreamDataReceived):
            self._on_stream_data(event)
        elif isinstance(event, events.HandshakeCompleted):
            self._on_handshake()
        elif isinstance(event, events.ConnectionIdIssued):
            self._owner.cid_issued(self, event.connection_id)
        elif isinstance(event, events.ConnectionIdRetired):
            self._owner.cid_retired(event.connection_id)
        elif isinstance(event, events.ConnectionTerminated):
            self._on_terminated(event)

    def _on_datagram(self, data: bytes) -> None:
        try:
            self._datagram_in.send_nowait(data)
        except (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
            self._stats["datagrams_dropped"] += 1
            return
        self._count("datagrams_received", "bytes_received", len(data))

    def _on_handshake(self) -> None:
        self._handshake_done = True
        if self._pin is not None:
            peer = self._conn.get_peercert()
            try:
                self._pin.check(None if peer is None else peer.public_bytes())
            except PeerKeyMismatch as exc:
                self.flush()  # our Finished first: a server that never gets it cannot close
                self._fail(PIN_MISMATCH_CLOSE, "peer key not pinned", exc)
                return
        if self._is_client:  # opens stream 0; a refused server never sees it established
            self._conn.send_stream_data(CONTROL_STREAM_ID, CONTROL_PREFACE)
        self._maybe_established()

    def _on_stream_data(self, event: events.StreamDataReceived) -> None:
        if event.stream_id != CONTROL_STREAM_ID:
            return  # no other stream carries anything; qh3 bounds how many a peer opens
        self._control_buffer += event.data
        if not self._preface_seen:
            if len(self._control_buffer) < len(CONTROL_PREFACE):
                return
            if not self._control_buffer.startswith(CONTROL_PREFACE):
                self._violation("bad control preface")
                return
            del self._control_buffer[: len(CONTROL_PREFACE)]
            self._preface_seen = True
            self._maybe_established()
        self._take_control_messages()
        if event.end_stream:
            self._violation("control stream ended")

    def _take_control_messages(self) -> None:
        buffer = self._control_buffer
        while len(buffer) >= _LENGTH.size:
            (size,) = _LENGTH.unpack_from(buffer)
            if size > MAX_CONTROL_MESSAGE:
                self._violation("control message too large")
                return
            if len(buffer) < _LENGTH.size + size:
                return
            message = bytes(buffer[_LENGTH.size : _LENGTH.size + size])
            del buffer[: _LENGTH.size + size]
            try:
                self._control_in.send_nowait(message)
            except trio.WouldBlock:
                self.close(APP_CONTROL_BACKLOG, "control backlog")
                return
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return
            self._count("control_received", "bytes_received", size)

    def _maybe_established(self) -> None:
        if self._handshake_done and self._preface_seen and not self.is_established:
            self.is_established = True
            self._owner.counters.handshakes_completed += 1
            self.settled.set()
            self._owner.established(self)

    def _on_terminated(self, event: events.ConnectionTerminated) -> None:
        if not self.is_established:
            self._owner.counters.handshakes_failed += 1
            if self.failure is None:
                self.failure = HandshakeFailed(event.reason_phrase or "closed by the peer")
        self._end_receivers()
        self.settled.set()
        self.terminated.set()
        self.on_close()

    def _violation(self, reason: str) -> None:
        self._fail(APP_CONTROL_VIOLATION, reason, TransportClosed(reason))

    def _fail(self, code: int, reason: str, failure: TransportError) -> None:
        if self.failure is None:
            self.failure = failure
        self.close(code, reason)
        self.settled.set()

    # --- helpers --------------------------------------------------------------------------

    def _end_receivers(self) -> None:
        self._datagram_in.close()
        self._control_in.close()

    def _queue_datagram(self, payload: bytes) -> None:
        self._check_sendable(len(payload), self.datagram_limit)
        self._call(self._conn.send_datagram_frame, payload)
        self._count("datagrams_sent", "bytes_sent", len(payload))

    def _check_sendable(self, size: int, bound: int) -> None:
        if self._closed_locally or self.terminated.is_set():
            raise TransportClosed("the connection has closed")
        if size > bound:
            raise MessageTooLarge(f"{size} bytes, at most {bound}")

    def _call(self, operation: Callable[..., object], *args: object) -> None:
        """Run a qh3 send operation, translating its errors once, here."""
        try:
            operation(*args)
        except (QuicConnectionError, AssertionError) as exc:
            raise TransportClosed(f"qh3 refused: {exc}") from exc

    def _count(self, messages: str, octets: str, size: int) -> None:
        self._stats[messages] += 1
        self._stats[octets] += size


def _handshake_timeout() -> HandshakeFailed:
    return HandshakeFailed("no handshake in time", code=HANDSHAKE_TIMEOUT)


def _nothing() -> None:
    """The default ``on_close``."""


def as_media_transport(channel: QuicChannel) -> MediaTransport:
    """A ``QuicChannel`` typed as the interface media code uses (mypy checks the match)."""
    return channel
