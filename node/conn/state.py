"""The client connection's states and legal transitions, as data (h11's ``_state.py``).

Everything that decides what a connection may do next lives here: the states, the events
that move between them, the transition table, what each login state does with each kind
of request frame, and the close codes. :class:`node.conn.core.ConnCore` only looks these
tables up; it holds no other notion of state.

A connection has two halves of state, as an h11 connection has a client and a server
state: its *login* (how far authentication got) and its *link* (whether a close is due).
Their pair is the connection's :class:`ConnState`; :func:`conn_state` folds it into one.

    login:  AWAIT_LOGIN --LOGIN--> LOGGING_IN --LOGGED_IN--> AUTHENTICATED
                                       |
                                       +--LOGIN_REFUSED--> SPENT

            ANONYMOUS  (a connection to ``/v1/sealed``: starts and stays here)

    * AWAIT_LOGIN    Hello sent, its challenge unspent: Register, Auth and Ping allowed
                     (a client may measure the link before it spends its challenge, and
                     a Pong tells nothing Hello did not)
    * LOGGING_IN     a Register or Auth took the challenge and the relay is checking it
    * SPENT          the challenge was used by a failed attempt: only Ping; Register and
                     Auth answer ``auth.replayed``
    * AUTHENTICATED  everything but Register/Auth (``auth.replayed``)
    * ANONYMOUS      sealed sending only (``Send``, ``SendBatch``, ``SendShared``,
                     ``Forward``: :data:`SEALED_REQUESTS`) and Ping, authorised by the
                     recipients' delivery tokens alone; every other request, Register and
                     Auth included, answers ``auth.anonymous``. No event leaves it: an
                     anonymous connection never logs in, holds no account and is pushed
                     nothing (issue 20). Which of the :data:`INITIAL_LOGINS` a connection
                     starts in is the path's choice (``node.app``), not a frame's

    link:   OPEN --SUPERSEDED / GOING_AWAY / IDLE--> CLOSING --CLOSED--> CLOSED
            OPEN --FLOOD / AUTH_TIMEOUT-----------> ERROR   --CLOSED--> CLOSED

    * OPEN      frames are read and answered, pushes flow
    * CLOSING   a close was asked for without fault (another connection took the mailbox
                over: 4000; the node drains: 1001; an anonymous connection sent nothing
                for ``sealed_idle_timeout``: 1000); no more pushes
    * ERROR     the client broke a rule badly enough to be closed (a flood of refused
                frames, no login in time): 1008; no more pushes, and nothing moves the
                link out of ERROR but CLOSED
    * CLOSED    the shell sent the close or the client went; every input is the shell's
                mistake (:class:`~node.conn.errors.LocalProtocolError`)

A single refused frame (unreadable, too large, too fast, not allowed in this login) is
answered with an ``Error`` of a stable code and changes no state: the client may go on,
as it always could. Refusals count as strikes, and a flood of them moves the link to
ERROR. While the link is CLOSING, the shell still answers the messages it had already
read in the same turn (so the wire is what it always was), then sends the close. In ERROR
only the close happens (issue 16): the messages of the turn after the one that moved the
link there are dropped, neither performed nor answered nor counted, and the close follows
the answers made before (:data:`ANSWERED_IN`).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from node import errors
from wire.relay import REQUESTS, Auth, Forward, Ping, Register, Send, SendBatch, SendShared

CLOSE_NORMAL: Final = 1000
CLOSE_GOING_AWAY: Final = 1001
CLOSE_POLICY: Final = 1008
CLOSE_SUPERSEDED: Final = 4000
FLOOD_WINDOW_S: Final = 10.0
"""Refused frames count towards ``flood_close_after`` over this window: the count drains
by ``flood_close_after`` per window, so a connection that is refused faster than that is
closed however its refusals are interleaved with frames that pass."""
FLOOD_CODES: Final = frozenset({errors.LIMIT_RATE, errors.PROTO_MALFORMED, errors.PROTO_TOO_LARGE})
"""The refusals that count as strikes towards a flood close."""


class Login(enum.Enum):
    """How far this connection's authentication got."""

    AWAIT_LOGIN = "await_login"
    LOGGING_IN = "logging_in"
    SPENT = "spent"
    AUTHENTICATED = "authenticated"
    ANONYMOUS = "anonymous"


class Link(enum.Enum):
    """Whether the connection is open, due to close, or closed."""

    OPEN = "open"
    CLOSING = "closing"
    ERROR = "error"
    CLOSED = "closed"


