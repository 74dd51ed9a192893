"""One call's signalling (client/calls/signal.py): the events of each step, the timers to
the millisecond, identity refusal, and the messages it ignores."""

from __future__ import annotations

import pytest

from client.calls.keys import CallSecret, Direction
from client.calls.signal import Call, ring_deadline, same_address
from client.calls.signal_events import (
    RING_TIMEOUT_MS,
    SETUP_TIMEOUT_MS,
    AllocateLeg,
    Answered,
    CallConfig,
    CallState,
    Ended,
    EndReason,
    IgnoreReason,
    PeerKeyEpoch,
    Ringing,
    Role,
    SendSignal,
    StartMedia,
    StopMedia,
)
from tests.client.calls.signalkit import (
    ALICE,
    BOB,
    CID,
    CONFIG,
    LEG,
    MALLORY,
    SECRET,
    T0,
    callee_at,
    caller_at,
    offer,
)
from wire.calls import (
    CallAnswer,
    CallBusy,
    CallHangup,
    CallKeyUpdate,
    CallOffer,
    CallReject,
    CallRinging,
    RejectReason,
)

S = CallState


def _dial(identity_accepted: bool = True, config: CallConfig = CONFIG) -> tuple[Call, list]:
    o = offer(ring_ms=config.ring_timeout_ms, video=True)
    return Call.dial(o, BOB, identity_accepted=identity_accepted, config=config)


def _incoming(
    o: CallOffer | None = None,
    now: int = T0,
    *,
    identity_accepted: bool = True,
    busy: bool = False,
    config: CallConfig = CONFIG,
) -> tuple[Call, list]:
    return Call.incoming(
        ALICE,
        o or offer(),
        now,
        identity_accepted=identity_accepted,
        busy=busy,
        config=config,
    )


# -- caller -------------------------------------------------------------------------------


def test_dial_sends_the_offer_and_rings_for_45_seconds() -> None:
    call, events = _dial()
    assert RING_TIMEOUT_MS == 45_000
    assert events == [SendSignal(BOB, offer(ring_ms=45_000, video=True))]
    assert call.state is S.DIALING
    assert call.role is Role.CALLER
    assert call.deadline_ms == T0 + 45_000


def test_dial_to_an_unaccepted_identity_is_refused_without_a_signal() -> None:
    call, events = _dial(identity_accepted=False)
    assert events == [Ended(CID, BOB, EndReason.UNTRUSTED_IDENTITY)]
    assert call.state is S.ENDED
    assert call.deadline_ms is None


def test_caller_happy_path_events() -> None:
    call, _ = _dial()
    assert call.receive(BOB, CallRinging(CID), T0 + 100) == [Ringing(CID, BOB, Role.CALLER, True)]
    assert call.state is S.RINGING
    events = call.receive(BOB, CallAnswer(CID, LEG), T0 + 5_000)
    secret = CallSecret(SECRET)
    assert events == [StartMedia(CID, secret, LEG, Direction.CALLER_TO_CALLEE, True)]
    assert call.state is S.CONNECTING
    assert call.deadline_ms == T0 + 5_000 + SETUP_TIMEOUT_MS
    assert call.connected(T0 + 5_100) == [Answered(CID, BOB)]
    assert call.state is S.ACTIVE
    assert call.deadline_ms is None
    assert call.hangup(T0 + 60_000) == [
        SendSignal(BOB, CallHangup(CID)),
        StopMedia(CID),
        Ended(CID, BOB, EndReason.HANGUP),
    ]


def test_ring_timeout_without_ringing_is_offline_exactly_at_45_s() -> None:
    call, _ = _dial()
    assert call.tick(T0 + 44_999) == []
    assert call.state is S.DIALING
    assert call.tick(T0 + 45_000) == [
        SendSignal(BOB, CallHangup(CID)),
        Ended(CID, BOB, EndReason.OFFLINE),
    ]


def test_ring_timeout_while_ringing_is_missed_exactly_at_45_s() -> None:
    call, _ = _dial()
    call.receive(BOB, CallRinging(CID), T0 + 30_000)  # ringing does not extend the ring
    assert call.tick(T0 + 44_999) == []
    assert call.tick(T0 + 45_000)[-1] == Ended(CID, BOB, EndReason.MISSED)


def test_an_answer_at_the_deadline_comes_too_late() -> None:
    call, _ = _dial()
    call.receive(BOB, CallRinging(CID), T0 + 1)
    events = call.receive(BOB, CallAnswer(CID, LEG), T0 + 45_000)
    assert Ended(CID, BOB, EndReason.MISSED) in events
    assert not any(isinstance(e, StartMedia) for e in events)
    assert call.ignored[IgnoreReason.LATE] == 1
    # the callee holds its side up: the late answer is met with a hang-up
    assert events[-1] == SendSignal(BOB, CallHangup(CID))


