"""The transition table of a call's signalling (``client.calls.signal``), as data.

Keyed by (role, state, input); a row gives the next state and, for an ending, the
:class:`~client.calls.signal_events.EndReason` and the signal the ending sends the peer
(:class:`Reply`). An input without a row is ignored and counted by the machine. Nothing
leaves ``ENDED``. The timers behind ``TIMEOUT`` are in ``client.calls.signal``.

    caller  IDLE -dial-> DIALING -ringing-> RINGING -answer-> CONNECTING -connected-> ACTIVE
    callee  IDLE -offer-> RINGING -accept-> ANSWERING -leg ready-> ACTIVE
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Final

from client.calls.signal_events import CallState, EndReason, Role


class Input(Enum):
    """What a call reacts to: the peer's signals, the user's choices, the shell's reports."""

    DIAL = "dial"
    DIAL_UNTRUSTED = "dial_untrusted"
    OFFER = "offer"
    OFFER_EXPIRED = "offer_expired"
    OFFER_UNTRUSTED = "offer_untrusted"
    OFFER_BUSY = "offer_busy"
    RINGING = "ringing"
    ANSWER = "answer"
    REJECT = "reject"
    REJECT_UNAVAILABLE = "reject_unavailable"
    BUSY = "busy"
    HANGUP = "hangup"
    KEY_UPDATE = "key_update"
    ACCEPT = "accept"
    DECLINE = "decline"
    HANGUP_LOCAL = "hangup_local"
    LEG_READY = "leg_ready"
    LEG_FAILED = "leg_failed"
    CONNECTED = "connected"
    MEDIA_FAILED = "media_failed"
    SEND_FAILED = "send_failed"
    SEND_UNTRUSTED = "send_untrusted"
    REKEY = "rekey"
    TIMEOUT = "timeout"
    GLARE = "glare"


class Reply(Enum):
    """The signal an ending sends the peer."""

    HANGUP = "hangup"
    DECLINE = "decline"
    UNAVAILABLE = "unavailable"
    BUSY = "busy"


@dataclass(frozen=True, slots=True)
class Step:
    """One row of the table: the next state; an ending's reason and reply."""

    to: CallState
    reason: EndReason | None = None
    reply: Reply | None = None


Rows = dict[tuple[Role, CallState, Input], Step]
"""Rows of the transition table: (role, state, input) -> step."""

S = CallState
R = EndReason
_CALLER_LIVE: Final = (S.DIALING, S.RINGING, S.CONNECTING, S.ACTIVE)
_CALLEE_LIVE: Final = (S.RINGING, S.ANSWERING, S.ACTIVE)


def _end(reason: EndReason, reply: Reply | None = None) -> Step:
    return Step(S.ENDED, reason, reply)


def _rows(role: Role, states: Iterable[CallState], event: Input, step: Step) -> Rows:
    return {(role, state, event): step for state in states}


def _caller_rows() -> Rows:
    c, rows = Role.CALLER, Rows()
    rows |= {(c, S.IDLE, Input.DIAL): Step(S.DIALING)}
    rows |= {(c, S.IDLE, Input.DIAL_UNTRUSTED): _end(R.UNTRUSTED_IDENTITY)}
    rows |= {(c, S.DIALING, Input.RINGING): Step(S.RINGING)}
    rows |= _rows(c, (S.DIALING, S.RINGING), Input.ANSWER, Step(S.CONNECTING))
    rows |= _rows(c, (S.DIALING, S.RINGING), Input.REJECT, _end(R.REJECTED))
    rows |= _rows(c, (S.DIALING, S.RINGING), Input.REJECT_UNAVAILABLE, _end(R.FAILED))
    rows |= _rows(c, (S.DIALING, S.RINGING), Input.BUSY, _end(R.BUSY))
    rows |= _rows(c, (S.DIALING, S.RINGING), Input.GLARE, _end(R.GLARE, Reply.HANGUP))
    rows |= _rows(c, _CALLER_LIVE, Input.HANGUP, _end(R.HANGUP))
    rows |= _rows(c, _CALLER_LIVE, Input.HANGUP_LOCAL, _end(R.HANGUP, Reply.HANGUP))
    for state in (S.CONNECTING, S.ACTIVE):
        rows |= {(c, state, Input.KEY_UPDATE): Step(state), (c, state, Input.REKEY): Step(state)}
    rows |= {(c, S.CONNECTING, Input.CONNECTED): Step(S.ACTIVE)}
    rows |= _rows(c, (S.CONNECTING, S.ACTIVE), Input.MEDIA_FAILED, _end(R.FAILED, Reply.HANGUP))
    rows |= {(c, S.DIALING, Input.SEND_FAILED): _end(R.OFFLINE)}
    rows |= _rows(c, _CALLER_LIVE, Input.SEND_UNTRUSTED, _end(R.UNTRUSTED_IDENTITY))
    rows |= {(c, S.DIALING, Input.TIMEOUT): _end(R.OFFLINE, Reply.HANGUP)}
    rows |= {(c, S.RINGING, Input.TIMEOUT): _end(R.MISSED, Reply.HANGUP)}
    rows |= {(c, S.CONNECTING, Input.TIMEOUT): _end(R.FAILED, Reply.HANGUP)}
    return rows


