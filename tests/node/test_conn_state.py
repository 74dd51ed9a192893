"""node.conn: the connection core driven by arbitrary inputs (h2's state machine tests).

A hypothesis ``RuleBasedStateMachine`` plays a shell that may also misbehave: frames of
every kind (requests, responses, garbage, oversized, text) in any state, logins that
succeed or fail, timeouts, supersedes, drains, closes, hand-overs and pushes. Invariants:
the state is always one of the table's, every transition taken is in the table, after
ERROR nothing but the close happens (a message read is dropped: not answered, not
counted), a closed connection takes no input, and nothing but
:class:`LocalProtocolError` ever escapes (only for inputs the state does not allow).
:class:`AnonymousConnMachine` plays the same shell around a connection that starts
ANONYMOUS (``/v1/sealed``, issue 20): it never leaves that login, never holds a caller,
is never pushed, and performs sealed sending and Ping only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from node import errors
from node.conn.core import (
    DROPPED,
    Close,
    ConnCore,
    Perform,
    Policy,
    Reply,
    StartLogin,
    decode_request,
)
from node.conn.errors import LocalProtocolError, RemoteProtocolError
from node.conn.push import ReadMailbox
from node.conn.state import (
    ANSWERED_IN,
    AUTH_TIMEOUT_FROM,
    CLOSE_NORMAL,
    CLOSE_POLICY,
    DISPOSITIONS,
    IDLE_FROM,
    INITIAL_LOGINS,
    LINK_TRANSITIONS,
    LOGIN_TRANSITIONS,
    OTHERWISE,
    SEALED_REQUESTS,
    ConnState,
    Disposition,
    Event,
    Link,
    Login,
    conn_state,
)
from node.errors import NodeError
from node.limits import RateLimiter
from tests.node.harness import DOMAIN, Device
from wire import encode
from wire.relay import (
    Ack,
    Auth,
    Deliver,
    Drained,
    Error,
    Forward,
    GetPeerRoots,
    GetPrekeyStatus,
    GetServerKeys,
    Hello,
    Ping,
    Pong,
    Send,
    SendBatch,
    SendShared,
    SetIntroductions,
    SharedRecipient,
)

MAX_FRAME: Final = 4096
FLOOD_AFTER: Final = 8
PEER: Final = "192.0.2.7"
REFUSAL_CODES: Final = frozenset(
    {
        errors.PROTO_MALFORMED,
        errors.PROTO_UNEXPECTED,
        errors.PROTO_TOO_LARGE,
        errors.LIMIT_RATE,
        errors.AUTH_REQUIRED,
        errors.AUTH_REPLAYED,
        errors.AUTH_TIMEOUT,
        errors.AUTH_ANONYMOUS,
    }
)


@dataclass(frozen=True)
class Principal:
    address: str
    mailbox: bytes


@dataclass(frozen=True)
class Stored:
    eid: bytes
    seq: int
    ts: int
    expires: int
    origin: str
    sender: str | None
    body: bytes


def _register() -> bytes:
    hello = Hello(1, DOMAIN, 1, bytes(32), 0)
    return encode(Device.create("alice").register_frame(hello, "ABCD-EFGH-IJKL"))


FRAMES: Final = [
    encode(Ping(1)),
    encode(Auth(2, f"alice@{DOMAIN}", 1, bytes(64))),
    _register(),
    encode(GetPrekeyStatus(3)),
    encode(GetPeerRoots(4)),
    encode(Ack(0, ())),
    encode(SetIntroductions(6, True)),
    encode(GetServerKeys(7, "peer.test")),
    encode(Send(8, bytes(16), bytes(16), None, 0, b"hi")),
    encode(SendBatch(9, (Send(1, bytes(16), bytes(16), bytes(16), 0, b"hi"),))),
    encode(SendShared(10, bytes(16), 0, (SharedRecipient(bytes(16), bytes(16)),), b"hi")),
    encode(Forward(11, "peer.test", bytes(16), 0, b"layer")),
    encode(Pong(1, 2)),  # a response: not a request
    b"\xc1",  # never valid msgpack
    b"\x92\x01",  # cut short
    bytes(MAX_FRAME + 1),  # too large
]
MESSAGES: Final = st.one_of(st.sampled_from(FRAMES), st.binary(max_size=64))


class ConnMachine(RuleBasedStateMachine):
    """A shell around one ConnCore that may do anything, in any order."""

    START: Login = Login.AWAIT_LOGIN

    def __init__(self) -> None:
        super().__init__()
        self.now = 1000.0
        self.rejected: list[str] = []
        self.pushed = 0
        own = RateLimiter(5.0, 10) if self.START is Login.ANONYMOUS else None
        policy = Policy(MAX_FRAME, FLOOD_AFTER, RateLimiter(5.0, 10), RateLimiter(5.0, 10), own)
        self.core: ConnCore[Principal] = ConnCore(
            PEER, policy, self.rejected.append, lambda envs, now: None, self.START
        )
        self.core.hello(bytes(32), DOMAIN, 1, self.now_ms)
        self.seq = 0
        self.reading: ReadMailbox | None = None
        self.was_error = False
        self.before = (self.core.login_state, self.core.link_state)

    @property
    def now_ms(self) -> int:
        return int(self.now * 1000)

    def _refused(self, frames: tuple[object, ...]) -> None:
        for frame in frames:
            assert isinstance(frame, Error)
            assert frame.code in REFUSAL_CODES

    # --- inputs ---------------------------------------------------------------------------

    @rule(data=MESSAGES)
    def receive(self, data: bytes) -> None:
        core = self.core
        login, link = core.login_state, core.link_state
        if link is Link.CLOSED or login is Login.LOGGING_IN:
            with pytest.raises(LocalProtocolError):
                core.receive(data, self.now)
            return
        counted = len(self.rejected)
        action = core.receive(data, self.now)
        if link is Link.ERROR:
            assert action is DROPPED
            assert len(self.rejected) == counted
            assert core.link_state is Link.ERROR
        elif isinstance(action, Reply):
            self._refused(action.frames)
        elif isinstance(action, StartLogin):
            assert login is Login.AWAIT_LOGIN
            assert core.login_state is Login.LOGGING_IN
        else:
            assert isinstance(action, Perform)
            assert DISPOSITIONS[login].get(type(action.frame)) is Disposition.PERFORM

    @rule()
    def text(self) -> None:
        link = self.core.link_state
        if link is Link.CLOSED:
            with pytest.raises(LocalProtocolError):
                self.core.refuse_text(self.now)
            return
        reply = self.core.refuse_text(self.now)
        if link is Link.ERROR:
            assert reply is DROPPED
        self._refused(reply.frames)

    @rule(ok=st.booleans())
    def login_result(self, ok: bool) -> None:
        core = self.core
        if core.login_state is not Login.LOGGING_IN:
            with pytest.raises(LocalProtocolError):
                core.logged_in(Principal("alice@" + DOMAIN, bytes(16)))
            return
        if ok:
            core.logged_in(Principal("alice@" + DOMAIN, bytes(16)))
        else:
            core.login_refused()

    @rule()
    def auth_timeout(self) -> None:
        core = self.core
        if core.link_state is Link.CLOSED or core.login_state not in AUTH_TIMEOUT_FROM:
            with pytest.raises(LocalProtocolError):
                core.auth_timed_out()
            return
        (frame,) = core.auth_timed_out().frames
        assert isinstance(frame, Error)
        assert frame.code == errors.AUTH_TIMEOUT
        assert core.link_state is Link.ERROR

    @rule()
    def supersede(self) -> None:
        self.core.supersede()

    @rule()
    def going_away(self) -> None:
        self.core.going_away()

    @rule()
    def idle(self) -> None:
        core = self.core
        if core.login_state not in IDLE_FROM:
            with pytest.raises(LocalProtocolError):
                core.idle()
            return
        link = core.link_state
        core.idle()
        if link in (Link.OPEN, Link.CLOSING):
            assert core.link_state is Link.CLOSING
            assert core.close_code == CLOSE_NORMAL

    @rule()
    def closed(self) -> None:
        self.core.closed()
        self.reading = None

    @rule(seconds=st.floats(min_value=0.0, max_value=20.0))
    def wait(self, seconds: float) -> None:
        self.now += seconds

    @rule(ahead=st.integers(min_value=-3, max_value=3), size=st.integers(0, 64))
    def offer(self, ahead: int, size: int) -> None:
        self.seq = max(1, self.seq + ahead)
        expires = self.now_ms + 60_000
        self.core.offer(
            Stored(bytes(16), self.seq, self.now_ms, expires, DOMAIN, None, bytes(size))
        )

    @rule()
    def push(self) -> None:
        if self.reading is not None:
            return
        step = self.core.next_push(self.now_ms)
        if isinstance(step, ReadMailbox):
            assert self.core.link_state is Link.OPEN
            self.reading = step
            return
        if step:
            assert self.core.link_state is Link.OPEN
            assert all(isinstance(f, Deliver) for f in step)

    @precondition(lambda self: self.reading is not None)
    @rule(count=st.integers(min_value=0, max_value=3))
    def page(self, count: int) -> None:
        assert self.reading is not None
        floor, self.reading = self.reading.floor, None
        page = [
            Stored(bytes(16), floor + n + 1, self.now_ms, self.now_ms + 1, DOMAIN, None, b"x")
            for n in range(count)
        ]
        frames = self.core.caught_up(page, self.now_ms)
        assert all(isinstance(f, Deliver | Drained) for f in frames)

    # --- invariants -----------------------------------------------------------------------

    @invariant()
    def state_is_in_the_table(self) -> None:
        core = self.core
        login, link = core.login_state, core.link_state
        assert core.state is conn_state(login, link)
        assert core.state in ConnState
        before_login, before_link = self.before
        if login is not before_login:
            assert any(LOGIN_TRANSITIONS.get((before_login, e)) is login for e in Event)
        if link is not before_link:
            assert any(LINK_TRANSITIONS.get((before_link, e)) is link for e in Event)
        self.before = (login, link)

    @invariant()
    def after_error_only_the_close(self) -> None:
        core = self.core
        if core.link_state is Link.ERROR:
            self.was_error = True
        if self.was_error:
            assert core.link_state in (Link.ERROR, Link.CLOSED)
            assert core.close_code == CLOSE_POLICY
            assert core.next_push(self.now_ms) == []

    @invariant()
    def a_close_is_due_exactly_while_closing(self) -> None:
        core = self.core
        due = core.close_due()
        if core.link_state in (Link.CLOSING, Link.ERROR):
            assert isinstance(due, Close)
            assert due.code == core.close_code
        else:
            assert due is None

    @invariant()
    def every_error_was_counted(self) -> None:
        assert all(code in REFUSAL_CODES for code in self.rejected)


class AnonymousConnMachine(ConnMachine):
    """The same shell around a connection to ``/v1/sealed``."""

    START = Login.ANONYMOUS

    @invariant()
    def anonymous_for_good(self) -> None:
        core = self.core
        assert core.login_state is Login.ANONYMOUS
        assert core.caller is None
        assert core.next_push(self.now_ms) == []
        if core.link_state is Link.OPEN:
            assert core.state is ConnState.ANONYMOUS


MACHINE_SETTINGS: Final = settings(
    max_examples=150,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
ConnMachine.TestCase.settings = MACHINE_SETTINGS
AnonymousConnMachine.TestCase.settings = MACHINE_SETTINGS
TestConnMachine = ConnMachine.TestCase
TestAnonymousConnMachine = AnonymousConnMachine.TestCase


def test_the_table_names_every_request_type() -> None:
    """Each request is allowed somewhere, and the authenticated rows match the shell."""
    from node.session import _HANDLERS
    from wire.relay import REQUESTS

    allowed = {t for rows in DISPOSITIONS.values() for t in rows}
    assert allowed == set(REQUESTS)
    performed = {
        t for t, d in DISPOSITIONS[Login.AUTHENTICATED].items() if d is Disposition.PERFORM
    }
    assert performed == set(_HANDLERS) | {Ping}


def test_answered_in_is_every_link_but_error_and_closed() -> None:
    assert frozenset(Link) - ANSWERED_IN == {Link.ERROR, Link.CLOSED}


@pytest.mark.parametrize("before", [0, 1, 5])
@pytest.mark.parametrize("after", [0, 1, 7])
def test_a_turn_crossing_the_flood_threshold_at_frame_k_answers_k(before: int, after: int) -> None:
    """A turn of N messages whose k-th is the ``flood_close_after``-th refusal: the first
    k are answered (the k-th with its refusal), the link is in ERROR with 1008 due, and
    the N - k after it are dropped (no answer, no rate-limit token, no strike counted)."""
    turn = [encode(Ping(n)) for n in range(before)] + [b"\xc1"] * FLOOD_AFTER
    k = len(turn)
    turn += [encode(Ping(n)) for n in range(after)] + [b"\xc1"] * after
    ip_limit = RateLimiter(1e-6, k + 1)  # one token left after k frames
    policy = Policy(MAX_FRAME, FLOOD_AFTER, ip_limit, RateLimiter(5.0, 10))
    rejected: list[str] = []
    core: ConnCore[Principal] = ConnCore(PEER, policy, rejected.append, lambda e, n: None)
    core.hello(bytes(32), DOMAIN, 1, 0)
    actions = [core.receive(data, 5.0) for data in turn]
    assert [type(a) for a in actions[:before]] == [Perform] * before
    refusals = actions[before:k]
    assert all(isinstance(a, Reply) and len(a.frames) == 1 for a in refusals)
    assert actions[k:] == [DROPPED] * (len(turn) - k)
    assert rejected == [errors.PROTO_MALFORMED] * FLOOD_AFTER
    assert core.link_state is Link.ERROR
    assert core.close_due() == Close(CLOSE_POLICY, Event.FLOOD)
    assert policy.ip_limit.take(PEER, 5.0) == 0.0
    assert core.refuse_text(5.0) is DROPPED


def test_a_frame_before_hello_is_a_local_error() -> None:
    policy = Policy(MAX_FRAME, FLOOD_AFTER, RateLimiter(5.0, 10), RateLimiter(5.0, 10))
    core: ConnCore[Principal] = ConnCore(PEER, policy, lambda code: None, lambda e, n: None)
    with pytest.raises(LocalProtocolError):
        core.receive(FRAMES[1], 0.0)


def test_remote_errors_are_node_errors_with_stable_codes() -> None:
    with pytest.raises(RemoteProtocolError) as caught:
        decode_request(b"\xc1", MAX_FRAME)
    assert isinstance(caught.value, NodeError)
    assert caught.value.code == errors.PROTO_MALFORMED


# --- the anonymous connection (issue 20) -------------------------------------------------


def _anonymous_core(own: RateLimiter | None = None) -> ConnCore[Principal]:
    own = RateLimiter(5.0, 10) if own is None else own
    policy = Policy(MAX_FRAME, FLOOD_AFTER, RateLimiter(100.0, 100), RateLimiter(5.0, 10), own)
    core: ConnCore[Principal] = ConnCore(
        PEER, policy, lambda code: None, lambda e, n: None, Login.ANONYMOUS
    )
    core.hello(bytes(32), DOMAIN, 1, 0)
    return core


def test_the_anonymous_row_is_sealed_sending_and_ping_and_matches_the_shell() -> None:
    from node.sealed import _HANDLERS as SEALED_HANDLERS
    from wire.relay import REQUESTS

    row = DISPOSITIONS[Login.ANONYMOUS]
    assert set(row) == SEALED_REQUESTS | {Ping}
    assert all(d is Disposition.PERFORM for d in row.values())
    assert set(SEALED_HANDLERS) == SEALED_REQUESTS
    assert set(REQUESTS) > SEALED_REQUESTS
    assert OTHERWISE[Login.ANONYMOUS] is Disposition.ANONYMOUS


def test_no_event_leaves_anonymous_and_it_has_no_login_deadline() -> None:
    assert not any(login is Login.ANONYMOUS for login, _ in LOGIN_TRANSITIONS)
    assert Login.ANONYMOUS not in LOGIN_TRANSITIONS.values()
    assert Login.ANONYMOUS in INITIAL_LOGINS
    assert Login.ANONYMOUS not in AUTH_TIMEOUT_FROM
    assert {Login.ANONYMOUS} == IDLE_FROM


@pytest.mark.parametrize("data", FRAMES)
def test_an_anonymous_connection_performs_sealed_sending_and_refuses_the_rest(
    data: bytes,
) -> None:
    core = _anonymous_core()
    action = core.receive(data, 1.0)
    assert not isinstance(action, StartLogin)
    if isinstance(action, Perform):
        assert type(action.frame) in SEALED_REQUESTS | {Ping}
    else:
        assert isinstance(action, Reply)
        (frame,) = action.frames
        assert isinstance(frame, Error)
        assert frame.code in REFUSAL_CODES - {errors.AUTH_REQUIRED, errors.AUTH_REPLAYED}
    assert core.login_state is Login.ANONYMOUS
    assert core.caller is None


def test_login_frames_on_an_anonymous_connection_answer_auth_anonymous() -> None:
    core = _anonymous_core()
    for data in (FRAMES[1], encode(GetPrekeyStatus(3)), encode(Ack(5, ()))):
        action = core.receive(data, 1.0)
        assert isinstance(action, Reply)
        assert action.frames[0].code == errors.AUTH_ANONYMOUS  # type: ignore[attr-defined]
    with pytest.raises(LocalProtocolError):
        core.logged_in(Principal("alice@" + DOMAIN, bytes(16)))
    with pytest.raises(LocalProtocolError):
        core.auth_timed_out()


def test_an_anonymous_connection_spends_its_own_bucket_not_an_accounts() -> None:
    own = RateLimiter(1e-6, 3)
    core = _anonymous_core(own)
    sends = [core.receive(FRAMES[8], 1.0) for _ in range(4)]
    assert [type(a) for a in sends[:3]] == [Perform] * 3
    (refusal,) = sends[3].frames  # type: ignore[union-attr]
    assert refusal.code == errors.LIMIT_RATE  # type: ignore[attr-defined]
    assert core.policy.account_limit.keys() == []


def test_a_connection_cannot_start_logged_in() -> None:
    policy = Policy(MAX_FRAME, FLOOD_AFTER, RateLimiter(5.0, 10), RateLimiter(5.0, 10))
    for login in set(Login) - INITIAL_LOGINS:
        with pytest.raises(LocalProtocolError):
            ConnCore(PEER, policy, lambda code: None, lambda e, n: None, login)