def test_ring_timeout_is_configurable() -> None:
    config = CallConfig(ring_timeout_ms=30_000)
    call, events = _dial(config=config)
    assert isinstance(events[0], SendSignal)
    assert isinstance(events[0].signal, CallOffer)
    assert events[0].signal.expires_ms == T0 + 30_000
    assert call.tick(T0 + 29_999) == []
    assert call.tick(T0 + 30_000)[-1].reason is EndReason.OFFLINE  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("signal", "reason", "reply"),
    [
        (CallReject(CID, RejectReason.DECLINED), EndReason.REJECTED, None),
        (CallReject(CID, RejectReason.UNAVAILABLE), EndReason.FAILED, None),
        (CallBusy(CID), EndReason.BUSY, None),
        (CallHangup(CID), EndReason.HANGUP, None),
    ],
)
def test_caller_endings_from_the_callee(signal: object, reason: EndReason, reply: None) -> None:
    call, _ = _dial()
    call.receive(BOB, CallRinging(CID), T0 + 1)
    assert call.receive(BOB, signal, T0 + 2) == [Ended(CID, BOB, reason)]  # type: ignore[arg-type]
    assert call.reason is reason


def test_setup_timeout_while_connecting_fails_the_call() -> None:
    call = caller_at(S.CONNECTING)
    assert call.tick(T0 + SETUP_TIMEOUT_MS - 1) == []
    assert call.tick(T0 + SETUP_TIMEOUT_MS) == [
        SendSignal(BOB, CallHangup(CID)),
        StopMedia(CID),
        Ended(CID, BOB, EndReason.FAILED),
    ]


def test_a_send_refused_for_identity_ends_a_live_call() -> None:
    call = caller_at(S.ACTIVE)
    assert call.send_failed(T0 + 1, untrusted=True) == [
        StopMedia(CID),
        Ended(CID, BOB, EndReason.UNTRUSTED_IDENTITY),
    ]


def test_an_offer_that_cannot_be_sent_is_offline() -> None:
    call, _ = _dial()
    assert call.send_failed(T0 + 1, untrusted=False) == [Ended(CID, BOB, EndReason.OFFLINE)]


# -- callee -------------------------------------------------------------------------------


def test_an_offer_rings_and_tells_the_caller() -> None:
    call, events = _incoming(offer(video=True))
    assert events == [
        SendSignal(ALICE, CallRinging(CID)),
        Ringing(CID, ALICE, Role.CALLEE, True),
    ]
    assert call.state is S.RINGING
    assert call.role is Role.CALLEE
    assert call.video
    assert call.deadline_ms == T0 + 45_000


def test_callee_happy_path_events() -> None:
    call, _ = _incoming()
    assert call.accept(T0 + 3_000) == [AllocateLeg(CID)]
    assert call.state is S.ANSWERING
    assert call.deadline_ms == T0 + 3_000 + SETUP_TIMEOUT_MS
    events = call.leg_ready(LEG, T0 + 3_050)
    assert events == [
        SendSignal(ALICE, CallAnswer(CID, LEG)),
        StartMedia(CID, CallSecret(SECRET), LEG, Direction.CALLEE_TO_CALLER, False),
        Answered(CID, ALICE),
    ]
    assert call.state is S.ACTIVE
    assert call.leg == LEG
    assert call.receive(ALICE, CallHangup(CID), T0 + 9_000) == [
        StopMedia(CID),
        Ended(CID, ALICE, EndReason.HANGUP),
    ]


def test_callee_ring_timeout_exactly_at_45_s() -> None:
    call, _ = _incoming()
    assert call.tick(T0 + 44_999) == []
    assert call.tick(T0 + 45_000) == [Ended(CID, ALICE, EndReason.MISSED)]


def test_an_offer_that_arrives_late_rings_only_until_it_expires() -> None:
    call, _ = _incoming(offer(sent=T0), now=T0 + 10_000)
    assert call.deadline_ms == T0 + 45_000
    assert call.tick(T0 + 44_999) == []
    assert call.tick(T0 + 45_000)[-1] == Ended(CID, ALICE, EndReason.MISSED)


@pytest.mark.parametrize("age", [45_000, 45_001, 3_600_000])
def test_an_expired_offer_is_a_missed_call_at_once(age: int) -> None:
    call, events = _incoming(offer(sent=T0), now=T0 + age)
    assert events == [Ended(CID, ALICE, EndReason.MISSED)]
    assert call.state is S.ENDED


def test_a_caller_clock_ahead_cannot_ring_longer_than_the_span() -> None:
    o = offer(sent=T0 + 600_000)
    assert ring_deadline(o, T0, CONFIG) == T0 + 45_000


def test_the_callee_ring_timeout_caps_the_offer_span() -> None:
    o = offer(ring_ms=120_000)
    assert ring_deadline(o, T0, CONFIG) == T0 + 45_000
    assert ring_deadline(o, T0, CallConfig(ring_timeout_ms=200_000)) == T0 + 120_000
    assert ring_deadline(offer(ring_ms=20_000), T0, CONFIG) == T0 + 20_000