def _callee_rows() -> Rows:
    c, rows = Role.CALLEE, Rows()
    rows |= {(c, S.IDLE, Input.OFFER): Step(S.RINGING)}
    rows |= {(c, S.IDLE, Input.OFFER_EXPIRED): _end(R.MISSED)}
    rows |= {(c, S.IDLE, Input.OFFER_UNTRUSTED): _end(R.UNTRUSTED_IDENTITY)}
    rows |= {(c, S.IDLE, Input.OFFER_BUSY): _end(R.BUSY, Reply.BUSY)}
    rows |= {(c, S.RINGING, Input.ACCEPT): Step(S.ANSWERING)}
    rows |= {(c, S.RINGING, Input.DECLINE): _end(R.REJECTED, Reply.DECLINE)}
    rows |= {(c, S.RINGING, Input.HANGUP_LOCAL): _end(R.REJECTED, Reply.DECLINE)}
    rows |= {(c, S.RINGING, Input.HANGUP): _end(R.MISSED)}  # the caller gave up
    rows |= _rows(c, (S.ANSWERING, S.ACTIVE), Input.HANGUP, _end(R.HANGUP))
    rows |= _rows(c, (S.ANSWERING, S.ACTIVE), Input.HANGUP_LOCAL, _end(R.HANGUP, Reply.HANGUP))
    rows |= {(c, S.ANSWERING, Input.LEG_READY): Step(S.ACTIVE)}
    rows |= {(c, S.ANSWERING, Input.LEG_FAILED): _end(R.FAILED, Reply.UNAVAILABLE)}
    rows |= {(c, S.ACTIVE, Input.MEDIA_FAILED): _end(R.FAILED, Reply.HANGUP)}
    rows |= {(c, S.ACTIVE, Input.KEY_UPDATE): Step(S.ACTIVE)}
    rows |= {(c, S.ACTIVE, Input.REKEY): Step(S.ACTIVE)}
    rows |= _rows(c, _CALLEE_LIVE, Input.SEND_UNTRUSTED, _end(R.UNTRUSTED_IDENTITY))
    rows |= {(c, S.RINGING, Input.TIMEOUT): _end(R.MISSED)}
    rows |= {(c, S.ANSWERING, Input.TIMEOUT): _end(R.FAILED, Reply.UNAVAILABLE)}
    return rows


HANG_UP_AGAIN: Final = frozenset({Input.ANSWER, Input.KEY_UPDATE})
"""Signals a peer sends only while it holds the call up. An ENDED call ignores them (no
row) but answers each with a hang-up: the peer's call is up while ours is over, so our
earlier hang-up reached it before its offer did (the network reorders), or never did."""

TRANSITIONS: Final[Rows] = _caller_rows() | _callee_rows()
"""Every allowed (role, state, input) and where it leads; nothing leaves ``ENDED``."""

STATES: Final[dict[Role, frozenset[CallState]]] = {
    role: frozenset({S.IDLE} | {k[1] for k in TRANSITIONS if k[0] is role})
    | frozenset(v.to for k, v in TRANSITIONS.items() if k[0] is role)
    for role in Role
}
"""The states each role can be in."""
