"""Bad input and floods against a real node, while another client keeps working.

Each misbehaving client connects from its own loopback address (127.0.0.x), as a client
on another host would, so the per-address rate limit of one does not touch the others.
Meanwhile two well-behaved clients (alice sending to bob, from 127.0.1.x) exchange
envelopes before, during and after, and every envelope the node accepted from the
misbehaving client is still delivered.

Checked against docs/operations.md ("Error codes"): every refusal is an ``Error`` frame
with the stable code (id 0 when the frame could not be read), a bad frame never closes
the connection, and only a sustained flood does, with close code 1008.
"""

from __future__ import annotations

import math
import os
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import httpx
import pytest
import trio
import trio_websocket

from tests.integration import rawclient
from tests.integration.nodeproc import NodeProcess, invite
from tests.integration.rawclient import Account, Conn, connect
from wire import encode
from wire.relay import (
    Authenticated,
    Error,
    GetPrekeyStatus,
    Ping,
    Pong,
    PrekeyStatus,
    Send,
    Sent,
)

DOMAIN: Final = "limits.test"
MAX_FRAME: Final = 1_114_112  # the default max_frame_bytes
MAX_ENVELOPE: Final = 262_144  # the default max_envelope_bytes
IP_RATE: Final = 2  # a flood meets 100 refusals in a row well within 1 / IP_RATE s
IP_BURST: Final = 100
FLOOD_CLOSE_AFTER: Final = 100  # the default flood_close_after
FLOOD_WINDOW_S: Final = 10.0  # the count drains by FLOOD_CLOSE_AFTER per this (operations.md)
FLOOD_CODES: Final = ("proto.malformed", "limit.rate")
NODE_ENV: Final = {
    "SEALRELAY_SUITE": "xwing",
    "SEALRELAY_RATE_IP_PER_S": str(IP_RATE),
    "SEALRELAY_RATE_IP_BURST": str(IP_BURST),
    "SEALRELAY_SHUTDOWN_TIMEOUT": "3",
}
CLOSE_POLICY: Final = 1008
CLOSE_TOO_BIG: Final = 1009


@dataclass
class World:
    node: NodeProcess
    url: str
    alice: Account
    bob: Account
    mallory: Account
    carol: Account


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("limits")
    with NodeProcess(root / "node", domain=DOMAIN, env=NODE_ENV) as node:
        url = node.start()
        accounts = [
            trio.run(rawclient.register, url, name, invite(node.data_dir, name))
            for name in ("alice", "bob", "mallory", "carol")
        ]
        yield World(node, url, *accounts)
        assert node.running(), "the node died"
        assert '"level": "error"' not in node.log_text()


# --- the well-behaved pair ------------------------------------------------------------------


@dataclass
class Bystanders:
    world: World
    alice: Conn
    bob: Conn
    exchanged: int = 0

    async def exchange(self, count: int = 1) -> None:
        """alice sends ``count`` envelopes to bob, who gets exactly those and acks them."""
        eids = []
        for _ in range(count):
            sent = await self.alice.send_envelope(self.world.bob, os.urandom(1024), ttl=600)
            assert not sent.duplicate
            eids.append(sent.eid)
        got = await self.bob.wait_delivered(count)
        assert [env.eid for env in got] == eids
        await self.bob.ack(got)
        self.exchanged += count


@asynccontextmanager
async def bystanders(world: World, source: str) -> AsyncIterator[Bystanders]:
    async with (
        connect(world.url, source=source) as alice,
        connect(world.url, source=source) as bob,
    ):
        await alice.login(world.alice)
        await bob.login(world.bob)
        pair = Bystanders(world, alice, bob)
        await pair.exchange()
        yield pair
        await pair.exchange(3)


async def healthz(url: str) -> int:
    async with httpx.AsyncClient() as http:
        return (await http.get(url + "/healthz")).status_code


