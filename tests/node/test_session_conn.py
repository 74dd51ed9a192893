"""node.session driving node.conn: the states a Session reports, closes that arrive
while a turn is answered, which close code wins, and a turn that crosses the flood
threshold (answered up to that frame, then only the close)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node import errors
from node import session as session_module
from node.conn.core import Close
from node.conn.state import CLOSE_GOING_AWAY, ConnState, Event
from node.relay import Relay
from node.session import CLOSE_POLICY, CLOSE_SUPERSEDED, Session
from tests.node.harness import PEER, Device, call, eid, enroll, make_relay, token_for
from wire import decode, encode
from wire.relay import (
    Deliver,
    Drained,
    Error,
    Ok,
    Ping,
    Pong,
    Send,
    SendShared,
    Sent,
    SentShared,
    SetDeliveryToken,
    SharedRecipient,
)


async def test_a_session_walks_the_table() -> None:
    relay = make_relay()
    session = Session(relay, PEER)
    session.hello()
    assert session.state is ConnState.AWAIT_LOGIN
    assert await call(session, Ping(1)) == [Pong(1, relay.now_ms())]
    assert session.state is ConnState.AWAIT_LOGIN  # a Ping spends nothing
    enrolled = await enroll(relay, Device.create("alice"))
    assert enrolled.state is ConnState.AUTHENTICATED
    enrolled.supersede()
    assert enrolled.state is ConnState.CLOSING
    assert enrolled.close_due() == Close(CLOSE_SUPERSEDED, Event.SUPERSEDED)
    enrolled.closed()
    assert enrolled.state is ConnState.CLOSED
    assert enrolled.close_due() is None


async def test_going_away_stops_pushes_and_asks_1001() -> None:
    relay = make_relay()
    session = await enroll(relay, Device.create("alice"))
    session.going_away()
    assert session.close_code == CLOSE_GOING_AWAY
    assert await session.next_push() == []


async def test_pushes_start_with_the_catch_up() -> None:
    relay = make_relay()
    session = await enroll(relay, Device.create("alice"))
    assert await session.next_push() == [Drained(0)]
    assert await session.next_push() == []


async def test_messages_after_a_close_mid_turn_are_not_answered() -> None:
    """A push task may close the socket while a turn is answered: the rest of the turn
    is dropped (nothing could be sent), never fed to the closed core."""
    relay = make_relay()
    session = await enroll(relay, Device.create("alice"))
    session.closed()
    assert await session.receive_many([encode(Ping(n)) for n in (1, 2)]) == []


async def test_a_flood_close_keeps_its_code() -> None:
    """ERROR is final: a supersede or a drain after a flood does not change the 1008."""
    relay = make_relay(flood_close_after=3)
    session = await enroll(relay, Device.create("alice"))
    for _ in range(3):
        await session.receive(b"\xc1")
    assert session.state is ConnState.ERROR
    session.supersede()
    session.going_away()
    assert session.close_code == CLOSE_POLICY
    assert session.state is ConnState.ERROR


async def test_a_drain_after_a_supersede_asks_1001() -> None:
    """Fault-free closes: the last one asked for before the close is sent wins (as the
    node always did)."""
    relay = make_relay()
    session = await enroll(relay, Device.create("alice"))
    session.supersede()
    session.going_away()
    assert session.close_code == CLOSE_GOING_AWAY


# --- a flood crossed within one turn (issue 16: after ERROR only the close) ---------------

FLOOD_AFTER: Final = 4
JUNK: Final = b"\xc1"  # never valid msgpack: proto.malformed, a strike


@dataclass
class Turn:
    """alice (logged in, the flooder) and bob (a delivery token set), on a relay that
    closes after ``FLOOD_AFTER`` refusals and never rate-limits these few frames."""

    relay: Relay
    alice: Session
    bob: Device
    b_session: Session
    token: bytes
    store_calls: list[int] = field(default_factory=list)

    def send(self, n: int) -> Send:
        return Send(n, self.bob.mailbox, eid(n), self.token, 60, b"send %d" % n)

    def shared(self, n: int) -> SendShared:
        recipients = (SharedRecipient(self.bob.mailbox, self.token),)
        return SendShared(n, eid(n), 60, recipients, b"shared %d" % n)

    async def run(self, frames: Sequence[object]) -> list[object]:
        data = [f if isinstance(f, bytes) else encode(f) for f in frames]
        return [decode(encode(r)) for r in await self.alice.receive_many(data)]

    async def stored(self) -> list[bytes]:
        out: list[bytes] = []
        while pushed := await self.b_session.next_push():
            out += [e.eid for f in pushed if isinstance(f, Deliver) for e in f.envelopes]
        return out


async def turn_world(monkeypatch: pytest.MonkeyPatch | None = None) -> Turn:
    relay = make_relay(flood_close_after=FLOOD_AFTER)
    alice, bob = Device.create("alice"), Device.create("bob")
    a_session, b_session = await enroll(relay, alice), await enroll(relay, bob)
    token, verifier = token_for(bob)
    assert await call(b_session, SetDeliveryToken(7, verifier)) == [Ok(7)]
    world = Turn(relay, a_session, bob, b_session, token)
    assert await world.stored() == []
    if monkeypatch is not None:  # count the store calls of runs (each one commit)
        sends, many = session_module.store_sends, relay.send_shared_many

        async def store_sends(r: Relay, run: list[Send]) -> object:
            world.store_calls.append(len(run))
            return await sends(r, run)

        async def send_shared_many(run: list[SendShared], sender: str | None) -> object:
            world.store_calls.append(len(run))
            return await many(run, sender)

        monkeypatch.setattr(session_module, "store_sends", store_sends)
        monkeypatch.setattr(relay, "send_shared_many", send_shared_many)
    return world


def malformed(n: int = 1) -> list[object]:
    return [Error(0, errors.PROTO_MALFORMED, "undecodable frame (wire.malformed)", 0)] * n


async def test_a_run_before_the_flood_is_stored_in_one_commit_and_answered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Sends, then the flood, then more: the Sends before the threshold are stored in one
    commit and answered, the refusals up to the threshold answered, the rest dropped
    (the later Sends are not stored), and the 1008 close is due."""
    w = await turn_world(monkeypatch)
    frames = [w.send(1), w.send(2), *[JUNK] * FLOOD_AFTER, w.send(3), w.send(4), Ping(5), JUNK]
    replies = await w.run(frames)
    assert replies == [Sent(1, eid(1), False), Sent(2, eid(2), False), *malformed(FLOOD_AFTER)]
    assert w.store_calls == [2]
    assert w.alice.close_due() == Close(CLOSE_POLICY, Event.FLOOD)
    assert await w.stored() == [eid(1), eid(2)]
    assert w.relay.metrics.rejected[errors.PROTO_MALFORMED] == FLOOD_AFTER


