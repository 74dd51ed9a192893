"""The signalling shell (client/calls/callnet.py): notes in, signals out through the send
path, events to subscribers, timers on the client's clock; refusals end the call."""

from __future__ import annotations

import trio

from client.calls.signal import Call
from client.calls.signal_events import Ended, EndReason, Event, Ringing, Role
from tests.client.calls.callkit import ALICE, BOB, Wire, make_net
from wire.calls import CallHangup, CallOffer, CallRinging

LIMIT = 5.0
SHORT_RING_MS = 300


async def _until_ended(events: trio.MemoryReceiveChannel[Event]) -> list[Event]:
    seen: list[Event] = []
    with trio.fail_after(LIMIT):
        async for event in events:
            seen.append(event)
            if isinstance(event, Ended):
                return seen
    raise AssertionError("the channel ended first")


async def test_an_offer_rings_the_callee_and_the_caller_hears_it() -> None:
    wire = Wire()
    alice, bob = make_net(wire, ALICE), make_net(wire, BOB)
    a_events, b_events = alice.subscribe(), bob.subscribe()
    async with trio.open_nursery() as nursery:
        await nursery.start(alice.run)
        await nursery.start(bob.run)
        call = await alice.dial(BOB, video=False)
        with trio.fail_after(LIMIT):
            incoming = await b_events.receive()
            heard = await a_events.receive()
        assert isinstance(incoming, Ringing)
        assert (incoming.role, incoming.peer) == (Role.CALLEE, ALICE)
        assert incoming.call_id == call.call_id
        assert isinstance(heard, Ringing)
        assert heard.role is Role.CALLER
        await alice.act(call.call_id, Call.hangup)
        assert isinstance((await _until_ended(b_events))[-1], Ended)
        nursery.cancel_scope.cancel()
    kinds = [(src, type(signal)) for src, _, signal in wire.sent]
    assert kinds == [(ALICE, CallOffer), (BOB, CallRinging), (ALICE, CallHangup)]


async def test_a_callee_that_never_rings_is_offline() -> None:
    wire = Wire(offline={BOB})
    alice = make_net(wire, ALICE, ring_ms=SHORT_RING_MS)
    events = alice.subscribe()
    async with trio.open_nursery() as nursery:
        await nursery.start(alice.run)
        start = trio.current_time()
        await alice.dial(BOB, video=False)
        ended = (await _until_ended(events))[-1]
        assert trio.current_time() - start >= SHORT_RING_MS / 1000 * 0.9
        nursery.cancel_scope.cancel()
    assert isinstance(ended, Ended)
    assert ended.reason is EndReason.OFFLINE


async def test_a_callee_that_rings_but_never_answers_is_missed() -> None:
    wire = Wire()
    alice = make_net(wire, ALICE, ring_ms=SHORT_RING_MS)
    bob = make_net(wire, BOB)
    events, b_events = alice.subscribe(), bob.subscribe()
    async with trio.open_nursery() as nursery:
        await nursery.start(alice.run)
        await nursery.start(bob.run)
        await alice.dial(BOB, video=False)
        ended = (await _until_ended(events))[-1]
        b_ended = (await _until_ended(b_events))[-1]
        nursery.cancel_scope.cancel()
    assert isinstance(ended, Ended)
    assert ended.reason is EndReason.MISSED
    assert isinstance(b_ended, Ended)
    assert b_ended.reason is EndReason.MISSED  # the caller's hang-up (or its own ring) ended it


async def test_dialing_a_changed_identity_is_refused_without_sending() -> None:
    wire = Wire()
    alice = make_net(wire, ALICE, changed=frozenset({BOB}))
    make_net(wire, BOB)
    events = alice.subscribe()
    call = await alice.dial(BOB, video=False)
    assert not call.live
    ended = events.receive_nowait()
    assert isinstance(ended, Ended)
    assert ended.reason is EndReason.UNTRUSTED_IDENTITY
    assert wire.sent == []


async def test_an_offer_from_a_changed_identity_is_refused_by_the_callee() -> None:
    wire = Wire()
    alice = make_net(wire, ALICE)
    bob = make_net(wire, BOB, changed=frozenset({ALICE}))
    b_events = bob.subscribe()
    async with trio.open_nursery() as nursery:
        await nursery.start(bob.run)
        await alice.dial(BOB, video=False)
        (ended,) = await _until_ended(b_events)
        nursery.cancel_scope.cancel()
    assert isinstance(ended, Ended)
    assert ended.reason is EndReason.UNTRUSTED_IDENTITY
    assert [type(s) for src, _, s in wire.sent if src == BOB] == []  # it never rang


async def test_a_send_refused_for_an_unaccepted_identity_ends_the_call() -> None:
    """The send path refuses (the change became known after the dial's own check)."""
    wire = Wire(untrusted={BOB})
    alice = make_net(wire, ALICE)
    events = alice.subscribe()
    call = await alice.dial(BOB, video=False)
    ended = events.receive_nowait()
    assert isinstance(ended, Ended)
    assert ended.reason is EndReason.UNTRUSTED_IDENTITY
    assert call.reason is EndReason.UNTRUSTED_IDENTITY


async def test_an_offer_the_node_refuses_is_offline() -> None:
    wire = Wire(refuse={BOB})
    alice = make_net(wire, ALICE)
    make_net(wire, BOB)
    events = alice.subscribe()
    async with trio.open_nursery() as nursery:
        await nursery.start(alice.run)
        await alice.dial(BOB, video=False)
        ended = (await _until_ended(events))[-1]
        nursery.cancel_scope.cancel()
    assert isinstance(ended, Ended)
    assert ended.reason is EndReason.OFFLINE


async def test_signals_live_as_long_as_the_ring_and_at_least_the_minimum() -> None:
    wire = Wire()
    assert make_net(wire, ALICE).signal_ttl == 45
    assert make_net(wire, BOB, ring_ms=SHORT_RING_MS).signal_ttl == 30