async def metric(url: str, line_start: str) -> float:
    async with httpx.AsyncClient() as http:
        text = (await http.get(url + "/metrics")).text
    values = [float(ln.rsplit(" ", 1)[1]) for ln in text.splitlines() if ln.startswith(line_start)]
    return values[0] if values else 0.0


async def receive_exactly(world: World, acct: Account, eids: list[bytes], source: str) -> None:
    """``acct`` connects and gets exactly ``eids`` (in order), then acks them."""
    async with connect(world.url, source=source) as conn:
        auth = await conn.login(acct)
        assert auth.pending == len(eids)
        got = await conn.wait_delivered(len(eids))
        assert [env.eid for env in got] == eids
        await conn.ack(got)


def assert_error(frame: object, code: str, request_id: int) -> None:
    assert isinstance(frame, Error), frame
    assert (frame.code, frame.id) == (code, request_id), frame
    assert frame.message


async def assert_alive(conn: Conn) -> None:
    """The connection still answers, and (authenticated) still serves requests."""
    rid = conn.new_id()
    pong = await conn.call(Ping(rid))
    assert isinstance(pong, Pong)
    assert pong.id == rid


# --- authentication --------------------------------------------------------------------------


async def test_replayed_auth_challenge_is_refused(world: World) -> None:
    mallory = world.mallory
    async with bystanders(world, "127.0.1.2") as pair:
        async with (
            connect(world.url, source="127.0.0.2") as a,
            connect(world.url, source="127.0.0.2") as b,
        ):
            assert a.hello.nonce != b.hello.nonce
            signed_for_a = mallory.sign_auth(a.hello)
            # A's signed challenge presented on B: B's challenge is another.
            assert_error(await b.call(signed_for_a), "auth.failed", signed_for_a.id)
            # B's challenge is now spent: even a correct answer is refused.
            assert_error(await b.call(mallory.sign_auth(b.hello)), "auth.replayed", 1)
            await assert_alive(b)
            status = GetPrekeyStatus(b.new_id())
            assert_error(await b.call(status), "auth.required", status.id)
            await pair.exchange()

            assert isinstance(await a.call(signed_for_a), Authenticated)
            # The same frame again on the same connection.
            assert_error(await a.call(signed_for_a), "auth.replayed", signed_for_a.id)
            answer = await a.call(GetPrekeyStatus(a.new_id()))
            assert isinstance(answer, PrekeyStatus), "the authenticated connection broke"
        # A's challenge, once its connection is gone, on a fresh connection.
        async with connect(world.url, source="127.0.0.2") as c:
            assert_error(await c.call(signed_for_a), "auth.failed", signed_for_a.id)
            assert isinstance(await c.call(mallory.sign_auth(b.hello)), Error)
        await pair.exchange()


# --- delivery tokens -------------------------------------------------------------------------


async def test_send_needs_the_recipients_delivery_token(world: World) -> None:
    carol = world.carol
    eid = secrets.token_bytes(16)
    body = os.urandom(1024)
    async with bystanders(world, "127.0.1.3") as pair, connect(world.url, source="127.0.0.3") as m:
        await m.login(world.mallory)
        attempts = [
            (None, "send.token_required"),
            (secrets.token_bytes(16), "send.bad_token"),
            (world.bob.token, "send.bad_token"),  # valid, but another account's
        ]
        for token, code in attempts:
            frame = Send(m.new_id(), carol.mailbox, eid, token, 600, body)
            assert_error(await m.call(frame), code, frame.id)
            await pair.exchange()
        # The same eid with the right token: stored now, so nothing refused was kept.
        sent = await m.call(Send(m.new_id(), carol.mailbox, eid, carol.token, 600, body))
        assert isinstance(sent, Sent)
        assert not sent.duplicate
    await receive_exactly(world, carol, [eid], "127.0.1.3")


# --- malformed and oversized frames ---------------------------------------------------------


