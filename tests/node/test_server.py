"""run_node in-process on 127.0.0.1 port 0: real hypercorn, real WebSockets, real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import httpx
import pytest
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, open_websocket_url

from node import errors
from node.config import Config
from node.keys import key_id
from node.server import APP_QUEUE_SIZE, NodeHandle, _hypercorn_config, run_node
from suites import get_suite, labels
from tests.node.harness import Device, token_for
from wire import decode, encode
from wire.relay import (
    Ack,
    Acked,
    BlobGrant,
    Deliver,
    Drained,
    Error,
    Hello,
    Ok,
    Ping,
    Pong,
    Registered,
    RequestBlobUpload,
    Send,
    Sent,
    SetDeliveryToken,
)
from wire.server import ServerKeyDocument

DOMAIN = "relay.test"


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[NodeHandle]:
    config = Config(
        domain=DOMAIN,
        data_dir=str(tmp_path / "data"),
        listen_port=0,
        store="memory",
        suite="xwing",
        max_frame_bytes=64 * 1024,
        max_envelope_bytes=16 * 1024,
        max_blob_bytes=1024,
        shutdown_timeout=2.0,
    )
    async with trio.open_nursery() as nursery:
        handle: NodeHandle = await nursery.start(partial(run_node, config, handle_signals=False))
        yield handle
        handle.shutdown()


class Client:
    def __init__(self, ws: WebSocketConnection) -> None:
        self.ws = ws

    async def recv(self) -> object:
        with trio.fail_after(5):
            return decode(await self.ws.get_message())  # type: ignore[arg-type]

    async def request(self, frame: object) -> object:
        await self.ws.send_message(encode(frame))
        return await self.recv()


async def register(handle: NodeHandle, ws: WebSocketConnection, device: Device) -> Client:
    client = Client(ws)
    hello = await client.recv()
    assert isinstance(hello, Hello)
    assert hello.server == DOMAIN
    code = await handle.relay.add_invite(device.name, 600)
    reply = await client.request(device.register_frame(hello, code))
    assert isinstance(reply, Registered), reply
    device.address, device.device, device.mailbox = reply.address, reply.device, reply.mailbox
    assert await client.recv() == Drained(0)
    return client


def ws_url(handle: NodeHandle) -> str:
    return handle.url.replace("http://", "ws://") + "/v1/client"


async def test_register_send_deliver_ack_over_websockets(node: NodeHandle) -> None:
    alice, bob = Device.create("alice"), Device.create("bob")
    async with open_websocket_url(ws_url(node)) as a_ws, open_websocket_url(ws_url(node)) as b_ws:
        a, b = await register(node, a_ws, alice), await register(node, b_ws, bob)
        token, verifier = token_for(bob)
        assert await b.request(SetDeliveryToken(2, verifier)) == Ok(2)
        for n in range(1, 4):
            send = Send(n, bob.mailbox, bytes([n]) * 16, token, 60, b"sealed %d" % n)
            assert await a.request(send) == Sent(n, bytes([n]) * 16, False)
        got: list[bytes] = []
        while len(got) < 3:
            push = await b.recv()
            assert isinstance(push, Deliver)
            got += [e.body for e in push.envelopes]
        assert got == [b"sealed 1", b"sealed 2", b"sealed 3"]
        eids = tuple(bytes([n]) * 16 for n in range(1, 4))
        assert await b.request(Ack(9, eids)) == Acked(9, 3)

    # reconnect: nothing pending any more, and the same device authenticates again
    async with open_websocket_url(ws_url(node)) as ws:
        client = Client(ws)
        hello = await client.recv()
        assert isinstance(hello, Hello)
        reply = await client.request(bob.auth_frame(hello))
        assert getattr(reply, "pending", None) == 0


async def test_garbage_keeps_the_connection_alive(node: NodeHandle) -> None:
    async with open_websocket_url(ws_url(node)) as ws:
        client = Client(ws)
        assert isinstance(await client.recv(), Hello)
        for junk in (b"\xc1garbage", "a text frame", b""):
            await ws.send_message(junk)
            reply = await client.recv()
            assert isinstance(reply, Error)
            assert (reply.id, reply.code) == (0, errors.PROTO_MALFORMED)
        await ws.send_message(b"\0" * (70 * 1024))
        reply = await client.recv()
        assert isinstance(reply, Error)
        assert reply.code == errors.PROTO_TOO_LARGE
        assert isinstance(await client.request(Ping(5)), Pong)


async def test_graceful_shutdown_closes_websockets(tmp_path: Path) -> None:
    config = Config(domain=DOMAIN, data_dir=str(tmp_path), listen_port=0, store="memory")
    async with trio.open_nursery() as nursery:
        handle: NodeHandle = await nursery.start(partial(run_node, config, handle_signals=False))
        async with open_websocket_url(ws_url(handle)) as ws:
            client = Client(ws)
            assert isinstance(await client.recv(), Hello)
            handle.shutdown()
            with trio.fail_after(5), pytest.raises(ConnectionClosed) as closed:
                await ws.get_message()
            assert closed.value.reason.code == 1001
            assert handle.relay.draining
            # trio-websocket 0.12.2 leaves the client's TCP stream open after a close the
            # server started; close it here so the socket is not left to the collector.
            await ws._stream.aclose()


async def test_http_endpoints(node: NodeHandle) -> None:
    async with httpx.AsyncClient(base_url=node.url) as http:
        assert (await http.get("/healthz")).status_code == 200
        assert (await http.get("/readyz")).status_code == 200
        metrics = (await http.get("/metrics")).text
        assert "sealrelay_envelopes_accepted_total 0" in metrics
        assert "sealrelay_mailbox_envelopes 0" in metrics
        assert (await http.get("/nothing")).status_code == 404
        response = await http.get("/.well-known/sealrelay/server")
        assert response.headers["content-type"] == "application/x-msgpack"
        doc = decode(response.content, ServerKeyDocument)
        suite = get_suite("xwing")
        (entry,) = doc.body.verify_keys
        assert entry.id == key_id(entry.public)
        assert doc.body.endpoints == (node.url,)
        suite.sig.verify(
            entry.public,
            encode(doc.body),
            doc.signatures[0].signature,
            labels.CTX_SERVER_KEY_DOCUMENT,
        )


async def test_the_limits_a_client_checks_are_announced(node: NodeHandle) -> None:
    async with httpx.AsyncClient(base_url=node.url) as http:
        response = await http.get("/v1/limits")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"max_blob_bytes": 1024}  # the fixture's max_blob_bytes


async def test_blob_upload_and_download(node: NodeHandle) -> None:
    alice = Device.create("alice")
    async with open_websocket_url(ws_url(node)) as ws:
        client = await register(node, ws, alice)
        grant = await client.request(RequestBlobUpload(3, 5, 60))
        assert isinstance(grant, BlobGrant)
    path = f"/v1/blobs/{grant.blob.hex()}"
    auth = {"Authorization": f"Bearer {grant.upload_token.hex()}"}
    async with httpx.AsyncClient(base_url=node.url) as http:
        assert (await http.put(path, content=b"hello")).status_code == 401
        wrong = {"Authorization": "Bearer " + "00" * 32}
        refused = await http.put(path, content=b"hello", headers=wrong)
        assert refused.status_code == 404
        assert refused.json()["code"] == errors.BLOB_NOT_FOUND
        assert (await http.put(path, content=b"x" * 2000, headers=auth)).status_code == 413
        assert (await http.put(path, content=b"hell", headers=auth)).status_code == 404
        assert (await http.get(path)).status_code == 404
        assert (await http.put(path, content=b"hello", headers=auth)).status_code == 201
        assert (await http.put(path, content=b"hello", headers=auth)).status_code == 404
        fetched = await http.get(path)
        assert (fetched.status_code, fetched.content) == (200, b"hello")
        assert (await http.get("/v1/blobs/" + "ab" * 16)).status_code == 404
        assert (await http.get("/v1/blobs/zz")).status_code == 404


async def raw_put(handle: NodeHandle, path: str, token: str, framing: str, body: bytes) -> bytes:
    """Send the headers of a PUT (``framing``: a Content-Length or Transfer-Encoding header)
    and ``body``, and read the response's status line: the node answers without waiting
    for the rest of a body it refuses."""
    stream = await trio.open_tcp_stream("127.0.0.1", handle.port)
    async with stream:
        head = (
            f"PUT {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n{framing}\r\n\r\n"
        )
        await stream.send_all(head.encode() + body)
        with trio.fail_after(5):
            response = b""
            while b"\r\n\r\n" not in response:
                chunk = await stream.receive_some()
                assert chunk, response
                response += chunk
    return response.split(b"\r\n", 1)[0]


async def raw_put_headers(handle: NodeHandle, path: str, token: str, length: int) -> bytes:
    return await raw_put(handle, path, token, f"Content-Length: {length}", b"0123456789")


async def test_a_blob_upload_is_refused_before_its_body_is_read(node: NodeHandle) -> None:
    alice = Device.create("alice")
    async with open_websocket_url(ws_url(node)) as ws:
        client = await register(node, ws, alice)
        grant = await client.request(RequestBlobUpload(3, 1000, 60))
        assert isinstance(grant, BlobGrant)
    path, token = f"/v1/blobs/{grant.blob.hex()}", grant.upload_token.hex()
    assert b" 404 " in await raw_put_headers(node, path, "00" * 32, 1000)
    assert b" 404 " in await raw_put_headers(node, "/v1/blobs/" + "ab" * 16, token, 1000)
    assert b" 413 " in await raw_put_headers(node, path, token, 1001)
    assert b" 413 " in await raw_put_headers(node, path, token, 5000)
    assert b" 404 " in await raw_put_headers(node, path, token, 999)
    # refused uploads, with bodies, one after another on one connection: none gets stuck
    # behind the unread body of the one before (hypercorn's small application queue)
    async with httpx.AsyncClient(base_url=node.url, timeout=5) as http:
        wrong = {"Authorization": "Bearer " + "00" * 32}
        for content, status in ((b"z" * 1000, 404), (b"z" * 5000, 413), (b"z" * 999, 404)):
            assert (await http.put(path, content=content, headers=wrong)).status_code == status
            assert (await http.put(path, content=content)).status_code == 401
            assert (await http.get("/healthz")).status_code == 200
        # the grant is still unused
        auth = {"Authorization": f"Bearer {token}"}
        assert (await http.put(path, content=b"z" * 1000, headers=auth)).status_code == 201


async def test_a_chunked_blob_upload_longer_than_its_grant_is_refused(node: NodeHandle) -> None:
    alice = Device.create("alice")
    async with open_websocket_url(ws_url(node)) as ws:
        client = await register(node, ws, alice)
        grant = await client.request(RequestBlobUpload(3, 5, 60))
        assert isinstance(grant, BlobGrant)
    path, token = f"/v1/blobs/{grant.blob.hex()}", grant.upload_token.hex()
    chunked = "Transfer-Encoding: chunked"
    # a first chunk of 600 bytes, more to come: refused after reading the granted 5 (+1)
    status = await raw_put(node, path, token, chunked, b"258\r\n" + b"x" * 600 + b"\r\n")
    assert b" 413 " in status
    status = await raw_put(node, path, token, chunked, b"5\r\nhello\r\n0\r\n\r\n")
    assert b" 201 " in status


def test_hypercorn_queues_little_and_allows_frames_up_to_twice_the_limit(tmp_path: Path) -> None:
    config = Config(
        domain=DOMAIN, data_dir=str(tmp_path), max_frame_bytes=64 * 1024, max_envelope_bytes=16384
    )
    hc = _hypercorn_config(config)
    assert hc.websocket_max_message_size == 128 * 1024
    assert hc.max_app_queue_size == APP_QUEUE_SIZE <= 2


async def test_an_unauthenticated_websocket_is_closed_after_auth_timeout(tmp_path: Path) -> None:
    config = Config(
        domain=DOMAIN,
        data_dir=str(tmp_path),
        listen_port=0,
        store="memory",
        suite="xwing",
        auth_timeout=0.5,
    )
    async with trio.open_nursery() as nursery:
        handle: NodeHandle = await nursery.start(partial(run_node, config, handle_signals=False))
        async with (
            open_websocket_url(ws_url(handle)) as ws,
            open_websocket_url(ws_url(handle)) as ok,
        ):
            client = Client(ws)
            assert isinstance(await client.recv(), Hello)
            assert isinstance(await client.request(Ping(1)), Pong)  # pings do not extend it
            bob = Device.create("bob")
            await register(handle, ok, bob)
            started = trio.current_time()
            timeout = await client.recv()
            assert isinstance(timeout, Error)
            assert (timeout.id, timeout.code) == (0, errors.AUTH_TIMEOUT)
            assert trio.current_time() - started < 1.0
            with trio.fail_after(5), pytest.raises(ConnectionClosed) as closed:
                await ws.get_message()
            assert closed.value.reason.code == 1008
            await ws._stream.aclose()  # see test_graceful_shutdown_closes_websockets
            # the authenticated connection outlives the deadline
            await trio.sleep(0.6)
            assert isinstance(await Client(ok).request(Ping(2)), Pong)
        handle.shutdown()


async def test_flood_gets_rate_limited_then_closed(tmp_path: Path) -> None:
    config = Config(
        domain=DOMAIN,
        data_dir=str(tmp_path),
        listen_port=0,
        store="memory",
        rate_ip_per_s=1.0,
        rate_ip_burst=3,
        flood_close_after=10,
    )
    async with trio.open_nursery() as nursery:
        handle: NodeHandle = await nursery.start(partial(run_node, config, handle_signals=False))
        async with open_websocket_url(ws_url(handle)) as ws:
            client = Client(ws)
            assert isinstance(await client.recv(), Hello)
            codes: list[str] = []

            async def flood() -> None:
                for n in range(1, 50):
                    reply = await client.request(Ping(n))
                    codes.append(reply.code if isinstance(reply, Error) else "ok")

            with pytest.raises(ConnectionClosed) as closed:
                await flood()
            assert closed.value.reason.code == 1008
            assert codes[:3] == ["ok"] * 3
            assert set(codes[3:]) == {errors.LIMIT_RATE}
            await ws._stream.aclose()  # see test_graceful_shutdown_closes_websockets
        handle.shutdown()


async def test_connections_per_address_are_limited(tmp_path: Path) -> None:
    config = Config(
        domain=DOMAIN,
        data_dir=str(tmp_path),
        listen_port=0,
        store="memory",
        max_connections_per_ip=2,
    )
    async with trio.open_nursery() as nursery:
        handle: NodeHandle = await nursery.start(partial(run_node, config, handle_signals=False))
        url = ws_url(handle)
        async with open_websocket_url(url) as one, open_websocket_url(url) as two:
            assert isinstance(await Client(one).recv(), Hello)
            assert isinstance(await Client(two).recv(), Hello)
            async with open_websocket_url(url) as three:
                refused = await Client(three).recv()
                assert isinstance(refused, Error)
                assert refused.code == errors.LIMIT_CONNECTIONS
                with trio.fail_after(5), pytest.raises(ConnectionClosed):
                    await three.get_message()
                await three._stream.aclose()
        handle.shutdown()
