"""node.session driving node.conn: the states a Session reports, closes that arrive
while a turn is answered, and which close code wins."""

from __future__ import annotations

from node.conn.core import Close
from node.conn.state import CLOSE_GOING_AWAY, ConnState, Event
from node.session import CLOSE_POLICY, CLOSE_SUPERSEDED, Session
from tests.node.harness import PEER, Device, call, enroll, make_relay
from wire import encode
from wire.relay import Drained, Ping, Pong


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