async def test_bad_frames_get_clear_errors_and_the_connection_lives(world: World) -> None:
    async with bystanders(world, "127.0.1.4") as pair, connect(world.url, source="127.0.0.4") as m:
        await m.login(world.mallory)
        bad: list[tuple[bytes | str, str]] = [
            (os.urandom(MAX_FRAME + 1), "proto.too_large"),
            (b"\xc1 not msgpack at all", "proto.malformed"),
            (b"\x93\xa5relay\x01", "proto.malformed"),  # a truncated message
            (b"", "proto.malformed"),
            ("a text frame", "proto.malformed"),
            (encode(m.hello), "proto.unexpected"),  # a valid frame, but not a request
        ]
        for data, code in bad:
            await m.send_raw(data)
            assert_error(await m.reply(), code, 0)
            await assert_alive(m)
            await pair.exchange()
        # Decodable, but the body is over max_envelope_bytes: refused with the request id.
        big = Send(
            m.new_id(), world.carol.mailbox, secrets.token_bytes(16), world.carol.token, 60,
            os.urandom(MAX_ENVELOPE + 1),
        )  # fmt: skip
        assert_error(await m.call(big), "send.too_large", big.id)
        sent = await m.send_envelope(world.carol, os.urandom(1024), ttl=600)
        await pair.exchange()
    await receive_exactly(world, world.carol, [sent.eid], "127.0.1.4")


async def test_huge_frame_closes_with_1009_and_nothing_else_suffers(world: World) -> None:
    """docs/operations.md: a frame over twice ``max_frame_bytes`` is not read into memory;
    the WebSocket layer closes that connection with 1009 (message too big). The sender can
    reconnect at once, and other clients never notice."""
    closed: trio_websocket.CloseReason | None = None
    async with bystanders(world, "127.0.1.6") as pair:
        async with connect(world.url, source="127.0.0.6") as m:
            await m.login(world.mallory)
            await m.send_raw(os.urandom(2 * MAX_FRAME + 1024))
            try:
                await m.reply()
            except trio_websocket.ConnectionClosed as exc:
                closed = exc.reason
        await pair.exchange()
        async with connect(world.url, source="127.0.0.6") as again:
            await again.login(world.mallory)
            await assert_alive(again)
    assert closed is not None, "the node read a frame of twice the limit"
    assert closed.code == CLOSE_TOO_BIG


# --- a flood ---------------------------------------------------------------------------------


@dataclass
class Flood:
    accepted: list[bytes]
    replies: list[object]
    closed: list[int | None]
    seconds: float = 0.0  # from the first malformed frame sent to the close read


def refusals_before_close(seconds: float) -> int:
    """How many refusals a flood lasting ``seconds`` needs at most before the close: the
    count drains by FLOOD_CLOSE_AFTER per FLOOD_WINDOW_S, so every FLOOD_WINDOW_S /
    FLOOD_CLOSE_AFTER seconds the node spends reading it moves the threshold one frame on
    (a loaded machine reads a flood slower, not differently)."""
    return FLOOD_CLOSE_AFTER + math.ceil(seconds * FLOOD_CLOSE_AFTER / FLOOD_WINDOW_S)


async def flood(world: World, source: str, pair: Bystanders) -> Flood:
    """mallory (from ``source``) stores 3 envelopes for carol, then sends 1,000 malformed
    frames as fast as it can while alice and bob keep exchanging."""
    async with connect(world.url, source=source) as m:
        await m.login(world.mallory)
        accepted = [
            (await m.send_envelope(world.carol, os.urandom(1024), ttl=600)).eid for _ in range(3)
        ]
        result = Flood(accepted, [], [])
        started = time.time()  # (the node's clock: its flood count drains by it)

        async def read_replies() -> None:
            try:
                while len(result.replies) < 1000:
                    result.replies.append(await m.next_frame())
            except trio_websocket.ConnectionClosed as exc:
                result.seconds = time.time() - started
                result.closed.append(exc.reason.code if exc.reason else None)

        async def keep_exchanging() -> None:
            for _ in range(5):
                await pair.exchange(2)
                await trio.sleep(0.02)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(read_replies)
            nursery.start_soon(keep_exchanging)
            try:
                for i in range(1000):
                    await m.send_raw(b"\xc1" + i.to_bytes(2, "big"))
            except trio_websocket.ConnectionClosed:
                pass  # closed for flooding: checked by the caller
    return result


