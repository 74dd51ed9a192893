"""SendBatch (node.batch) through the connection core, on a MemoryStore."""

from __future__ import annotations

import pytest

from node import errors
from node.relay import Relay
from node.session import Session
from node.store import StoreUnavailable
from tests.node.harness import PEER, Device, call, eid, enroll, make_relay, token_for
from wire import WireError, encode
from wire.errors import TOO_LARGE
from wire.relay import (
    MAX_BATCH,
    Deliver,
    Error,
    Ok,
    Ping,
    Send,
    SendBatch,
    Sent,
    SentBatch,
    SetDeliveryToken,
)


def send(to: Device, n: int, token: bytes | None, body: bytes = b"x" * 64) -> Send:
    return Send(id=n, mailbox=to.mailbox, eid=eid(n), token=token, ttl=60, body=body)


async def pushed_eids(session: Session) -> list[bytes]:
    out: list[bytes] = []
    while frames := await session.next_push():
        out += [e.eid for f in frames if isinstance(f, Deliver) for e in f.envelopes]
    return out


async def setup(relay: Relay) -> tuple[Session, Device, Session, bytes]:
    """alice's session, bob (with a delivery token) and his session, bob's token."""
    alice, bob = Device.create("alice"), Device.create("bob")
    a_session, b_session = await enroll(relay, alice), await enroll(relay, bob)
    token, verifier = token_for(bob)
    assert await call(b_session, SetDeliveryToken(7, verifier)) == [Ok(7)]
    await pushed_eids(b_session)
    return a_session, bob, b_session, token


async def test_each_send_is_answered_in_order_and_stored_in_order() -> None:
    relay = make_relay()
    a_session, bob, b_session, token = await setup(relay)
    assert await call(a_session, send(bob, 3, token)) == [Sent(3, eid(3), False)]
    batch = SendBatch(
        100,
        (
            send(bob, 1, token),
            send(bob, 2, b"\0" * 16),  # wrong token
            send(bob, 3, token),  # already stored
            send(bob, 4, token, body=b"x" * (relay.config.max_envelope_bytes + 1)),
            send(bob, 5, None),  # no token
            send(bob, 6, token),
        ),
    )
    (reply,) = await call(a_session, batch)
    assert isinstance(reply, SentBatch)
    assert reply.id == 100
    codes = [r.code if isinstance(r, Error) else r for r in reply.results]
    assert codes == [
        Sent(1, eid(1), False),
        errors.SEND_BAD_TOKEN,
        Sent(3, eid(3), True),
        errors.SEND_TOO_LARGE,
        errors.SEND_TOKEN_REQUIRED,
        Sent(6, eid(6), False),
    ]
    assert [r.id for r in reply.results] == [1, 2, 3, 4, 5, 6]
    assert await pushed_eids(b_session) == [eid(3), eid(1), eid(6)]
    assert relay.metrics.accepted == 3


async def test_a_batch_needs_authentication() -> None:
    relay = make_relay()
    bob = Device.create("bob")
    await enroll(relay, bob)
    session = Session(relay, PEER)
    session.hello()
    (reply,) = await call(session, SendBatch(9, (send(bob, 1, b"\1" * 16),)))
    assert isinstance(reply, Error)
    assert (reply.id, reply.code) == (9, errors.AUTH_REQUIRED)


async def test_every_send_of_a_batch_counts_against_the_rate_limit() -> None:
    relay = make_relay(rate_account_per_s=1.0, rate_account_burst=4)
    a_session, bob, _, token = await setup(relay)
    (reply,) = await call(a_session, SendBatch(50, tuple(send(bob, n, token) for n in range(1, 7))))
    assert isinstance(reply, SentBatch)
    # the frame took alice's first token, Sends 2-4 the other three, 5 and 6 find none
    assert [type(r).__name__ for r in reply.results] == ["Sent"] * 4 + ["Error"] * 2
    refused = [r for r in reply.results if isinstance(r, Error)]
    assert all(r.code == errors.LIMIT_RATE and r.retry_after > 0 for r in refused)
    assert isinstance((await call(a_session, Ping(51)))[0], Error)  # the bucket is empty


