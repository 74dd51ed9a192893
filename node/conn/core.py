"""One client connection's protocol core: bytes and time in, actions out.

:class:`ConnCore` reads each binary WebSocket message (size, decoding, rate limits,
flood strikes), decides from the tables of :mod:`node.conn.state` what the frame may do
in the connection's state, and answers with an action for the shell to perform:

    Reply(frames)            send these frames (a refusal); :data:`DROPPED` (none) for
                             a message read once the link is in ERROR
    Perform(frame)           answer this request through the relay, then send the answer
    StartLogin(frame, nonce) register or authenticate with this connection's challenge,
                             then report :meth:`ConnCore.logged_in` or ``login_refused``
    ReadMailbox(floor)       (from :meth:`ConnCore.next_push`) read a page of the mailbox
                             and pass it to :meth:`ConnCore.caught_up`
    Close(code, reason)      (from :meth:`ConnCore.close_due`) close the WebSocket

It imports neither trio nor the store nor the relay, and reads no clock: ``now`` (seconds
on the rate limiters' clock) and ``now_ms`` (Unix milliseconds) are passed in. A client
that breaks a rule gets an ``Error`` frame with a stable code (a
:class:`~node.conn.errors.RemoteProtocolError`); a flood of them, or no login in time,
moves the link to ERROR and the connection is closed with 1008; from then on messages
read are dropped (:data:`~node.conn.state.ANSWERED_IN`). An input the state does not allow
raises :class:`~node.conn.errors.LocalProtocolError` (the shell's bug).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, Generic, Protocol, TypeVar

from node import errors
from node.conn.errors import LocalProtocolError, RemoteProtocolError
from node.conn.push import Pushed, PushQueue, ReadMailbox, Stored
from node.conn.state import (
    ANSWERED_IN,
    AUTH_TIMEOUT_FROM,
    CLOSE_CODE_SET_IN,
    CLOSE_CODES,
    DISPOSITIONS,
    FLOOD_CODES,
    FLOOD_WINDOW_S,
    IDLE_FROM,
    INITIAL_LOGINS,
    LINK_TRANSITIONS,
    LOGIN_TRANSITIONS,
    OTHERWISE,
    REFUSALS,
    ConnState,
    Disposition,
    Event,
    Link,
    Login,
    conn_state,
)
from node.errors import NodeError
from node.limits import RateLimiter, retry_after_ms
from wire import WireError, decode
from wire.errors import TOO_LARGE, UNEXPECTED_TYPE
from wire.relay import PROTOCOL_VERSION, REQUESTS, Auth, Error, Hello, Register

Frame = object


class Principal(Protocol):
    """What the core needs of an authenticated device (``node.relay.Caller``)."""

    @property
    def address(self) -> str: ...
    @property
    def mailbox(self) -> bytes: ...


C = TypeVar("C", bound=Principal)


@dataclass(frozen=True, slots=True)
class Policy:
    """The node's rules for one connection: frame size, flood threshold, rate limiters
    (shared by all connections, keyed by client address and by account; an anonymous
    connection's ``ip_limit`` is the anonymous one, and ``connection_limit`` its own
    bucket, keyed by "", in place of the account's)."""

    max_frame_bytes: int
    flood_close_after: int
    ip_limit: RateLimiter
    account_limit: RateLimiter
    connection_limit: RateLimiter | None = None


@dataclass(frozen=True, slots=True)
class Reply:
    """Action: send ``frames``."""

    frames: tuple[Frame, ...]


@dataclass(frozen=True, slots=True)
class Perform:
    """Action: answer the request ``frame`` (allowed in this state) through the relay."""

    frame: Frame


@dataclass(frozen=True, slots=True)
class StartLogin:
    """Action: register or authenticate ``frame`` against the challenge ``nonce``."""

    frame: Register | Auth
    nonce: bytes


@dataclass(frozen=True, slots=True)
class Close:
    """Action: close the WebSocket with ``code``."""

    code: int
    reason: Event


Action = Reply | Perform | StartLogin

DROPPED: Final = Reply(())
"""The answer to a message read while the link is in ERROR: nothing (only the close)."""


class ConnCore(Generic[C]):
    """The protocol state of one connection from ``peer`` (the client's IP address),
    starting in ``login`` (one of :data:`~node.conn.state.INITIAL_LOGINS`: ANONYMOUS for
    a connection that never logs in). ``reject`` is told the code of every ``Error``
    frame made; pushes are reported to the ``on_pushed`` of
    :class:`~node.conn.push.PushQueue`."""

    __slots__ = (
        "_close_code",
        "_close_reason",
        "_link",
        "_login",
        "_nonce",
        "_reject",
        "_strikes",
        "_struck_at",
        "caller",
        "peer",
        "policy",
        "pushes",
    )

    def __init__(
        self,
        peer: str,
        policy: Policy,
        reject: Callable[[str], None],
        on_pushed: Pushed,
        login: Login = Login.AWAIT_LOGIN,
    ) -> None:
        if login not in INITIAL_LOGINS:
            raise LocalProtocolError(f"a connection cannot start in login {login}")
        self.peer = peer
        self.policy = policy
        self.caller: C | None = None
        self.pushes = PushQueue(on_pushed)
        self._reject = reject
        self._login = login
        self._link = Link.OPEN
        self._nonce: bytes | None = None
        self._close_code: int | None = None
        self._close_reason: Event | None = None
        self._strikes = 0.0
        self._struck_at = 0.0

    # --- state --------------------------------------------------------------------------

    @property
    def state(self) -> ConnState:
        return conn_state(self._login, self._link)

    @property
    def login_state(self) -> Login:
        return self._login

    @property
    def link_state(self) -> Link:
        return self._link

    @property
    def close_code(self) -> int | None:
        """The close code due (set once the link left OPEN), else None."""
        return self._close_code

    def close_due(self) -> Close | None:
        """The close the shell must send, if one is due and not yet sent."""
        if self._close_reason is None or self._link is Link.CLOSED:
            return None
        assert self._close_code is not None  # noqa: S101 (set with the reason)
        return Close(self._close_code, self._close_reason)

    def _log_in(self, event: Event) -> None:
        after = LOGIN_TRANSITIONS.get((self._login, event))
        if after is None:
            raise LocalProtocolError(f"{event.value} is not allowed in login {self._login}")
        self._login = after

    def _link_event(self, event: Event) -> None:
        after = LINK_TRANSITIONS.get((self._link, event))
        if after is None:
            raise LocalProtocolError(f"{event.value} is not allowed in link {self._link}")
        code = CLOSE_CODES.get(event)
        if code is not None and self._link in CLOSE_CODE_SET_IN:
            self._close_code, self._close_reason = code, event
        self._link = after

    def _require_open(self, what: str) -> None:
        if self._link is Link.CLOSED:
            raise LocalProtocolError(f"{what} after the connection closed")

    # --- the challenge ------------------------------------------------------------------

    def hello(self, nonce: bytes, domain: str, suite_id: int, now_ms: int) -> Hello:
        """The first frame, carrying this connection's challenge ``nonce`` (32 random
        bytes the shell draws)."""
        if self._nonce is not None or self._login not in INITIAL_LOGINS:
            raise LocalProtocolError("Hello is sent once, first")
        self._require_open("Hello")
        self._nonce = nonce
        return Hello(PROTOCOL_VERSION, domain, suite_id, nonce, now_ms)

    # --- frames in ----------------------------------------------------------------------

    def receive(self, data: bytes, now: float) -> Action:
        """What to do with one binary WebSocket message read at ``now`` (:data:`DROPPED`
        once the link is in ERROR: not decoded, rate-limited, struck or answered)."""
        link = self._link
        if link is _CLOSED or self._login is _LOGGING_IN:
            raise LocalProtocolError(f"a frame was read in state {self.state}")
        if link is not _OPEN and link not in ANSWERED_IN:
            return DROPPED
        frame: Frame | None = None
        try:
            if len(data) > self.policy.max_frame_bytes:
                self._rate_limit(now)
                raise RemoteProtocolError(errors.PROTO_TOO_LARGE, "frame too large")
            try:
                frame = decode_request(data, self.policy.max_frame_bytes)
            finally:
                self._rate_limit(now)
        except RemoteProtocolError as exc:
            if exc.code in FLOOD_CODES:
                self._strike(now)
            return Reply((self.error(request_id(frame), exc),))
        return self._dispose(frame)

    def _dispose(self, frame: Frame) -> Action:
        login = self._login
        disposition = _ROWS[login].get(type(frame))
        if disposition is None:
            disposition = OTHERWISE[login]
        if disposition is _PERFORM:
            return Perform(frame)
        if disposition is Disposition.LOGIN:
            assert isinstance(frame, Register | Auth)  # noqa: S101 (the table's LOGIN rows)
            nonce, self._nonce = self._nonce, None
            if nonce is None:
                raise LocalProtocolError("a login before Hello")
            self._log_in(Event.LOGIN)
            return StartLogin(frame, nonce)
        return Reply((self.error(request_id(frame), _refusal(disposition)),))

    def refuse_text(self, now: float) -> Reply:
        """A text WebSocket message: the protocol is binary only."""
        self._require_open("a text frame")
        if self._link not in ANSWERED_IN:
            return DROPPED
        self._strike(now)
        try:
            self._rate_limit(now)
        except RemoteProtocolError as exc:
            return Reply((self.error(0, exc),))
        refusal = RemoteProtocolError(errors.PROTO_MALFORMED, "text frames are not allowed")
        return Reply((self.error(0, refusal),))

    def error(self, request_id: int, exc: NodeError) -> Error:
        """The ``Error`` frame answering request ``request_id`` with ``exc`` (counted)."""
        self._reject(exc.code)
        return Error(request_id, exc.code, exc.message, exc.retry_after)

    def charge(self, now: float) -> float:
        """Take one token of this connection's address and of its account (anonymous: of
        the connection itself): 0.0, or the seconds to wait (a frame, or each further Send
        of a ``SendBatch``)."""
        policy = self.policy
        wait = policy.ip_limit.take(self.peer, now)
        if not wait:
            if self.caller is not None:
                wait = policy.account_limit.take(self.caller.address, now)
            elif policy.connection_limit is not None:
                wait = policy.connection_limit.take("", now)
        return wait

    def charge_run(self, now: float, count: int) -> list[float]:
        """:meth:`charge` ``count`` times at ``now`` (the further Sends of a ``SendBatch``),
        one :meth:`~node.limits.RateLimiter.take_run` per limiter: each charge's wait, in
        order, as the ``count`` calls would give them (a charge refused by the address's
        limiter takes nothing of the account's or the connection's)."""
        policy = self.policy
        passed, wait = policy.ip_limit.take_run(self.peer, now, count)
        waits = [wait] * (count - passed)
        if self.caller is not None:
            allowed, second = policy.account_limit.take_run(self.caller.address, now, passed)
        elif policy.connection_limit is not None:
            allowed, second = policy.connection_limit.take_run("", now, passed)
        else:
            return [0.0] * passed + waits
        return [0.0] * allowed + [second] * (passed - allowed) + waits

    def _rate_limit(self, now: float) -> None:
        wait = self.charge(now)
        if wait:
            raise RemoteProtocolError(errors.LIMIT_RATE, "too many requests", retry_after_ms(wait))

    def _strike(self, now: float) -> None:
        """Count one refused frame (rate-limited or unreadable); past ``flood_close_after``
        within :data:`~node.conn.state.FLOOD_WINDOW_S`, the link goes to ERROR (1008)."""
        limit = self.policy.flood_close_after
        drained = (now - self._struck_at) * limit / FLOOD_WINDOW_S
        self._strikes = max(0.0, self._strikes - drained) + 1.0
        self._struck_at = now
        if self._strikes >= limit:
            self._link_event(Event.FLOOD)

    # --- login results ------------------------------------------------------------------

    def logged_in(self, caller: C) -> None:
        """The relay accepted the login of :class:`StartLogin`: catch up, then push."""
        self._log_in(Event.LOGGED_IN)
        self.caller = caller
        self.pushes.start()

    def login_refused(self) -> None:
        """The relay refused (or failed) the login: the challenge is spent."""
        self._log_in(Event.LOGIN_REFUSED)

    def auth_timed_out(self) -> Reply:
        """No login within the deadline: ``auth.timeout``, and the link goes to ERROR."""
        self._require_open("auth timeout")
        if self._login not in AUTH_TIMEOUT_FROM:
            raise LocalProtocolError(f"auth timeout in login {self._login}")
        self._link_event(Event.AUTH_TIMEOUT)
        refusal = RemoteProtocolError(errors.AUTH_TIMEOUT, "authenticate sooner")
        return Reply((self.error(0, refusal),))

    # --- closing ------------------------------------------------------------------------

    def supersede(self) -> None:
        """Another connection took this mailbox over: close with 4000."""
        self._link_event(Event.SUPERSEDED)

    def going_away(self) -> None:
        """The node drains: close with 1001."""
        self._link_event(Event.GOING_AWAY)

    def idle(self) -> None:
        """An anonymous connection sent nothing for ``sealed_idle_timeout``: close with
        1000 (the client reopens it when it next has something to send)."""
        if self._login not in IDLE_FROM:
            raise LocalProtocolError(f"idle close in login {self._login}")
        self._link_event(Event.IDLE)

    def closed(self) -> None:
        """The shell sent the close, or the client went: nothing more is read or pushed."""
        if self._link is not Link.CLOSED:
            self._link_event(Event.CLOSED)

    # --- pushes -------------------------------------------------------------------------

    def offer(self, envelope: Stored) -> None:
        """The hub hands over a newly stored envelope for this mailbox."""
        self.pushes.offer(envelope)

    def next_push(self, now_ms: int) -> ReadMailbox | list[Frame]:
        """A mailbox page to read, or the frames to push ([] when idle, not logged in, or
        closing)."""
        if self.caller is None or self._link is not Link.OPEN:
            return []
        return self.pushes.next(now_ms)

    def caught_up(self, page: Sequence[Stored], now_ms: int) -> list[Frame]:
        """The frames for the page a :class:`ReadMailbox` read."""
        return self.pushes.caught_up(page, now_ms)


_CLOSED: Final = Link.CLOSED
_OPEN: Final = Link.OPEN
_LOGGING_IN: Final = Login.LOGGING_IN
_PERFORM: Final = Disposition.PERFORM
_ROWS: Final = {login: dict(row) for login, row in DISPOSITIONS.items()}
"""``state.DISPOSITIONS`` as plain dicts (looked up for every frame)."""


def _refusal(disposition: Disposition) -> RemoteProtocolError:
    code, message = REFUSALS[disposition]
    return RemoteProtocolError(code, message)


def decode_request(data: bytes, max_size: int) -> Frame:
    """One request frame of ``wire.relay.REQUESTS`` (raises RemoteProtocolError)."""
    try:
        return decode(data, REQUESTS, max_size=max_size)
    except WireError as exc:
        if exc.code == UNEXPECTED_TYPE:
            raise RemoteProtocolError(errors.PROTO_UNEXPECTED, "not a request frame") from None
        if exc.code == TOO_LARGE:
            raise RemoteProtocolError(errors.PROTO_TOO_LARGE, "frame or field too large") from None
        code = f"undecodable frame ({exc.code})"
        raise RemoteProtocolError(errors.PROTO_MALFORMED, code) from None


def request_id(frame: Frame | None) -> int:
    """The request id of ``frame`` (0 when it has none, or did not decode)."""
    value = getattr(frame, "id", 0)
    return value if isinstance(value, int) else 0
