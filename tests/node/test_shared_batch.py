"""A run of SendShared read together (Session.receive_many, Relay.send_shared_many): one
commit, each frame answered in order by its own SentShared or Error."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from node import errors
from node.relay import DUPLICATE, Relay
from node.session import Session
from node.store.sqlite import SqliteStore
from tests.node.harness import (
    Clock,
    Device,
    call,
    eid,
    enroll,
    make_config,
    make_relay,
    server_keys,
    token_for,
)
from wire import decode, encode
from wire.relay import (
    Deliver,
    Error,
    Ok,
    Send,
    SendShared,
    Sent,
    SentShared,
    SetDeliveryToken,
    SetIntroductions,
    SharedRecipient,
)


class World:
    """alice (the uploader) and three recipients with delivery tokens, all logged in."""

    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        self.alice = Device.create("alice")
        self.recipients = [Device.create(n) for n in ("bob", "carol", "dave")]
        self.sessions: list[Session] = []
        self.tokens: list[bytes] = []
        self.a_session: Session | None = None

    async def start(self) -> None:
        self.a_session = await enroll(self.relay, self.alice)
        for device in self.recipients:
            session = await enroll(self.relay, device)
            token, verifier = token_for(device)
            assert await call(session, SetDeliveryToken(7, verifier)) == [Ok(7)]
            while await session.next_push():  # drain the catch-up
                pass
            self.sessions.append(session)
            self.tokens.append(token)

    def shared(self, n: int, body: bytes = b"", *, intro: bool = False, e: int = 0) -> SendShared:
        recipients = tuple(
            SharedRecipient(d.mailbox, None if intro else t)
            for d, t in zip(self.recipients, self.tokens, strict=True)
        )
        return SendShared(n, eid(e or n), 60, recipients, body or b"body %d" % n)

    def send(self, n: int) -> Send:
        bob, token = self.recipients[0], self.tokens[0]
        return Send(n, bob.mailbox, eid(n), token, 60, b"send %d" % n)

    async def run(self, frames: Sequence[object]) -> list[object]:
        assert self.a_session is not None
        replies = await self.a_session.receive_many([encode(f) for f in frames])
        return [decode(encode(r)) for r in replies]


async def world(relay: Relay | None = None) -> World:
    w = World(relay or make_relay())
    await w.start()
    return w


async def test_a_run_is_answered_in_order_and_delivered_in_one_deliver() -> None:
    w = await world()
    frames = [w.shared(n) for n in (1, 2, 3, 4)]
    replies = await w.run(frames)
    assert replies == [SentShared(n, eid(n), ("", "", "")) for n in (1, 2, 3, 4)]
    for session in w.sessions:
        pushed = await session.next_push()
        assert len(pushed) == 1
        (deliver,) = pushed
        assert isinstance(deliver, Deliver)
        assert [e.eid for e in deliver.envelopes] == [eid(n) for n in (1, 2, 3, 4)]
        assert [e.body for e in deliver.envelopes] == [f.body for f in frames]
        assert await session.next_push() == []


async def test_with_sqlite_the_run_is_one_writer_batch(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / "db.sqlite")
    try:
        config = make_config()
        relay = Relay(config=config, store=store, keys=server_keys(config.suite), clock=Clock())
        w = await world(relay)
        before = (store.writer.batches, store.writer.ops)
        replies = await w.run([w.shared(n) for n in (1, 2, 3, 4)])
        assert replies == [SentShared(n, eid(n), ("", "", "")) for n in (1, 2, 3, 4)]
        assert store.writer.batches - before[0] == 1
        assert store.writer.ops - before[1] == 1
        for session in w.sessions:
            (deliver,) = await session.next_push()
            assert isinstance(deliver, Deliver)
            assert [e.eid for e in deliver.envelopes] == [eid(n) for n in (1, 2, 3, 4)]
    finally:
        await store.aclose()


async def _middle_refused(w: World, replies: Sequence[object]) -> Error:
    """The second of three uploads was refused (its Error, returned); the first and third
    were stored, and every recipient gets exactly those two."""
    assert replies[0] == SentShared(1, eid(1), ("", "", ""))
    assert isinstance(replies[1], Error)
    assert replies[1].id == 2
    assert replies[2] == SentShared(3, eid(3), ("", "", ""))
    for session in w.sessions:
        (deliver,) = await session.next_push()
        assert isinstance(deliver, Deliver)
        assert [e.eid for e in deliver.envelopes] == [eid(1), eid(3)]
    return replies[1]


async def test_a_too_large_frame_in_the_middle_is_refused_alone() -> None:
    w = await world(make_relay(max_envelope_bytes=1024))
    frames = [w.shared(1), w.shared(2, b"x" * 1025), w.shared(3)]
    error = await _middle_refused(w, await w.run(frames))
    assert error.code == errors.SEND_TOO_LARGE


async def test_an_introduction_over_the_limit_is_refused_alone() -> None:
    w = await world(make_relay(introductions_per_minute=1))
    for session in w.sessions:
        assert await call(session, SetIntroductions(8, True)) == [Ok(8)]
    frames = [w.shared(1, intro=True), w.shared(2, intro=True), w.shared(3)]
    error = await _middle_refused(w, await w.run(frames))
    assert error.code == errors.LIMIT_RATE
    assert error.retry_after > 0


async def test_a_mixed_run_is_answered_frame_by_frame_in_order() -> None:
    w = await world()
    replies = await w.run([w.send(1), w.shared(2), w.shared(3), w.send(4)])
    assert replies == [
        Sent(1, eid(1), False),
        SentShared(2, eid(2), ("", "", "")),
        SentShared(3, eid(3), ("", "", "")),
        Sent(4, eid(4), False),
    ]
    bob_eids: list[bytes] = []
    while frames := await w.sessions[0].next_push():
        bob_eids += [e.eid for f in frames if isinstance(f, Deliver) for e in f.envelopes]
    assert bob_eids == [eid(1), eid(2), eid(3), eid(4)]


async def test_a_duplicate_in_the_run_is_reported_as_send_shared_would() -> None:
    w = await world()
    replies = await w.run([w.shared(1), w.shared(2), w.shared(3, e=1)])
    dup = (DUPLICATE, DUPLICATE, DUPLICATE)
    assert replies == [
        SentShared(1, eid(1), ("", "", "")),
        SentShared(2, eid(2), ("", "", "")),
        SentShared(3, eid(1), dup),
    ]
    # the same upload on its own (send_shared) answers the same way
    assert w.a_session is not None
    assert await call(w.a_session, w.shared(4, e=1)) == [SentShared(4, eid(1), dup)]
    for session in w.sessions:
        (deliver,) = await session.next_push()
        assert isinstance(deliver, Deliver)
        assert [e.eid for e in deliver.envelopes] == [eid(1), eid(2)]
        assert [e.body for e in deliver.envelopes] == [b"body 1", b"body 2"]


async def test_a_shared_introduction_carries_the_senders_address() -> None:
    w = await world()
    for session in w.sessions:
        assert await call(session, SetIntroductions(8, True)) == [Ok(8)]
    assert await w.run([w.shared(1, intro=True), w.shared(2, intro=True)]) == [
        SentShared(n, eid(n), ("", "", "")) for n in (1, 2)
    ]
    for session in w.sessions:
        (deliver,) = await session.next_push()
        assert isinstance(deliver, Deliver)
        assert [e.sender for e in deliver.envelopes] == [w.alice.address] * 2
