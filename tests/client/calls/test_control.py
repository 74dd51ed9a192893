"""A whole call through the wiring (client/calls/control.py): two devices' signalling on an
in-memory network, their legs on an in-memory node, real media (the fixture, SFrame) for a
second; QUIC that never connects falls back to the WebSocket; a hang-up ends the peer's
media early with its summary; failures end with their codes and no summary."""

from __future__ import annotations

from typing import Any

import trio
import trio.testing

from client.calls.callnet import CallNet
from client.calls.control import CallOutcome, MediaOptions, answer_call, place_call
from client.calls.signal_events import EndReason, IgnoreReason
from tests.client.calls.callkit import ALICE, BOB, MemoryLegs, MemoryNode, Wire, make_net
from wire.calls import LegRef
from wire.relay_calls import LegGrant

SECONDS = 1.0
LIMIT = 15.0
SUMMARY_KEYS = {
    "frames_sent",
    "frames_received",
    "frames_lost",
    "frames_late",
    "decrypt_failures",
    "latency_ms_p50",
    "latency_ms_p99",
    "jitter_ms",
    "transport",
    "seconds",
}


class Lines(list[dict[str, Any]]):
    def events(self) -> list[str]:
        return [line["event"] for line in self]


async def _call(
    caller_options: MediaOptions,
    callee_options: MediaOptions,
    *,
    caller_legs: MemoryLegs | None = None,
) -> tuple[CallOutcome, CallOutcome | None, Lines, Lines, MemoryNode]:
    wire, node = Wire(), MemoryNode()
    alice, bob = make_net(wire, ALICE), make_net(wire, BOB)
    a_legs = caller_legs or MemoryLegs(node)
    a_legs.node = node
    out: dict[str, Any] = {}
    a_lines, b_lines = Lines(), Lines()
    answered = trio.Event()

    async def callee() -> None:
        legs = MemoryLegs(node)
        out["b"] = await answer_call(
            bob, legs, wait=LIMIT, options=callee_options, emit=b_lines.append
        )
        answered.set()

    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            await nursery.start(alice.run)
            await nursery.start(bob.run)
            nursery.start_soon(callee)
            await trio.sleep(0.05)
            out["a"] = await place_call(
                alice, a_legs, BOB, video=True, options=caller_options, emit=a_lines.append
            )
            await answered.wait()
            nursery.cancel_scope.cancel()
    return out["a"], out["b"], a_lines, b_lines, node


def _check_media(outcome: CallOutcome | None) -> dict[str, object]:
    assert outcome is not None
    assert outcome.reason is EndReason.HANGUP, outcome
    summary = outcome.summary
    assert summary is not None
    assert set(summary) >= SUMMARY_KEYS
    frames_received = summary["frames_received"]
    assert isinstance(frames_received, int)
    assert frames_received > 0
    assert summary["decrypt_failures"] == 0
    return summary


async def test_a_call_rings_is_answered_plays_media_and_hangs_up() -> None:
    options = MediaOptions(seconds=SECONDS)
    caller, callee, a_lines, b_lines, node = await _call(options, options)
    assert _check_media(caller)["transport"] == "quic"
    assert _check_media(callee)["transport"] == "quic"
    assert a_lines.events() == ["ringing", "answered", "ended"]
    assert b_lines.events() == ["ringing", "answered", "ended"]
    assert a_lines[0]["to"] == BOB
    assert b_lines[0]["from"] == ALICE
    assert a_lines[-1]["reason"] == b_lines[-1]["reason"] == "call.hangup"
    assert len(set(node.hung_up)) == 2  # both legs released
    # The callee bound before answering and sent only once the caller's media came:
    assert caller.summary is not None
    assert callee.summary is not None
    assert caller.summary["frames_lost"] == callee.summary["frames_lost"] == 0
    assert sum(end.unbridged for end in node.legs.values()) == 0


async def test_quic_that_does_not_connect_falls_back_to_the_websocket() -> None:
    legs = MemoryLegs(MemoryNode(), quic_works=False)
    options = MediaOptions(seconds=SECONDS, quic_timeout=0.2)
    caller, callee, _, _, _ = await _call(options, MediaOptions(seconds=SECONDS), caller_legs=legs)
    assert _check_media(caller)["transport"] == "websocket"
    assert legs.kinds == ["websocket"]
    _check_media(callee)