def test_an_offer_from_an_unaccepted_identity_is_refused_silently() -> None:
    call, events = _incoming(identity_accepted=False, busy=True)
    assert events == [Ended(CID, ALICE, EndReason.UNTRUSTED_IDENTITY)]
    assert call.state is S.ENDED


def test_an_offer_while_busy_answers_busy() -> None:
    _call, events = _incoming(busy=True)
    assert events == [SendSignal(ALICE, CallBusy(CID)), Ended(CID, ALICE, EndReason.BUSY)]


def test_declining_rejects() -> None:
    call, _ = _incoming()
    assert call.decline(T0 + 1) == [
        SendSignal(ALICE, CallReject(CID, RejectReason.DECLINED)),
        Ended(CID, ALICE, EndReason.REJECTED),
    ]


def test_the_caller_giving_up_is_a_missed_call() -> None:
    call, _ = _incoming()
    assert call.receive(ALICE, CallHangup(CID), T0 + 5) == [Ended(CID, ALICE, EndReason.MISSED)]


def test_no_leg_from_the_node_rejects_as_unavailable() -> None:
    call = callee_at(S.ANSWERING)
    assert call.leg_failed(T0 + 1) == [
        SendSignal(ALICE, CallReject(CID, RejectReason.UNAVAILABLE)),
        Ended(CID, ALICE, EndReason.FAILED),
    ]
    slow = callee_at(S.ANSWERING)
    assert slow.tick(T0 + SETUP_TIMEOUT_MS)[-1] == Ended(CID, ALICE, EndReason.FAILED)


# -- ignored input ------------------------------------------------------------------------


def test_signals_from_anyone_but_the_peer_are_ignored() -> None:
    call, _ = _dial()
    assert call.receive(MALLORY, CallAnswer(CID, LEG), T0 + 1) == []
    assert call.receive(MALLORY, CallHangup(CID), T0 + 2) == []
    assert call.receive("BOB@b.example", CallHangup(CID), T0 + 3) == []
    assert call.state is S.DIALING
    assert call.ignored[IgnoreReason.WRONG_SENDER] == 3


def test_the_peer_domain_compares_in_any_case() -> None:
    call, _ = _dial()
    assert call.receive("bob@B.Example", CallRinging(CID), T0 + 1) != []
    assert same_address("bob@b.example", "bob@B.EXAMPLE")
    assert not same_address("bob@b.example", "Bob@b.example")
    assert not same_address("bob@b.example", "bob@c.example")


def test_duplicates_and_reordering_are_ignored_and_counted() -> None:
    call, _ = _dial()
    call.receive(BOB, CallAnswer(CID, LEG), T0 + 10)  # the answer overtook the ringing
    assert call.state is S.CONNECTING
    assert call.receive(BOB, CallRinging(CID), T0 + 11) == []
    assert call.receive(BOB, CallAnswer(CID, LEG), T0 + 12) == []
    assert call.receive(BOB, offer(), T0 + 13) == []
    assert call.state is S.CONNECTING
    assert call.ignored == {IgnoreReason.UNEXPECTED: 2, IgnoreReason.DUPLICATE: 1}
    call.hangup(T0 + 20)
    assert call.receive(BOB, CallHangup(CID), T0 + 21) == []
    assert call.hangup(T0 + 22) == []
    assert call.ignored[IgnoreReason.LATE] == 2


def test_key_updates_only_move_forward() -> None:
    call = caller_at(S.ACTIVE)
    assert call.receive(BOB, CallKeyUpdate(CID, 1), T0 + 1) == [PeerKeyEpoch(CID, 1)]
    assert call.receive(BOB, CallKeyUpdate(CID, 1), T0 + 2) == []
    assert call.receive(BOB, CallKeyUpdate(CID, 0), T0 + 3) == []
    assert call.receive(BOB, CallKeyUpdate(CID, 4), T0 + 4) == [PeerKeyEpoch(CID, 4)]
    assert call.ignored[IgnoreReason.STALE_EPOCH] == 2
    assert call.rekey(0, T0 + 5) == []
    assert call.rekey(1, T0 + 6) == [SendSignal(BOB, CallKeyUpdate(CID, 1))]
    assert call.state is S.ACTIVE


def test_a_key_update_while_connecting_does_not_make_the_call_active() -> None:
    call = caller_at(S.CONNECTING)
    assert call.receive(BOB, CallKeyUpdate(CID, 1), T0 + 1) == [PeerKeyEpoch(CID, 1)]
    assert call.state is S.CONNECTING


def test_config_is_checked() -> None:
    with pytest.raises(ValueError, match="positive"):
        CallConfig(ring_timeout_ms=0)
    with pytest.raises(ValueError, match="positive"):
        CallConfig(setup_timeout_ms=-1)


def test_a_signal_of_another_call_is_not_taken() -> None:
    call, _ = _dial()
    assert call.receive(BOB, CallHangup(b"\x02" * 16), T0 + 1) == []
    assert call.state is S.DIALING
    assert call.ignored[IgnoreReason.UNKNOWN_CALL] == 1
