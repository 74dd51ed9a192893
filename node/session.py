"""One client connection's trio shell around its core: the relay and store calls.

:class:`Session` drives a :class:`~node.conn.core.ConnCore` (the protocol state, pure)
and performs what it asks: requests answered through :class:`~node.relay.Relay`, logins,
mailbox pages read from the store. It reads the relay's clock and passes the time in. The
WebSocket itself belongs to ``node.connection``.

    hello()            the first frame (a fresh 32-byte challenge for this connection)
    receive(bytes)     one WebSocket message in -> the frames to send back (never raises)
    receive_many(...)  messages read together, runs of Send/SendShared in one commit
    next_push()        the next server pushes (Deliver batches, then Drained), [] when idle
    offer(envelope)    the hub hands over a newly stored envelope for this mailbox
    media(batch)       call media datagrams read on this WebSocket (``node.calls_requests``,
                       which also answers the call leg requests)
    close_code         set when the shell must close the WebSocket (flood, superseded)

An *anonymous* session (``/v1/sealed``, issue 20) never logs in and holds no account: its
sealed requests are answered by ``node.sealed``, under the anonymous limits.

The states and their transitions are in ``node.conn.state``; pushes (catch-up from the
store, then the in-memory fast path) in ``node.conn.push``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final

from node import errors, sealed
from node.batch import introduce_many, send_batch, store_sends
from node.calls.wsmedia import ClientShell
from node.calls_requests import CALL_HANDLERS, account_online, connection_gone, forward_media
from node.conn.core import (
    Close,
    ConnCore,
    Perform,
    Reply,
    StartLogin,
    decode_request,
    request_id,
)
from node.conn.push import LIVE_MAX, ReadMailbox, Stored
from node.conn.state import (
    ANSWERED_IN,
    AUTH_TIMEOUT_FROM,
    CLOSE_GOING_AWAY,
    CLOSE_POLICY,
    CLOSE_SUPERSEDED,
    GATHERED_IN,
    IDLE_FROM,
    ConnState,
    Link,
    Login,
)
from node.errors import NodeError
from node.limits import retry_after_ms
from node.peerroots import read_statement
from node.relay import Caller, Relay
from node.store import StoredEnvelope, StoreError
from wire.relay import (
    Ack,
    Acked,
    Authenticated,
    CertificateIssued,
    FetchPrekeys,
    Forward,
    GetCertificate,
    GetPeerRoots,
    GetPrekeyStatus,
    GetServerKeys,
    Hello,
    Introduce,
    IntroduceMany,
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
    SetGroupToken,
    SetIntroductions,
)

__all__ = [
    "CLOSE_GOING_AWAY",
    "CLOSE_POLICY",
    "CLOSE_SUPERSEDED",
    "LIVE_MAX",
    "Caller",
    "Session",
    "_decode",
    "_request_id",
]

log = logging.getLogger("sealrelay.node.session")

NONCE_LEN: Final = 32
_OPEN: Final = Link.OPEN

Frame = object
_decode = decode_request  # (the fuzz targets' names)
_request_id = request_id


class Session:
    """The shell of one connection from ``peer`` (the client's IP address)."""

    __slots__ = ("anonymous", "core", "peer", "relay", "shell", "wake")

    def __init__(self, relay: Relay, peer: str, *, anonymous: bool = False) -> None:
        self.relay = relay
        self.peer = peer
        self.anonymous = anonymous
        self.wake: Callable[[], None] = _nothing
        self.shell: ClientShell | None = None
        """The WebSocket's shell (``node.connection``): call media and pushes of call legs."""
        login = Login.ANONYMOUS if anonymous else Login.AWAIT_LOGIN
        self.core: ConnCore[Caller] = ConnCore(
            peer, sealed.policy(relay, anonymous), relay.metrics.reject, self._count_pushed, login
        )

    @property
    def caller(self) -> Caller | None:
        return self.core.caller

    @property
    def close_code(self) -> int | None:
        return self.core.close_code

    @property
    def state(self) -> ConnState:
        return self.core.state

    @property
    def gathers(self) -> bool:
        """Messages already read are answered together (logged in, or anonymous)."""
        return self.core.login_state in GATHERED_IN

    @property
    def awaits_login(self) -> bool:
        """The shell waits for a frame under the auth deadline."""
        return self.core.login_state in AUTH_TIMEOUT_FROM

    @property
    def idle_timeout(self) -> float | None:
        """Seconds the shell waits for a frame before :meth:`idle` (None: for ever)."""
        idles = self.core.login_state in IDLE_FROM
        return self.relay.config.sealed_idle_timeout if idles else None

    def idle(self) -> None:
        """Nothing was sent for :attr:`idle_timeout`: close (1000)."""
        self.core.idle()

    def hello(self) -> Hello:
        r = self.relay
        return self.core.hello(r.random_bytes(NONCE_LEN), r.domain, r.suite.suite_id, r.now_ms())

    # --- requests -----------------------------------------------------------------------

    async def receive(self, data: bytes) -> list[Frame]:
        """Answer one binary WebSocket message; every failure becomes an Error frame."""
        started = time.perf_counter()
        out = await self._perform(self.core.receive(data, self.relay.clock()))
        self.relay.metrics.request_seconds.observe(time.perf_counter() - started)
        return out

    async def receive_many(self, messages: list[bytes]) -> list[Frame]:
        """Answer binary messages that were read together, in order, exactly as
        :meth:`receive` would one by one, except that a run of consecutive Sends is stored
        in one commit (``node.batch.store_sends``; each still answered by its own Sent), and
        so is a run of consecutive SendShared (``Relay.send_shared_many``).

        The turn ends at the message that moves the link to ERROR (a flood): that one and
        those before it are answered (a run gathered before it is stored and answered
        first), the rest are dropped unread, and the shell sends the close after the
        answers (``node.conn.state.ANSWERED_IN``)."""
        started = time.perf_counter()
        out: list[Frame] = []
        run: list[Send] | list[SendShared] = []
        core, clock = self.core, self.relay.clock
        for data in messages:
            link = core.link_state
            if link is not _OPEN and link not in ANSWERED_IN:
                break  # ERROR: only the close; CLOSED meanwhile: no answer would be sent
            action = core.receive(data, clock())
            if type(action) is Perform:
                frame = action.frame
                kind = type(frame)
                if kind is Send or kind is SendShared:
                    if run and type(run[0]) is not kind:
                        out += await self._store_run(run)
                    run.append(frame)  # type: ignore[arg-type]  # (of the run's kind)
                    continue
            if run:
                out += await self._store_run(run)
            out += await self._perform(action)
        if run:
            out += await self._store_run(run)
        seconds = (time.perf_counter() - started) / max(1, len(messages))
        for _ in messages:
            self.relay.metrics.request_seconds.observe(seconds)
        return out

    async def _perform(self, action: Reply | Perform | StartLogin) -> list[Frame]:
        """Carry out what the core asked for one message: the frames to send back."""
        if isinstance(action, Reply):
            return list(action.frames)
        frame = action.frame
        try:
            if isinstance(action, StartLogin):
                return [await self._login(action)]
            if isinstance(frame, Ping):
                return [Pong(frame.id, self.relay.now_ms())]
            if self.anonymous:  # (the core performs only SEALED_REQUESTS here)
                return [await sealed.perform(self.relay, self.core.charge_run, frame)]
            caller = self.core.caller
            assert caller is not None  # noqa: S101 (the core performs requests once logged in)
            reply = await _HANDLERS[type(frame)](self, caller, frame)
            return [] if reply is None else [reply]
        except NodeError as exc:
            return [self.core.error(request_id(frame), exc)]
        except StoreError as exc:  # nothing was acknowledged: the client retries
            refusal = self.relay.store_faults.refusal(exc)
            return [self.core.error(request_id(frame), refusal)]
        except Exception as exc:
            log.exception("request failed", extra={"error": type(exc).__name__})
            internal = NodeError(errors.INTERNAL, "internal error")
            return [self.core.error(request_id(frame), internal)]

    async def _login(self, action: StartLogin) -> Frame:
        """Register or authenticate with the challenge, then attach to the hub."""
        frame, relay = action.frame, self.relay
        try:
            reply: Frame
            if isinstance(frame, Register):
                caller = await relay.register(frame, action.nonce)
                log.info("registered", extra={"address": caller.address})
                reply = Registered(frame.id, caller.address, caller.device, caller.mailbox)
            else:
                caller = await relay.authenticate(frame, action.nonce)
                pending = await relay.ports.mailboxes.count_pending(caller.mailbox, relay.now_ms())
                reply = Authenticated(frame.id, caller.mailbox, pending)
        except BaseException:
            self.core.login_refused()
            raise
        self.core.logged_in(caller)
        relay.hub.attach(caller.mailbox, self)
        account_online(self, caller)
        self.wake()
        return reply

    async def _store_run(self, run: list[Send] | list[SendShared]) -> list[Frame]:
        """Answer the Sends or SendShareds gathered by :meth:`receive_many` (and empty the
        list): one of them as on its own, several in one commit."""
        if len(run) <= 1:
            out = await self._perform(Perform(run[0])) if run else []
        elif type(run[0]) is Send and self.anonymous:
            out = list(await store_sends(self.relay, run, anonymous=True))
        elif type(run[0]) is Send:
            out = list(await store_sends(self.relay, run))
        else:
            out = await self._send_shared_run(run)  # type: ignore[arg-type]
        run.clear()
        return out

    async def _send_shared_run(self, frames: list[SendShared]) -> list[Frame]:
        """Several SendShared in one commit, each answered as on its own, in order (over
        an anonymous connection: without a sender, so without introductions)."""
        caller = self.core.caller
        out: list[Frame | None] = []
        admitted: list[SendShared] = []
        for frame in frames:
            try:
                if caller is not None:
                    check_shared_introductions(self, caller, frame)
            except NodeError as exc:
                out.append(self.core.error(frame.id, exc))
                continue
            out.append(None)
            admitted.append(frame)
        sender = None if caller is None else caller.address
        try:
            answers = await self.relay.send_shared_many(admitted, sender)
        except StoreError as exc:  # nothing may be stored: each upload may be retried
            refusal = self.relay.store_faults.refusal(exc)
            answers = [refusal for _ in admitted]
        except Exception as exc:
            log.exception("storing uploads failed", extra={"error": type(exc).__name__})
            answers = [NodeError(errors.INTERNAL, "internal error") for _ in admitted]
        replies = iter(
            self.core.error(frame.id, answer) if isinstance(answer, NodeError) else answer
            for frame, answer in zip(admitted, answers, strict=True)
        )
        return [frame if frame is not None else next(replies) for frame in out]

    async def media(self, batch: list[bytes]) -> None:
        """Media datagrams read together on this WebSocket (``node.calls_requests``)."""
        await forward_media(self, batch, open_=self.core.link_state is _OPEN)

    def refuse_text(self) -> list[Frame]:
        """A text WebSocket message: the protocol is binary only."""
        return list(self.core.refuse_text(self.relay.clock()).frames)

    def auth_timed_out(self) -> list[Frame]:
        """The connection did not authenticate in time: ``auth.timeout``, then close."""
        return list(self.core.auth_timed_out().frames)

    # --- closing ------------------------------------------------------------------------

    def close_due(self) -> Close | None:
        """The close to send now, if one is due."""
        return self.core.close_due()

    def supersede(self) -> None:
        self.core.supersede()
        self.wake()

    def going_away(self) -> None:
        """The node drains: close with 1001 (clients reconnect elsewhere)."""
        self.core.going_away()
        self.wake()

    def closed(self) -> None:
        """The WebSocket closed (by us or the client)."""
        self.core.closed()

    def detach(self) -> None:
        """The connection is gone: stop receiving from the hub."""
        caller = self.core.caller
        if caller is not None:
            self.relay.hub.detach(caller.mailbox, self)
        connection_gone(self)

    # --- pushes -------------------------------------------------------------------------

    def offer(self, envelope: StoredEnvelope) -> None:
        self.core.offer(envelope)
        self.wake()

    async def next_push(self) -> list[Frame]:
        """The next frames to push; [] when there is nothing (the shell then idles)."""
        core = self.core
        step = core.next_push(self.relay.now_ms())
        if not isinstance(step, ReadMailbox):
            return step
        caller = core.caller
        assert caller is not None  # noqa: S101 (only a logged-in core reads its mailbox)
        relay = self.relay
        page = await relay.ports.mailboxes.pending(
            caller.mailbox, step.floor, step.limit, relay.now_ms()
        )
        return core.caught_up(page, relay.now_ms())

    def _count_pushed(self, envelopes: Sequence[Stored], now_ms: int) -> None:
        metrics = self.relay.metrics
        metrics.delivered += len(envelopes)
        for env in envelopes:
            metrics.send_to_deliver.observe(max(0, now_ms - env.ts) / 1000)


# --- request handlers (authenticated) ----------------------------------------------------


async def _publish(s: Session, caller: Caller, frame: PublishPrekeys) -> Frame:
    await s.relay.publish_prekeys(caller, frame)
    return await _status(s, caller, GetPrekeyStatus(frame.id))


async def _status(s: Session, caller: Caller, frame: GetPrekeyStatus) -> Frame:
    one_time, kem = await s.relay.ports.prekeys.prekey_counts(caller.address, caller.device)
    return PrekeyStatus(frame.id, one_time, kem)


async def _set_token(s: Session, caller: Caller, frame: SetDeliveryToken) -> Frame:
    await s.relay.set_token(caller, frame.verifier)
    return Ok(frame.id)


async def _set_group_token(s: Session, caller: Caller, frame: SetGroupToken) -> Frame:
    await s.relay.set_group_token(caller, frame.verifier, frame.revoke)
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
    check_shared_introductions(s, caller, frame)
    return await s.relay.send_shared(frame, caller.address)


def check_shared_introductions(s: Session, caller: Caller, frame: SendShared) -> None:
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
    return await send_batch(s.relay, frame, s.core.charge_run)


async def _introduce(s: Session, caller: Caller, frame: Introduce) -> Frame:
    wait = s.relay.intro_limit.take(caller.address, s.relay.clock())
    if wait:
        raise NodeError(errors.LIMIT_RATE, "too many introductions", retry_after_ms(wait))
    return await s.relay.send(frame, caller.address)


async def _introduce_many(s: Session, caller: Caller, frame: IntroduceMany) -> Frame:
    return await introduce_many(s.relay, caller, s.peer, frame)


async def _ack(s: Session, caller: Caller, frame: Ack) -> Frame | None:
    """Delete the acknowledged envelopes; ``id`` 0 asks for no ``Acked`` (an ack is
    idempotent, and a lost one only means a redelivery the client drops by eid)."""
    deleted = await s.relay.ports.mailboxes.ack(caller.mailbox, list(frame.eids))
    return None if frame.id == 0 else Acked(frame.id, deleted)


async def _blob(s: Session, caller: Caller, frame: RequestBlobUpload) -> Frame:
    return await s.relay.grant_blob(frame)


_HANDLERS: Final[dict[type, Callable[[Session, Caller, Any], Awaitable[Frame | None]]]] = {
    PublishPrekeys: _publish,
    GetPrekeyStatus: _status,
    SetDeliveryToken: _set_token,
    SetIntroductions: _set_introductions,
    SetGroupToken: _set_group_token,
    FetchPrekeys: _fetch,
    GetCertificate: _certificate,
    Send: _send,
    SendBatch: _send_batch,
    Introduce: _introduce,
    IntroduceMany: _introduce_many,
    SendShared: _send_shared,
    Forward: _forward,
    GetServerKeys: _server_keys,
    GetPeerRoots: _peer_roots,
    Ack: _ack,
    RequestBlobUpload: _blob,
    **CALL_HANDLERS,
}


def _nothing() -> None:
    return None
