"""One client connection's protocol core: frames in, frames out.

The session holds the connection's protocol state and answers its frames; it awaits the
store (through :class:`~node.relay.Relay`) and reads the injected clock, and does no other
I/O: the WebSocket itself belongs to the shell (``node.app``).

    hello()            the first frame (a fresh 32-byte challenge for this connection)
    receive(bytes)     one WebSocket message in -> the frames to send back (never raises)
    next_push()        the next server pushes (Deliver batches, then Drained), [] when idle
    offer(envelope)    the hub hands over a newly stored envelope for this mailbox
    close_code         set when the shell must close the WebSocket (flood, superseded)

States: *fresh* (Hello sent; Register, Auth and Ping allowed: a client may measure the
link before it spends its challenge, and a Pong tells nothing Hello did not), *spent* (the
challenge was used by a failed attempt: only Ping, and Register/Auth answer
``auth.replayed``), and *authenticated* (everything but Register/Auth, which answer
``auth.replayed``).

Pushes: on authentication the session attaches to the hub and *catches up*: it reads the
mailbox from the store in pages after ``floor`` (the highest seq read) until a short page,
then sends ``Drained``. Envelopes the hub hands over meanwhile wait in memory (kept in seq
order); afterwards they are pushed straight from memory, skipping any with
``seq <= floor`` (already read) —
the store shows seqs in commit order, so nothing above ``floor`` was missed. If the
in-memory buffer overflows (a slow reader), it is dropped and the session catches up from
the store again; that may push an envelope twice, which clients de-duplicate by ``eid``.
Only an ``Ack`` deletes; expired envelopes are never pushed.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Final

from node import errors
from node.batch import send_batch, store_sends
from node.errors import NodeError
from node.limits import retry_after_ms
from node.peerroots import read_statement
from node.relay import Caller, Relay
from node.store import StoredEnvelope, StoreError
from wire import WireError, decode
from wire.errors import TOO_LARGE, UNEXPECTED_TYPE
from wire.relay import (
    PROTOCOL_VERSION,
    REQUESTS,
    Ack,
    Acked,
    Auth,
    Authenticated,
    CertificateIssued,
    Deliver,
    Drained,
    Envelope,
    Error,
    FetchPrekeys,
    Forward,
    GetCertificate,
    GetPeerRoots,
    GetPrekeyStatus,
    GetServerKeys,
    Hello,
    Introduce,
    Ok,
    PeerRoots,
    Ping,
    Pong,
    PrekeyBundles,
    PrekeyStatus,
    PublishPrekeys,
    Register,
    Registered,
    RequestBlobUpload,
    Send,
    SendBatch,
    SendShared,
    ServerKeys,
    SetDeliveryToken,
    SetIntroductions,
)

log = logging.getLogger("sealrelay.node.session")

NONCE_LEN: Final = 32
PAGE: Final = 256
BATCH_ENVELOPES: Final = 256
BATCH_BYTES: Final = 512 * 1024
LIVE_MAX: Final = 1024
LIVE_MAX_BYTES: Final = 4 * 1024 * 1024
CLOSE_POLICY: Final = 1008
CLOSE_SUPERSEDED: Final = 4000
CLOSE_GOING_AWAY: Final = 1001
UNAUTHENTICATED: Final = (Register, Auth, Ping)
FLOOD_WINDOW_S: Final = 10.0
"""Refused frames count towards ``flood_close_after`` over this window: the count drains
by ``flood_close_after`` per window, so a connection that is refused faster than that is
closed however its refusals are interleaved with frames that pass."""
FLOOD_CODES: Final = frozenset({errors.LIMIT_RATE, errors.PROTO_MALFORMED, errors.PROTO_TOO_LARGE})

Frame = object


class Session:
    """The protocol state of one connection from ``peer`` (the client's IP address)."""

    __slots__ = (
        "_caller",
        "_catching_up",
        "_drained",
        "_floor",
        "_live",
        "_live_bytes",
        "_nonce",
        "_pushed",
        "_reread",
        "_strikes",
        "_struck_at",
        "close_code",
        "peer",
        "relay",
        "wake",
    )

    def __init__(self, relay: Relay, peer: str) -> None:
        self.relay = relay
        self.peer = peer
        self.wake: Callable[[], None] = _nothing
        self.close_code: int | None = None
        self._nonce: bytes | None = None
        self._caller: Caller | None = None
        self._strikes = 0.0
        self._struck_at = 0.0
        self._catching_up = False
        self._reread = False
        self._drained = False
        self._floor = 0
        self._pushed = 0
        self._live: deque[StoredEnvelope] | None = None  # made on the first hand-over
        self._live_bytes = 0

    @property
    def caller(self) -> Caller | None:
        return self._caller

    def hello(self) -> Hello:
        self._nonce = self.relay.random_bytes(NONCE_LEN)
        r = self.relay
        return Hello(PROTOCOL_VERSION, r.domain, r.suite.suite_id, self._nonce, r.now_ms())

    # --- requests -----------------------------------------------------------------------

    async def receive(self, data: bytes) -> list[Frame]:
        """Answer one binary WebSocket message; every failure becomes an Error frame."""
        started = time.perf_counter()
        frame, refused = self._read(data)
        out = await self._answer(frame, refused)
        self.relay.metrics.request_seconds.observe(time.perf_counter() - started)
        return out

    async def receive_many(self, messages: list[bytes]) -> list[Frame]:
        """Answer binary messages that were read together, in order, exactly as
        :meth:`receive` would one by one, except that a run of consecutive Sends is stored
        in one commit (``node.batch.store_sends``; each still answered by its own Sent), and
        so is a run of consecutive SendShared (``Relay.send_shared_many``)."""
        started = time.perf_counter()
        out: list[Frame] = []
        run: list[Send] | list[SendShared] = []
        for data in messages:
            frame, refused = self._read(data)
            if refused is None and self._caller is not None:
                kind = type(frame)
                if kind is Send or kind is SendShared:
                    if run and type(run[0]) is not kind:
                        out += await self._store_run(run)
                    run.append(frame)  # type: ignore[arg-type]  # (of the run's kind)
                    continue
            out += await self._store_run(run)
            out += await self._answer(frame, refused)
        out += await self._store_run(run)
        seconds = (time.perf_counter() - started) / max(1, len(messages))
        for _ in messages:
            self.relay.metrics.request_seconds.observe(seconds)
        return out

    def _read(self, data: bytes) -> tuple[Frame | None, NodeError | None]:
        """Decode one message and take its rate-limit token: the frame (None when it does
        not decode) and the error that refuses it, if any."""
        frame: Frame | None = None
        try:
            if len(data) > self.relay.config.max_frame_bytes:
                self._rate_limit()
                raise NodeError(errors.PROTO_TOO_LARGE, "frame too large")
            try:
                frame = _decode(data, self.relay.config.max_frame_bytes)
            finally:
                self._rate_limit()
        except NodeError as exc:
            if exc.code in FLOOD_CODES:
                self._strike()
            return frame, exc
        return frame, None

    async def _answer(self, frame: Frame | None, refused: NodeError | None) -> list[Frame]:
        try:
            if refused is not None:
                raise refused
            return await self.handle(frame)
        except NodeError as exc:
            return [self._error(_request_id(frame), exc)]
        except StoreError as exc:  # nothing was acknowledged: the client retries
            return [self._error(_request_id(frame), self.relay.store_faults.refusal(exc))]
        except Exception as exc:
            log.exception("request failed", extra={"error": type(exc).__name__})
            return [self._error(_request_id(frame), NodeError(errors.INTERNAL, "internal error"))]

    async def _store_run(self, run: list[Send] | list[SendShared]) -> list[Frame]:
        """Answer the Sends or SendShareds gathered by :meth:`receive_many` (and empty the
        list): one of them as on its own, several in one commit."""
        if len(run) <= 1:
            out = await self._answer(run[0], None) if run else []
        elif type(run[0]) is Send:
            out = list(await store_sends(self.relay, run))
        else:
            out = await self._send_shared_run(run)  # type: ignore[arg-type]
        run.clear()
        return out

    async def _send_shared_run(self, frames: list[SendShared]) -> list[Frame]:
        """Several SendShared in one commit, each answered as on its own, in order."""
        caller = self._caller
        assert caller is not None  # noqa: S101 (receive_many gathers only once logged in)
        out: list[Frame | None] = []
        admitted: list[SendShared] = []
        for frame in frames:
            try:
                _check_shared_introductions(self, caller, frame)
            except NodeError as exc:
                out.append(self._error(frame.id, exc))
                continue
            out.append(None)
            admitted.append(frame)
        try:
            answers = await self.relay.send_shared_many(admitted, caller.address)
        except StoreError as exc:  # nothing may be stored: each upload may be retried
            refusal = self.relay.store_faults.refusal(exc)
            answers = [refusal for _ in admitted]
        except Exception as exc:
            log.exception("storing uploads failed", extra={"error": type(exc).__name__})
            answers = [NodeError(errors.INTERNAL, "internal error") for _ in admitted]
        replies = iter(
            self._error(frame.id, answer) if isinstance(answer, NodeError) else answer
            for frame, answer in zip(admitted, answers, strict=True)
        )
        return [frame if frame is not None else next(replies) for frame in out]

    def refuse_text(self) -> list[Frame]:
        """A text WebSocket message: the protocol is binary only."""
        self._strike()
        try:
            self._rate_limit()
        except NodeError as exc:
            return [self._error(0, exc)]
        return [self._error(0, NodeError(errors.PROTO_MALFORMED, "text frames are not allowed"))]

    async def handle(self, frame: Frame) -> list[Frame]:
        """Answer one decoded request frame (raises NodeError)."""
        if isinstance(frame, Ping):
            return [_pong(self, frame)]
        if isinstance(frame, Register | Auth):
            return await self._login(frame)
        caller = self._caller
        if caller is None:
            raise NodeError(errors.AUTH_REQUIRED, "authenticate first")
        handler = _HANDLERS.get(type(frame))
        if handler is None:
            raise NodeError(errors.PROTO_UNEXPECTED, "not a request")
        reply = await handler(self, caller, frame)
        return [] if reply is None else [reply]

    async def _login(self, frame: Register | Auth) -> list[Frame]:
        nonce, self._nonce = self._nonce, None
        if nonce is None:
            raise NodeError(errors.AUTH_REPLAYED, "this connection's challenge is spent")
        if isinstance(frame, Register):
            caller = await self.relay.register(frame, nonce)
            log.info("registered", extra={"address": caller.address})
            reply: Frame = Registered(frame.id, caller.address, caller.device, caller.mailbox)
        else:
            caller = await self.relay.authenticate(frame, nonce)
            pending = await self.relay.store.count_pending(caller.mailbox, self.relay.now_ms())
            reply = Authenticated(frame.id, caller.mailbox, pending)
        self._caller = caller
        self._catching_up = True
        self.relay.hub.attach(caller.mailbox, self)
        self.wake()
        return [reply]

    def auth_timed_out(self) -> list[Frame]:
        """The connection did not authenticate in time: ``auth.timeout``, then close."""
        self.close_code = CLOSE_POLICY
        return [self._error(0, NodeError(errors.AUTH_TIMEOUT, "authenticate sooner"))]

    def _rate_limit(self) -> None:
        r = self.relay
        now = r.clock()
        wait = r.ip_limit.take(self.peer, now)
        if not wait and self._caller is not None:
            wait = r.account_limit.take(self._caller.address, now)
        if wait:
            raise NodeError(errors.LIMIT_RATE, "too many requests", retry_after_ms(wait))

    def _strike(self) -> None:
        """Count one refused frame (rate-limited or unreadable); past ``flood_close_after``
        within :data:`FLOOD_WINDOW_S`, the shell closes the connection (1008)."""
        r = self.relay
        now = r.clock()
        limit = r.config.flood_close_after
        drained = (now - self._struck_at) * limit / FLOOD_WINDOW_S
        self._strikes = max(0.0, self._strikes - drained) + 1.0
        self._struck_at = now
        if self._strikes >= limit:
            self.close_code = CLOSE_POLICY

    def _error(self, request_id: int, exc: NodeError) -> Error:
        self.relay.metrics.reject(exc.code)
        return Error(request_id, exc.code, exc.message, exc.retry_after)

    # --- pushes -------------------------------------------------------------------------

    def offer(self, envelope: StoredEnvelope) -> None:
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
        self.wake()

    def supersede(self) -> None:
        self.close_code = CLOSE_SUPERSEDED
        self.wake()

    def detach(self) -> None:
        """The connection is gone: stop receiving from the hub."""
        if self._caller is not None:
            self.relay.hub.detach(self._caller.mailbox, self)

    async def next_push(self) -> list[Frame]:
        """The next frames to push; [] when there is nothing (the shell then idles)."""
        if self._caller is None or self.close_code is not None:
            return []
        if self._catching_up:
            return await self._catch_up(self._caller.mailbox)
        return self._from_memory()

    async def _catch_up(self, mailbox: bytes) -> list[Frame]:
        self._reread = False
        page = await self.relay.store.pending(mailbox, self._floor, PAGE, self.relay.now_ms())
        if page:
            self._floor = max(self._floor, page[-1].seq)
        frames: list[Frame] = self._batches(page)
        if len(page) < PAGE and not self._reread:
            self._catching_up = False
            if not self._drained:
                self._drained = True
                frames.append(Drained(self._pushed))
        return frames

    def _from_memory(self) -> list[Frame]:
        live = self._live
        now = self.relay.now_ms()
        batch: list[StoredEnvelope] = []
        size = 0
        while live and len(batch) < BATCH_ENVELOPES and size < BATCH_BYTES:
            env = live.popleft()
            self._live_bytes -= len(env.body)
            if env.seq > self._floor and env.expires > now:
                batch.append(env)
                size += len(env.body)
        if not live:
            self._live = None  # an idle connection keeps no buffer
        return self._batches(batch)

    def _batches(self, envelopes: list[StoredEnvelope]) -> list[Frame]:
        frames: list[Frame] = []
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
        self._count_pushed(envelopes)
        return frames

    def _count_pushed(self, envelopes: list[StoredEnvelope]) -> None:
        metrics = self.relay.metrics
        now = self.relay.now_ms()
        metrics.delivered += len(envelopes)
        self._pushed += len(envelopes)
        for env in envelopes:
            metrics.send_to_deliver.observe(max(0, now - env.ts) / 1000)


# --- request handlers (authenticated) ----------------------------------------------------


async def _publish(s: Session, caller: Caller, frame: PublishPrekeys) -> Frame:
    await s.relay.publish_prekeys(caller, frame)
    return await _status(s, caller, GetPrekeyStatus(frame.id))


async def _status(s: Session, caller: Caller, frame: GetPrekeyStatus) -> Frame:
    one_time, kem = await s.relay.store.prekey_counts(caller.address, caller.device)
    return PrekeyStatus(frame.id, one_time, kem)


async def _set_token(s: Session, caller: Caller, frame: SetDeliveryToken) -> Frame:
    await s.relay.set_token(caller, frame.verifier)
    return Ok(frame.id)


async def _set_introductions(s: Session, caller: Caller, frame: SetIntroductions) -> Frame:
    await s.relay.set_introductions(caller, frame.accept)
    return Ok(frame.id)


async def _fetch(s: Session, caller: Caller, frame: FetchPrekeys) -> Frame:
    domain = frame.address.rpartition("@")[2].lower()
    if domain == s.relay.domain.lower():
        return PrekeyBundles(frame.id, await s.relay.fetch_prekeys(frame))
    federation = s.relay.require_federation()
    return PrekeyBundles(frame.id, await federation.remote_prekeys(frame.address, domain))


async def _send_shared(s: Session, caller: Caller, frame: SendShared) -> Frame:
    _check_shared_introductions(s, caller, frame)
    return await s.relay.send_shared(frame, caller.address)


def _check_shared_introductions(s: Session, caller: Caller, frame: SendShared) -> None:
    """An upload naming a recipient without a token is an introduction: one of the
    caller's introductions (``limit.rate`` when none is left)."""
    if any(r.token is None for r in frame.recipients):
        wait = s.relay.intro_limit.take(caller.address, s.relay.clock())
        if wait:
            raise NodeError(errors.LIMIT_RATE, "too many introductions", retry_after_ms(wait))


async def _forward(s: Session, caller: Caller, frame: Forward) -> Frame:
    return await s.relay.require_federation().forward(frame)


async def _server_keys(s: Session, caller: Caller, frame: GetServerKeys) -> Frame:
    domain = frame.domain.lower()
    federation = s.relay.require_federation()
    return ServerKeys(frame.id, domain, await federation.server_keys(domain))


async def _peer_roots(s: Session, caller: Caller, frame: GetPeerRoots) -> Frame:
    return PeerRoots(frame.id, await read_statement(s.relay.config.data_dir))


async def _certificate(s: Session, caller: Caller, frame: GetCertificate) -> Frame:
    r = s.relay
    identity = await r.identity_of(caller)
    lifetime = r.config.certificate_lifetime
    cert = r.keys.issue_certificate(caller.address, caller.device, identity, r.now_ms(), lifetime)
    return CertificateIssued(frame.id, cert)


async def _send(s: Session, caller: Caller, frame: Send) -> Frame:
    return await s.relay.send(frame, None)


async def _send_batch(s: Session, caller: Caller, frame: SendBatch) -> Frame:
    return await send_batch(s.relay, caller, s.peer, frame)


async def _introduce(s: Session, caller: Caller, frame: Introduce) -> Frame:
    wait = s.relay.intro_limit.take(caller.address, s.relay.clock())
    if wait:
        raise NodeError(errors.LIMIT_RATE, "too many introductions", retry_after_ms(wait))
    return await s.relay.send(frame, caller.address)


async def _ack(s: Session, caller: Caller, frame: Ack) -> Frame | None:
    """Delete the acknowledged envelopes; ``id`` 0 asks for no ``Acked`` (an ack is
    idempotent, and a lost one only means a redelivery the client drops by eid)."""
    deleted = await s.relay.store.ack(caller.mailbox, list(frame.eids))
    return None if frame.id == 0 else Acked(frame.id, deleted)


async def _blob(s: Session, caller: Caller, frame: RequestBlobUpload) -> Frame:
    return await s.relay.grant_blob(frame)


_HANDLERS: Final[dict[type, Callable[[Session, Caller, Any], Awaitable[Frame | None]]]] = {
    PublishPrekeys: _publish,
    GetPrekeyStatus: _status,
    SetDeliveryToken: _set_token,
    SetIntroductions: _set_introductions,
    FetchPrekeys: _fetch,
    GetCertificate: _certificate,
    Send: _send,
    SendBatch: _send_batch,
    Introduce: _introduce,
    SendShared: _send_shared,
    Forward: _forward,
    GetServerKeys: _server_keys,
    GetPeerRoots: _peer_roots,
    Ack: _ack,
    RequestBlobUpload: _blob,
}


def _pong(s: Session, frame: Ping) -> Frame:
    return Pong(frame.id, s.relay.now_ms())


def _decode(data: bytes, max_size: int) -> Frame:
    try:
        return decode(data, REQUESTS, max_size=max_size)
    except WireError as exc:
        if exc.code == UNEXPECTED_TYPE:
            raise NodeError(errors.PROTO_UNEXPECTED, "not a request frame") from None
        if exc.code == TOO_LARGE:
            raise NodeError(errors.PROTO_TOO_LARGE, "frame or field too large") from None
        raise NodeError(errors.PROTO_MALFORMED, f"undecodable frame ({exc.code})") from None


def _request_id(frame: Frame | None) -> int:
    value = getattr(frame, "id", 0)
    return value if isinstance(value, int) else 0


def _nothing() -> None:
    return None
