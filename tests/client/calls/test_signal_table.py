"""Every (role, state, input) of a call against the transition table: allowed inputs move
where the table says, with the reply and events it implies; the others are ignored and
counted, never raised."""

from __future__ import annotations

import pytest

from client.calls.signal_events import (
    CallState,
    Ended,
    EndReason,
    IgnoreReason,
    Role,
    SendSignal,
    StopMedia,
)
from client.calls.signal_table import HANG_UP_AGAIN, STATES, TRANSITIONS, Input, Reply
from tests.client.calls.signalkit import CREATION, T0, at, feed, peer_of
from wire.calls import CallBusy, CallHangup, CallReject, RejectReason

S = CallState

PAIRS = [
    (role, state, kind)
    for role in Role
    for state in sorted(STATES[role] - {S.IDLE}, key=lambda s: s.value)
    for kind in Input
    if kind not in CREATION
]

REPLY_SIGNALS = {
    Reply.HANGUP: CallHangup(b"\xc1" * 16),
    Reply.DECLINE: CallReject(b"\xc1" * 16, RejectReason.DECLINED),
    Reply.UNAVAILABLE: CallReject(b"\xc1" * 16, RejectReason.UNAVAILABLE),
    Reply.BUSY: CallBusy(b"\xc1" * 16),
}


def _id(p: tuple[Role, CallState, Input]) -> str:
    return f"{p[0].value}-{p[1].value}-{p[2].value}"


def test_the_states_are_the_documented_ones() -> None:
    assert {
        S.IDLE,
        S.DIALING,
        S.RINGING,
        S.CONNECTING,
        S.ACTIVE,
        S.ENDED,
    } == STATES[Role.CALLER]
    assert {S.IDLE, S.RINGING, S.ANSWERING, S.ACTIVE, S.ENDED} == STATES[Role.CALLEE]


def test_nothing_leaves_ended_and_every_ending_has_a_reason() -> None:
    for (_, state, _), step in TRANSITIONS.items():
        assert state is not S.ENDED
        assert (step.to is S.ENDED) == (step.reason is not None)
        assert step.reply is None or step.to is S.ENDED


def test_every_row_is_reachable_from_its_role_states() -> None:
    for role, state, _ in TRANSITIONS:
        assert state in STATES[role]


@pytest.mark.parametrize("pair", PAIRS, ids=_id)
def test_input_in_state(pair: tuple[Role, CallState, Input]) -> None:
    role, state, kind = pair
    call = at(role, state)
    before = sum(call.ignored.values())
    events = feed(call, kind, T0 + 1, peer=peer_of(role))
    step = TRANSITIONS.get((role, state, kind))
    if step is None:
        assert call.state is state
        if state is S.ENDED and kind in HANG_UP_AGAIN:
            assert events == [SendSignal(peer_of(role), CallHangup(call.call_id))]
        else:
            assert events == []
        counted = sum(call.ignored.values()) - before
        # a tick before any deadline is no input at all; everything else is counted
        assert counted == (0 if kind is Input.TIMEOUT else 1)
        if state is S.ENDED and kind is not Input.TIMEOUT:
            assert call.ignored[IgnoreReason.LATE] >= 1
        return
    assert call.state is step.to
    assert call.reason is step.reason
    if step.to is not S.ENDED:
        assert not any(isinstance(e, Ended) for e in events)
        return
    assert isinstance(events[-1], Ended)
    assert events[-1].reason is step.reason
    sent = [e.signal for e in events if isinstance(e, SendSignal)]
    assert sent == ([] if step.reply is None else [REPLY_SIGNALS[step.reply]])
    assert all(e.to == peer_of(role) for e in events if isinstance(e, SendSignal))
    media_was_up = state in (S.CONNECTING, S.ACTIVE)
    assert any(isinstance(e, StopMedia) for e in events) == media_was_up
    assert call.deadline_ms is None


def test_every_end_reason_is_reachable() -> None:
    reached = {step.reason for step in TRANSITIONS.values() if step.reason is not None}
    assert reached == set(EndReason)


def test_end_codes_are_stable() -> None:
    assert {r.value for r in EndReason} == {
        "call.missed",
        "call.offline",
        "call.rejected",
        "call.busy",
        "call.hangup",
        "call.untrusted_identity",
        "call.failed",
        "call.glare",
    }


def test_the_table_covers_every_non_creation_input_somewhere() -> None:
    used = {kind for _, _, kind in TRANSITIONS}
    assert used == set(Input)
    creation = {kind for _, state, kind in TRANSITIONS if state is S.IDLE}
    assert creation == CREATION