async def test_a_run_cut_by_the_flooding_frame_is_still_stored_and_answered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The frame that crosses the threshold ends a run of Sends gathered before it: that
    run is stored (one commit) and each Send answered before the refusal, although the
    link is already in ERROR when the run goes to the store."""
    w = await turn_world(monkeypatch)
    frames = [*[JUNK] * (FLOOD_AFTER - 1), w.send(1), w.send(2), JUNK, w.send(3)]
    replies = await w.run(frames)
    assert replies == [
        *malformed(FLOOD_AFTER - 1),
        Sent(1, eid(1), False),
        Sent(2, eid(2), False),
        *malformed(),
    ]
    assert w.store_calls == [2]
    assert w.alice.state is ConnState.ERROR
    assert await w.stored() == [eid(1), eid(2)]


async def test_a_shared_run_cut_by_the_flooding_frame_is_stored_and_answered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    w = await turn_world(monkeypatch)
    frames = [*[JUNK] * (FLOOD_AFTER - 1), w.shared(1), w.shared(2), JUNK, w.shared(3), w.send(4)]
    replies = await w.run(frames)
    assert replies == [
        *malformed(FLOOD_AFTER - 1),
        SentShared(1, eid(1), ("",)),
        SentShared(2, eid(2), ("",)),
        *malformed(),
    ]
    assert w.store_calls == [2]
    assert w.alice.close_due() == Close(CLOSE_POLICY, Event.FLOOD)
    assert await w.stored() == [eid(1), eid(2)]


async def test_nothing_is_answered_in_a_turn_after_the_flood() -> None:
    """A turn that starts with the link already in ERROR answers nothing (the shell
    closes before reading another; the core drops what it is handed anyway)."""
    w = await turn_world()
    assert await w.run([JUNK] * FLOOD_AFTER) == malformed(FLOOD_AFTER)
    assert await w.run([Ping(1), w.send(2), JUNK]) == []
    assert await w.alice.receive(encode(Ping(3))) == []
    assert w.alice.refuse_text() == []
    assert await w.stored() == []
    assert w.relay.metrics.rejected[errors.PROTO_MALFORMED] == FLOOD_AFTER


KINDS: Final = st.lists(
    st.sampled_from(["send", "ping", "junk", "junk"]), min_size=FLOOD_AFTER, max_size=16
)
"""Turns that mostly cross the threshold (half the frames refused), at any frame."""


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kinds=KINDS)
def test_a_turn_of_n_crossing_at_k_answers_exactly_the_first_k(kinds: list[str]) -> None:
    """Any turn: if its k-th message is the ``flood_close_after``-th refusal, exactly the
    first k are answered, in order, and the close is due; else all N are answered."""
    junk = [i for i, kind in enumerate(kinds) if kind == "junk"]
    k = junk[FLOOD_AFTER - 1] + 1 if len(junk) >= FLOOD_AFTER else len(kinds)

    async def main() -> None:
        w = await turn_world()
        frames: list[object] = []
        for n, kind in enumerate(kinds, start=1):
            frames.append(w.send(n) if kind == "send" else Ping(n) if kind == "ping" else JUNK)
        replies = await w.run(frames)
        assert [getattr(r, "id", None) for r in replies] == [
            0 if kind == "junk" else n for n, kind in enumerate(kinds[:k], start=1)
        ]
        sent = [eid(n) for n, kind in enumerate(kinds[:k], start=1) if kind == "send"]
        assert [r.eid for r in replies if isinstance(r, Sent)] == sent
        assert await w.stored() == sent
        flooded = len(junk) >= FLOOD_AFTER
        assert w.alice.close_code == (CLOSE_POLICY if flooded else None)

    trio.run(main)
