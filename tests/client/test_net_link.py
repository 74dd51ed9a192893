"""Connection, handshake and the reconnecting link over an in-memory transport."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from client.entropy import SYSTEM_ENTROPY
from client.errors import BadNodeUrl, NetworkError, Refused, ServerKeyError
from client.identity import Identity
from client.net import (
    AuthLogin,
    Backoff,
    Connection,
    Link,
    Push,
    RegisterLogin,
    client_url,
    read_hello,
    serving,
)
from client.outbox import Outbox, OutboxItem, OutboxPump
from client.store.memory import MemoryStore
from suites import get_suite, labels
from tests.client.netfakes import FakeNode, hello, transport_pair
from wire import decode, encode
from wire.relay import (
    PURPOSE_AUTH,
    PURPOSE_REGISTER,
    Ack,
    Acked,
    Auth,
    Authenticated,
    AuthPayload,
    Deliver,
    Drained,
    Envelope,
    Error,
    Ping,
    Pong,
    Send,
    Sent,
)

ADDRESS = "alice@example.test"


@pytest.fixture(scope="module")
def identity() -> Identity:
    return Identity.generate(get_suite("xwing"), SYSTEM_ENTROPY)


def test_client_url() -> None:
    assert client_url("http://127.0.0.1:8080") == "ws://127.0.0.1:8080/v1/client"
    assert client_url("https://relay.example/") == "wss://relay.example/v1/client"
    with pytest.raises(BadNodeUrl, match="node URL"):
        client_url("ftp://x")
    with pytest.raises(BadNodeUrl, match="http://"):
        client_url("localhost:8080")  # no scheme: the common mistake


def test_auth_signature_binds_purpose_server_nonce_address_device(identity: Identity) -> None:
    h = hello(nonce=b"\x07" * 32)
    frame = AuthLogin(identity, ADDRESS, 3).request(h)
    sig_suite = identity.suite.sig
    payload = AuthPayload(PURPOSE_AUTH, h.server, h.nonce, ADDRESS, 3)
    sig_suite.verify(identity.public.sig, encode(payload), frame.sig, labels.CTX_DEVICE_AUTH)
    for other in (
        AuthPayload(PURPOSE_REGISTER, h.server, h.nonce, ADDRESS, 3),
        AuthPayload(PURPOSE_AUTH, "other.test", h.nonce, ADDRESS, 3),
        AuthPayload(PURPOSE_AUTH, h.server, b"\x08" * 32, ADDRESS, 3),
        AuthPayload(PURPOSE_AUTH, h.server, h.nonce, ADDRESS, 4),
    ):
        with pytest.raises(Exception, match=r"(?i)signature|verify"):
            sig_suite.verify(identity.public.sig, encode(other), frame.sig, labels.CTX_DEVICE_AUTH)
    reg = RegisterLogin(identity, "alice", "code").request(h)
    payload = AuthPayload(PURPOSE_REGISTER, h.server, h.nonce, ADDRESS, 0)
    sig_suite.verify(identity.public.sig, encode(payload), reg.sig, labels.CTX_DEVICE_AUTH)


async def test_responses_matched_by_id_in_any_order() -> None:
    client_end, node_end = transport_pair()
    pushes_send, pushes = trio.open_memory_channel[Push](8)
    conn = Connection(client_end, hello(), pushes_send)
    results: dict[str, object] = {}

    async def ask(name: str) -> None:
        results[name] = await conn.request(Ping(id=0))

    async with serving(conn), trio.open_nursery() as nursery:
        nursery.start_soon(ask, "a")
        nursery.start_soon(ask, "b")
        first = decode(await node_end.receive(), Ping)
        second = decode(await node_end.receive(), Ping)
        assert first.id != second.id
        await node_end.send(encode(Pong(id=second.id, time=2)))
        await node_end.send(encode(Deliver(envelopes=())))
        await node_end.send(encode(Pong(id=first.id, time=1)))
    times = sorted(r.time for r in results.values())  # type: ignore[attr-defined]
    assert times == [1, 2]
    assert isinstance(pushes.receive_nowait(), Deliver)


async def test_error_frame_is_refused_with_code() -> None:
    client_end, node_end = transport_pair()
    send, _ = trio.open_memory_channel[Push](8)
    conn = Connection(client_end, hello(), send)
    async with serving(conn), trio.open_nursery() as nursery:

        async def node() -> None:
            req = decode(await node_end.receive(), Ping)
            await node_end.send(
                encode(Error(id=req.id, code="limit.rate", message="m", retry_after=7))
            )

        nursery.start_soon(node)
        with pytest.raises(Refused) as info:
            await conn.request(Ping(id=0))
    assert (info.value.node_code, info.value.retry_after) == ("limit.rate", 7)


async def test_broken_transport_fails_pending_and_later_requests() -> None:
    client_end, node_end = transport_pair()
    send, _ = trio.open_memory_channel[Push](8)
    conn = Connection(client_end, hello(), send)

    async def node() -> None:
        await node_end.receive()
        await node_end.aclose()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(node)
        async with serving(conn):
            with pytest.raises(NetworkError):
                await conn.request(Ping(id=0))
    assert conn.closed
    with pytest.raises(NetworkError):
        await conn.request(Ping(id=0))


async def test_garbage_frame_breaks_the_connection() -> None:
    client_end, node_end = transport_pair()
    send, _ = trio.open_memory_channel[Push](8)
    conn = Connection(client_end, hello(), send)
    async with serving(conn):
        await node_end.send(b"\xc1 not msgpack")
        with pytest.raises(NetworkError):
            await conn.request(Ping(id=0))


async def test_read_hello_refuses_other_frames() -> None:
    client_end, node_end = transport_pair()
    await node_end.send(encode(Pong(id=1, time=0)))
    with pytest.raises(NetworkError):
        await read_hello(client_end)


async def test_link_authenticates_and_reconnects(
    identity: Identity, autojump_clock: trio.testing.MockClock
) -> None:
    node = FakeNode()
    seen: list[object] = []

    async def on_connect(conn: Connection, response: object) -> None:
        seen.append(response)

    link = Link(
        node.connector,
        AuthLogin(identity, ADDRESS, 1),
        on_connect,
        expect_server="example.test",
        backoff=Backoff(base=1.0, cap=4.0),
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(link.run)
        assert link.connections == 1
        assert isinstance(await link.request(Ping(id=0)), Pong)
        node.refuse[Ping] = ("internal", 0)
        with pytest.raises(Refused):
            await link.request(Ping(id=0))
        node.refuse.clear()
        # The node drops the connection: the link comes back by itself.
        node.drop_after_sends = 0
        await _send_one(link)
        with trio.fail_after(30):
            assert isinstance(await link.request(Ping(id=0)), Pong)  # waits for the new one
        assert link.connections == 2
        nursery.cancel_scope.cancel()
    auths = [f for f in node.received if isinstance(f, Auth)]
    assert len(auths) == 2
    assert all(isinstance(r, Authenticated) for r in seen)
    assert len(seen) == 2


async def _send_one(link: Link) -> None:
    item = OutboxItem("bob@example.test", 1, b"\x02" * 16, b"\x03" * 16, b"\x04" * 16, 0, b"x", "")
    with pytest.raises(NetworkError):
        await link.request(item.request())


async def test_refused_login_is_not_retried(identity: Identity) -> None:
    node = FakeNode(refuse={Auth: ("auth.failed", 0)})

    async def on_connect(conn: Connection, response: object) -> None:
        raise AssertionError("never connected")

    link = Link(node.connector, AuthLogin(identity, ADDRESS, 1), on_connect)
    async with trio.open_nursery() as nursery:
        with pytest.raises(Refused, match=r"auth\.failed"):
            await nursery.start(link.run)
    assert node.connections == 1


async def test_wrong_server_is_fatal(identity: Identity) -> None:
    node = FakeNode(server="evil.test")

    async def on_connect(conn: Connection, response: object) -> None:
        raise AssertionError("never connected")

    link = Link(
        node.connector, AuthLogin(identity, ADDRESS, 1), on_connect, expect_server="example.test"
    )
    async with trio.open_nursery() as nursery:
        with pytest.raises(ServerKeyError, match=r"evil\.test"):
            await nursery.start(link.run)
    assert node.connections == 1
    assert not [f for f in node.received if isinstance(f, Auth)]


async def test_outbox_resent_after_a_lost_answer_without_duplicates(
    identity: Identity, autojump_clock: trio.testing.MockClock
) -> None:
    """The node stores an envelope but the connection dies before its answer: after the
    reconnection the same eid and bytes go again and the node keeps one copy."""
    node = FakeNode(drop_after_sends=2)
    store = MemoryStore()
    outbox = Outbox(store)
    items = [
        OutboxItem(
            "bob@example.test",
            1,
            b"\x02" * 16,
            bytes([n]) * 16,
            b"\x04" * 16,
            0,
            f"envelope {n}".encode(),
            "",
        )
        for n in range(4)
    ]

    async def on_connect(conn: Connection, response: object) -> None:
        pump.notify()

    link = Link(node.connector, AuthLogin(identity, ADDRESS, 1), on_connect)
    pump = OutboxPump(outbox, link.request)
    async with trio.open_nursery() as nursery:
        await nursery.start(link.run)
        nursery.start_soon(pump.run)
        for item in items:
            outbox.add(item)
        pump.notify()
        with trio.fail_after(60):
            assert await pump.wait(i.eid for i in items) == {}
        nursery.cancel_scope.cancel()
    assert node.connections >= 2
    assert set(node.stored) == {i.eid for i in items}
    sends = [f.eid for f in node.received if hasattr(f, "eid")]
    assert sends.count(items[1].eid) == 2  # resent once, after the lost answer
    assert outbox.pending() == []


async def test_pushes_reach_the_channel_in_order() -> None:
    client_end, node_end = transport_pair()
    send, pushes = trio.open_memory_channel[Push](8)
    conn = Connection(client_end, hello(), send)
    env = Envelope(eid=b"\x09" * 16, ts=1, expires=2, origin="example.test", sender=None, body=b"b")
    async with serving(conn):
        await node_end.send(encode(Deliver(envelopes=(env,))))
        await node_end.send(encode(Drained(pending=0)))
        first = await pushes.receive()
        second = await pushes.receive()
    assert isinstance(first, Deliver)
    assert first.envelopes == (env,)
    assert isinstance(second, Drained)


def _backlog(n: int) -> list[Envelope]:
    return [Envelope(i.to_bytes(16, "big"), 1, 2**40, "example.test", None, b"b") for i in range(n)]


@pytest.mark.parametrize("fire_and_forget", [False, True])
async def test_long_catch_up_drains_while_the_consumer_acks(
    identity: Identity, fire_and_forget: bool
) -> None:
    """Hundreds of Deliver frames, each acked by the push consumer: with a waited-for ack
    the Acked response must not hang behind pushes the consumer has not taken yet."""
    node = FakeNode(backlog=_backlog(300))

    async def on_connect(conn: Connection, response: object) -> None:
        pass

    link = Link(node.connector, AuthLogin(identity, ADDRESS, 1), on_connect)
    delivered = 0
    async with trio.open_nursery() as nursery:
        await nursery.start(link.run)
        with trio.fail_after(30):
            async for push in link.pushes:
                if isinstance(push, Drained):
                    break
                assert isinstance(push, Deliver)
                delivered += 1
                ack = Ack(id=0, eids=tuple(env.eid for env in push.envelopes))
                if fire_and_forget:
                    await link.send_only(ack)
                else:
                    assert isinstance(await link.request(ack), Acked)
            await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    assert delivered == 300
    assert len(node.acked) == 300
    acks = [f for f in node.received if isinstance(f, Ack)]
    assert all((f.id == 0) == fire_and_forget for f in acks)


async def test_error_with_id_zero_is_ignored() -> None:
    client_end, node_end = transport_pair()
    send, _ = trio.open_memory_channel[Push](8)
    conn = Connection(client_end, hello(), send)
    async with serving(conn), trio.open_nursery() as nursery:

        async def node() -> None:
            await node_end.send(encode(Error(id=0, code="limit.rate", message="m", retry_after=1)))
            req = decode(await node_end.receive(), Ping)
            await node_end.send(encode(Pong(id=req.id, time=3)))

        nursery.start_soon(node)
        assert isinstance(await conn.request(Ping(id=0)), Pong)
        assert not conn.closed


# --- the anonymous link (issue 20) -------------------------------------------------------


async def test_the_anonymous_link_connects_when_first_needed_and_never_logs_in() -> None:
    node = FakeNode()
    link = Link(node.connector, None, None, expect_server="example.test")
    assert link.anonymous
    async with trio.open_nursery() as nursery:
        nursery.start_soon(link.run)
        await trio.testing.wait_all_tasks_blocked()
        assert node.connections == 0  # nothing to send yet: no connection
        item = OutboxItem(
            "bob@example.test", 1, b"\x02" * 16, b"\x03" * 16, b"\x04" * 16, 0, b"x", ""
        )
        sent = await link.request(item.request())
        assert isinstance(sent, Sent)
        nursery.cancel_scope.cancel()
    assert node.connections == 1
    assert [type(f) for f in node.received] == [Send]


async def test_the_anonymous_link_checks_the_server_it_reaches() -> None:
    node = FakeNode(server="evil.test")
    link = Link(node.connector, None, None, expect_server="example.test")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(link.current)
        with pytest.raises(ServerKeyError, match=r"evil\.test"):
            await link.run()
        nursery.cancel_scope.cancel()
    assert node.received == []


async def test_the_anonymous_link_reconnects_only_once_something_waits_for_it() -> None:
    """A broken (or idle-closed) anonymous connection is reopened when the next request
    needs it, not before; the retry carries the same envelope."""
    node = FakeNode(drop_after_sends=1)
    link = Link(node.connector, None, None)
    mailbox, eid, token = b"\x02" * 16, b"\x03" * 16, b"\x04" * 16
    frame = OutboxItem("bob@example.test", 1, mailbox, eid, token, 0, b"x", "").request()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(link.run)
        with pytest.raises(NetworkError):
            await link.request(frame)  # stored, but the answer was lost
        await trio.testing.wait_all_tasks_blocked()
        assert node.connections == 1  # nothing waits: no new connection
        sent = await link.request(frame)
        assert isinstance(sent, Sent)
        assert sent.duplicate
        nursery.cancel_scope.cancel()
    assert node.connections == 2