async def test_the_websocket_when_asked_for() -> None:
    legs = MemoryLegs(MemoryNode())
    options = MediaOptions(seconds=SECONDS, transport="websocket")
    caller, _, _, _, _ = await _call(options, MediaOptions(seconds=SECONDS), caller_legs=legs)
    assert _check_media(caller)["transport"] == "websocket"
    assert legs.kinds == ["websocket"]


async def test_a_hang_up_ends_the_peers_media_early_with_its_summary() -> None:
    long, short = MediaOptions(seconds=8 * SECONDS), MediaOptions(seconds=SECONDS)
    start = trio.current_time()
    caller, callee, _, _, _ = await _call(long, short)
    assert trio.current_time() - start < 5 * SECONDS
    summary = _check_media(caller)
    seconds = summary["seconds"]
    assert isinstance(seconds, float)
    assert seconds < 5 * SECONDS
    _check_media(callee)


async def test_a_failed_call_has_its_code_and_no_summary() -> None:
    wire = Wire(offline={BOB})
    alice = make_net(wire, ALICE, ring_ms=200)
    lines = Lines()
    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            await nursery.start(alice.run)
            outcome = await place_call(
                alice,
                MemoryLegs(MemoryNode()),
                BOB,
                video=False,
                options=MediaOptions(seconds=SECONDS),
                emit=lines.append,
            )
            nursery.cancel_scope.cancel()
    assert outcome.reason is EndReason.OFFLINE
    assert outcome.summary is None
    assert not outcome.ok
    ended = {"event": "ended", "call": outcome.call_id.hex(), "peer": BOB, "reason": "call.offline"}
    assert lines == [ended]


async def test_answer_returns_none_when_nothing_rings() -> None:
    wire = Wire()
    bob = make_net(wire, BOB)
    outcome = await answer_call(
        bob, MemoryLegs(MemoryNode()), wait=0.1, options=MediaOptions(seconds=1), emit=print
    )
    assert outcome is None


async def test_calling_each_other_at_once_ends_in_one_call() -> None:
    """Glare: both dial before either hears the other; the call with the smaller id goes
    on, the other side follows it as the callee, and both get media."""
    wire, node = Wire(), MemoryNode()
    alice, bob = make_net(wire, ALICE), make_net(wire, BOB)
    out: dict[str, CallOutcome] = {}
    options = MediaOptions(seconds=SECONDS)
    both = trio.Event()

    async def dial(net: CallNet, peer: str, key: str) -> None:
        legs = MemoryLegs(node)
        out[key] = await place_call(net, legs, peer, video=False, options=options, emit=print)
        if len(out) == 2:
            both.set()

    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(dial, alice, BOB, "a")
            nursery.start_soon(dial, bob, ALICE, "b")
            await trio.testing.wait_all_tasks_blocked()  # both offers sent, none read yet
            nursery.start_soon(alice.run)
            nursery.start_soon(bob.run)
            await both.wait()
            nursery.cancel_scope.cancel()
    assert out["a"].call_id == out["b"].call_id
    glares = [net.registry.ignored[IgnoreReason.GLARE] for net in (alice, bob)]
    assert sorted(glares) == [0, 1]  # the winner ignored the loser's offer
    _check_media(out["a"])
    _check_media(out["b"])


class StuckBridge(MemoryLegs):
    """A node that never answers the bridge request."""

    async def leg_bridge(self, ref: LegRef) -> LegGrant:
        await trio.sleep_forever()
        raise AssertionError("unreachable")


async def test_a_bridge_that_never_comes_fails_the_call_at_the_setup_timeout() -> None:
    wire, node = Wire(), MemoryNode()
    alice, bob = make_net(wire, ALICE, setup_ms=300), make_net(wire, BOB)
    out: dict[str, CallOutcome | None] = {}
    done = trio.Event()
    options = MediaOptions(seconds=SECONDS)

    async def callee() -> None:
        out["b"] = await answer_call(bob, MemoryLegs(node), wait=LIMIT, options=options, emit=print)
        done.set()

    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            await nursery.start(alice.run)
            await nursery.start(bob.run)
            nursery.start_soon(callee)
            caller = await place_call(
                alice, StuckBridge(node), BOB, video=False, options=options, emit=print
            )
            await done.wait()
            nursery.cancel_scope.cancel()
    assert caller.reason is EndReason.FAILED
    assert caller.summary is None
    callee_outcome = out["b"]
    assert callee_outcome is not None
    assert callee_outcome.reason is EndReason.HANGUP  # the caller's hang-up ended its side
    assert callee_outcome.summary is None
    assert len(set(node.hung_up)) == 1  # the callee's leg was released