def test_a_batch_holds_at_most_max_batch_sends() -> None:
    bob = Device.create("bob")
    bob.mailbox = b"\1" * 16
    sends = tuple(send(bob, n, b"\2" * 16, b"") for n in range(MAX_BATCH + 1))
    with pytest.raises(WireError) as refused:
        SendBatch(1, sends)
    assert refused.value.code == TOO_LARGE
    with pytest.raises(WireError):
        SendBatch(1, ())


# --- messages read together (Session.receive_many) ----------------------------------------


async def test_messages_read_together_are_answered_in_order_one_by_one() -> None:
    relay = make_relay()
    a_session, bob, b_session, token = await setup(relay)
    frames = [
        send(bob, 1, token),
        send(bob, 2, token),
        Ping(3),
        send(bob, 4, b"\0" * 16),  # wrong token: refused, the others stored
        send(bob, 5, token),
        send(bob, 1, token),  # a retry of the first: a duplicate
    ]
    replies = await a_session.receive_many([encode(f) for f in frames] + [b"\xc1junk"])
    kinds = [r.code if isinstance(r, Error) else type(r).__name__ for r in replies]
    assert kinds == [
        "Sent",
        "Sent",
        "Pong",
        errors.SEND_BAD_TOKEN,
        "Sent",
        "Sent",
        "proto.malformed",
    ]
    assert [r.id for r in replies] == [1, 2, 3, 4, 5, 1, 0]
    assert [r.duplicate for r in replies if isinstance(r, Sent)] == [False, False, False, True]
    assert await pushed_eids(b_session) == [eid(1), eid(2), eid(5)]


async def test_messages_read_together_keep_their_rate_limit_and_ids() -> None:
    relay = make_relay(rate_account_per_s=1.0, rate_account_burst=2)
    a_session, bob, _, token = await setup(relay)
    replies = await a_session.receive_many([encode(send(bob, n, token)) for n in (1, 2, 3)])
    assert [type(r).__name__ for r in replies] == ["Sent", "Sent", "Error"]
    refused = replies[2]
    assert isinstance(refused, Error)
    assert (refused.id, refused.code) == (3, errors.LIMIT_RATE)


async def test_sends_read_together_before_authentication_are_refused() -> None:
    relay = make_relay()
    bob = Device.create("bob")
    await enroll(relay, bob)
    session = Session(relay, PEER)
    session.hello()
    replies = await session.receive_many([encode(send(bob, n, b"\1" * 16)) for n in (1, 2)])
    assert replies == [
        Error(1, errors.AUTH_REQUIRED, "authenticate first", 0),
        Error(2, errors.AUTH_REQUIRED, "authenticate first", 0),
    ]


async def test_a_store_that_does_not_answer_refuses_a_run_of_sends_with_its_code() -> None:
    """Reading a recipient's token verifier fails: every Send of the run is refused with
    ``store.unavailable`` (counted each), nothing is stored, the session goes on."""
    relay = make_relay()
    relay.intake.shared_store = True  # no cached verifiers: every check reads the store
    a_session, bob, b_session, token = await setup(relay)

    async def unavailable(address: str) -> bytes | None:
        raise StoreUnavailable("redis did not answer")

    working = relay.store.token_verifier
    relay.store.token_verifier = unavailable  # type: ignore[method-assign]
    frames = [encode(send(bob, n, token)) for n in (1, 2, 3)]
    answers = await a_session.receive_many(frames)
    assert [(a.id, a.code) for a in answers if isinstance(a, Error)] == [
        (n, "store.unavailable") for n in (1, 2, 3)
    ]
    assert relay.metrics.labeled["store_failures"] == {(("kind", "unavailable"),): 3}
    relay.store.token_verifier = working  # type: ignore[method-assign]
    assert await a_session.receive_many(frames) == [Sent(n, eid(n), False) for n in (1, 2, 3)]
    assert await pushed_eids(b_session) == [eid(1), eid(2), eid(3)]