async def test_a_thousand_malformed_frames(world: World) -> None:
    """Refused frames of either kind (unreadable, then rate-limited) count towards the
    flood: the node closes once ``flood_close_after`` were refused within 10 s."""
    rejected = [f'sealrelay_frames_rejected_total{{code="{c}"}}' for c in FLOOD_CODES]
    rejected_before = [await metric(world.url, name) for name in rejected]
    async with bystanders(world, "127.0.1.5") as pair:
        result = await flood(world, "127.0.0.5", pair)
        replies = result.replies
        codes = [r.code if isinstance(r, Error) else repr(r) for r in replies]
        assert set(codes) <= {"proto.malformed", "limit.rate"}, set(codes)
        assert all(isinstance(r, Error) and r.id == 0 for r in replies)
        rate = [r for r in replies if isinstance(r, Error) and r.code == "limit.rate"]
        assert all(0 < r.retry_after <= 1000 / IP_RATE for r in rate)
        assert 1 <= codes.count("proto.malformed") <= IP_BURST
        # Every frame was answered up to the one that met the documented threshold, none
        # after it (issue 16: after ERROR only the close, however many frames the node had
        # already read in that turn). The count drains with time, so the threshold is met
        # FLOOD_CLOSE_AFTER refusals in, plus one per FLOOD_WINDOW_S / FLOOD_CLOSE_AFTER
        # seconds the flood lasted: exactly FLOOD_CLOSE_AFTER for an instant flood.
        most = refusals_before_close(result.seconds)
        seen = f"{len(replies)} replies in {result.seconds:.2f} s, closed {result.closed}"
        assert result.closed == [CLOSE_POLICY], seen
        assert FLOOD_CLOSE_AFTER <= len(replies) <= most, seen

        assert await healthz(world.url) == 200
        await pair.exchange()
        await trio.sleep(1 / IP_RATE)  # the flooder comes back politely
        async with connect(world.url, source="127.0.0.5") as again:
            await again.login(world.mallory)
    after = [await metric(world.url, name) for name in rejected]
    assert sum(after) - sum(rejected_before) >= FLOOD_CLOSE_AFTER
    await receive_exactly(world, world.carol, result.accepted, "127.0.1.5")
    assert await healthz(world.url) == 200


def node_sockets(node: NodeProcess) -> int:
    """Open sockets of the node process (Linux /proc)."""
    assert node.proc is not None
    fds = Path(f"/proc/{node.proc.pid}/fd")
    count = 0
    for fd in fds.iterdir():
        try:
            count += os.readlink(fd).startswith("socket:")
        except FileNotFoundError:
            continue
    return count


async def test_a_connection_closed_for_flooding_is_released(world: World) -> None:
    """The socket of a connection the node closed with 1008 is closed too (not left in
    CLOSE-WAIT holding a descriptor until shutdown: a flooder reconnecting again and again
    would run the node out of descriptors)."""
    async with bystanders(world, "127.0.1.7") as pair:
        before = node_sockets(world.node)
        result = await flood(world, "127.0.0.7", pair)
        assert result.closed == [CLOSE_POLICY]
        for _ in range(60):  # up to 3 s
            if node_sockets(world.node) <= before:
                break
            await trio.sleep(0.05)
        assert node_sockets(world.node) <= before, "the flooder's socket is still open"
        await pair.exchange()
    await receive_exactly(world, world.carol, result.accepted, "127.0.1.7")