class ConnState(enum.Enum):
    """The connection's state in one word: the login while the link is open, else the
    link's (what logs, metrics and tests name)."""

    AWAIT_LOGIN = "await_login"
    LOGGING_IN = "logging_in"
    SPENT = "spent"
    AUTHENTICATED = "authenticated"
    ANONYMOUS = "anonymous"
    CLOSING = "closing"
    ERROR = "error"
    CLOSED = "closed"


class Event(enum.Enum):
    """What moves a connection from one state to another."""

    LOGIN = "login"  # a Register/Auth took the challenge
    LOGGED_IN = "logged_in"  # the relay accepted it
    LOGIN_REFUSED = "login_refused"  # the relay refused it (or failed)
    SUPERSEDED = "superseded"  # another connection took the mailbox over
    GOING_AWAY = "going_away"  # the node drains
    FLOOD = "flood"  # too many refused frames within FLOOD_WINDOW_S
    AUTH_TIMEOUT = "auth_timeout"  # no login within auth_timeout
    IDLE = "idle"  # an anonymous connection sent nothing within sealed_idle_timeout
    CLOSED = "closed"  # the close was sent, or the client went


class Disposition(enum.Enum):
    """What the core does with one decoded request frame in a login state."""

    PERFORM = "perform"  # the shell answers it (through the relay)
    LOGIN = "login"  # take the challenge: the shell registers or authenticates
    REPLAYED = "replayed"  # auth.replayed: the challenge is spent
    AUTH_REQUIRED = "auth_required"  # auth.required: log in first
    UNEXPECTED = "unexpected"  # proto.unexpected: not a request
    ANONYMOUS = "anonymous"  # auth.anonymous: not sealed sending, on an anonymous connection


LOGIN_TRANSITIONS: Final[Mapping[tuple[Login, Event], Login]] = MappingProxyType(
    {
        (Login.AWAIT_LOGIN, Event.LOGIN): Login.LOGGING_IN,
        (Login.LOGGING_IN, Event.LOGGED_IN): Login.AUTHENTICATED,
        (Login.LOGGING_IN, Event.LOGIN_REFUSED): Login.SPENT,
    }
)
"""(login, event) -> the next login; a pair that is absent is illegal."""

_CLOSE_EVENTS: Final = (
    Event.SUPERSEDED,
    Event.GOING_AWAY,
    Event.FLOOD,
    Event.AUTH_TIMEOUT,
    Event.IDLE,
)

LINK_TRANSITIONS: Final[Mapping[tuple[Link, Event], Link]] = MappingProxyType(
    {
        (Link.OPEN, Event.SUPERSEDED): Link.CLOSING,
        (Link.OPEN, Event.GOING_AWAY): Link.CLOSING,
        (Link.OPEN, Event.FLOOD): Link.ERROR,
        (Link.OPEN, Event.AUTH_TIMEOUT): Link.ERROR,
        (Link.OPEN, Event.IDLE): Link.CLOSING,
        (Link.OPEN, Event.CLOSED): Link.CLOSED,
        # A later fault-free close replaces the code; a fault overrides it.
        (Link.CLOSING, Event.SUPERSEDED): Link.CLOSING,
        (Link.CLOSING, Event.GOING_AWAY): Link.CLOSING,
        (Link.CLOSING, Event.FLOOD): Link.ERROR,
        (Link.CLOSING, Event.AUTH_TIMEOUT): Link.ERROR,
        (Link.CLOSING, Event.IDLE): Link.CLOSING,
        (Link.CLOSING, Event.CLOSED): Link.CLOSED,
        # ERROR is final but for the close itself: its code stays.
        **{(Link.ERROR, event): Link.ERROR for event in _CLOSE_EVENTS},
        (Link.ERROR, Event.CLOSED): Link.CLOSED,
        # A close asked for after the socket closed changes nothing.
        **{(Link.CLOSED, event): Link.CLOSED for event in _CLOSE_EVENTS},
    }
)
"""(link, event) -> the next link; a pair that is absent is illegal."""

CLOSE_CODES: Final[Mapping[Event, int]] = MappingProxyType(
    {
        Event.SUPERSEDED: CLOSE_SUPERSEDED,
        Event.GOING_AWAY: CLOSE_GOING_AWAY,
        Event.FLOOD: CLOSE_POLICY,
        Event.AUTH_TIMEOUT: CLOSE_POLICY,
        Event.IDLE: CLOSE_NORMAL,
    }
)
"""The WebSocket close code each closing event asks for."""

CLOSE_CODE_SET_IN: Final = frozenset({Link.OPEN, Link.CLOSING})
"""The links in which a closing event sets the close code: a later fault-free close
replaces an earlier one's, a fault replaces either, and ERROR keeps its 1008."""

ANSWERED_IN: Final = frozenset({Link.OPEN, Link.CLOSING})
"""The links in which a message read is answered. In ERROR one is dropped (no answer, no
rate-limit token, no strike); in CLOSED none may be read (the shell's mistake)."""

AUTH_TIMEOUT_FROM: Final = frozenset({Login.AWAIT_LOGIN, Login.SPENT})
"""The logins in which the shell waits for a frame under the auth deadline."""

IDLE_FROM: Final = frozenset({Login.ANONYMOUS})
"""The logins in which the shell closes a connection that sent nothing for a while
(``sealed_idle_timeout``): one that holds no account costs the node a task and a
connection slot, so it is not kept for nothing. The client reopens it when it next has
something to send."""

INITIAL_LOGINS: Final = frozenset({Login.AWAIT_LOGIN, Login.ANONYMOUS})
"""The logins a connection may start in: AWAIT_LOGIN on ``/v1/client``, ANONYMOUS on
``/v1/sealed``."""

GATHERED_IN: Final = frozenset({Login.AUTHENTICATED, Login.ANONYMOUS})
"""The logins in which the messages already read are answered together (runs of Sends
and of SendShareds stored in one commit: ``Session.receive_many``)."""

LOGIN_FRAMES: Final = (Register, Auth)
AUTHENTICATED_REQUESTS: Final = frozenset(REQUESTS) - {Register, Auth, Ping}
"""The requests an authenticated connection may make besides Ping (``node.session``
has one handler for each)."""
SEALED_REQUESTS: Final = frozenset({Send, SendBatch, SendShared, Forward})
"""The requests an anonymous connection may make besides Ping: sealed envelopes, each
authorised by its recipients' delivery tokens (a ``Forward``'s by the destination)."""

DISPOSITIONS: Final[Mapping[Login, Mapping[type, Disposition]]] = MappingProxyType(
    {
        Login.AWAIT_LOGIN: MappingProxyType(
            {Ping: Disposition.PERFORM, Register: Disposition.LOGIN, Auth: Disposition.LOGIN}
        ),
        Login.SPENT: MappingProxyType(
            {Ping: Disposition.PERFORM, Register: Disposition.REPLAYED, Auth: Disposition.REPLAYED}
        ),
        Login.AUTHENTICATED: MappingProxyType(
            {
                Ping: Disposition.PERFORM,
                Register: Disposition.REPLAYED,
                Auth: Disposition.REPLAYED,
                **dict.fromkeys(AUTHENTICATED_REQUESTS, Disposition.PERFORM),
            }
        ),
        Login.ANONYMOUS: MappingProxyType(
            {Ping: Disposition.PERFORM, **dict.fromkeys(SEALED_REQUESTS, Disposition.PERFORM)}
        ),
    }
)
"""login -> request type -> what to do with it. A type that is absent answers
:data:`OTHERWISE` of the login (no frame is read while LOGGING_IN)."""

OTHERWISE: Final[Mapping[Login, Disposition]] = MappingProxyType(
    {
        Login.AWAIT_LOGIN: Disposition.AUTH_REQUIRED,
        Login.SPENT: Disposition.AUTH_REQUIRED,
        Login.AUTHENTICATED: Disposition.UNEXPECTED,
        Login.ANONYMOUS: Disposition.ANONYMOUS,
    }
)

REFUSALS: Final[Mapping[Disposition, tuple[str, str]]] = MappingProxyType(
    {
        Disposition.REPLAYED: (errors.AUTH_REPLAYED, "this connection's challenge is spent"),
        Disposition.AUTH_REQUIRED: (errors.AUTH_REQUIRED, "authenticate first"),
        Disposition.UNEXPECTED: (errors.PROTO_UNEXPECTED, "not a request"),
        Disposition.ANONYMOUS: (
            errors.AUTH_ANONYMOUS,
            "this connection is anonymous: it sends sealed envelopes only (log in on /v1/client)",
        ),
    }
)
"""The ``Error`` (code, message) of each refusing disposition."""


def conn_state(login: Login, link: Link) -> ConnState:
    """The one-word state of a connection whose halves are ``login`` and ``link``."""
    if link is Link.OPEN:
        return ConnState(login.value)
    return ConnState(link.value)
