"""The client protocol (``wire.relay``) spoken directly, for tests that need frames the
client library would never send, a chosen source address, or thousands of opaque sends.

    acct = await register(url, "alice", code)        Register + SetDeliveryToken
    async with connect(url, source="127.0.0.2") as conn:
        await conn.login(acct)                       Auth over this connection's Hello
        reply = await conn.call(Send(...))           the response with the same id (or Error)
        await conn.send_raw(b"garbage")              any bytes (or text) as one message

Bodies are opaque to the node (it never opens one), so a test may send random bytes where
a client sends sealed envelopes.

Run as a program (``python -m tests.integration.rawclient ROLE ...``) it is a separate
process for crash tests:

    send URL SENDER_JSON TARGET_JSON SEED COUNT RATE WINDOW
        streams COUNT envelopes (eid and body derived from SEED and the index) with at most
        WINDOW unacknowledged; prints {"acked": i, "duplicate": bool} for every ``Sent``.
        When the connection breaks it prints {"event": "disconnected", ...}, reconnects and
        sends every unacknowledged envelope again with the same eid and bytes. Ends with
        {"event": "done", ...}.
    receive URL ACCOUNT_JSON SEED COUNT SECONDS
        the receiving application: drops duplicates by eid (as ``client.app`` does), checks
        each body, acks after "saving", prints {"delivered": i} once per envelope and ends
        with {"event": "done", ...} once COUNT arrived or SECONDS passed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import secrets
import sys
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import trio
import trio_websocket
from trio_websocket import WebSocketConnection

from client.entropy import SYSTEM_ENTROPY
from client.identity import Identity
from suites import get_suite, get_suite_by_id, labels
from wire import decode, encode
from wire.relay import (
    PURPOSE_AUTH,
    PURPOSE_REGISTER,
    Ack,
    Auth,
    Authenticated,
    AuthPayload,
    Deliver,
    Drained,
    Envelope,
    Error,
    Hello,
    Register,
    Registered,
    Send,
    Sent,
    SetDeliveryToken,
)

CLIENT_PATH: Final = "/v1/client"
SEALED_PATH: Final = "/v1/sealed"
"""The anonymous connection: sealed sending and Ping only, never a login."""
MAX_MESSAGE: Final = 64 * 1024 * 1024
REPLY_TIMEOUT: Final = 15.0
BODY_BYTES: Final = 1024
STREAM_TTL: Final = 3600


# --- accounts ------------------------------------------------------------------------------


@dataclass
class Account:
    """A registered device: what a raw connection needs to log in and to be sent to."""

    address: str
    device: int
    mailbox: bytes
    token: bytes
    suite: str
    sig_key: bytes

    def to_json(self) -> str:
        d = asdict(self)
        for key in ("mailbox", "token", "sig_key"):
            d[key] = d[key].hex()
        return json.dumps(d)

    @classmethod
    def from_json(cls, text: str) -> Account:
        d = json.loads(text)
        for key in ("mailbox", "token", "sig_key"):
            d[key] = bytes.fromhex(d[key])
        return cls(**d)

    def sign_auth(self, hello: Hello) -> Auth:
        """An Auth frame answering ``hello``'s challenge."""
        suite = get_suite(self.suite)
        key = suite.sig.private_key_from_bytes(self.sig_key)
        payload = AuthPayload(PURPOSE_AUTH, hello.server, hello.nonce, self.address, self.device)
        sig = suite.sig.sign(key, encode(payload), labels.CTX_DEVICE_AUTH)
        return Auth(1, self.address, self.device, sig)


def token_verifier(token: bytes) -> bytes:
    return hashlib.sha256(labels.DELIVERY_TOKEN_HASH_INFO + token).digest()


async def register(url: str, name: str, code: str, *, source: str | None = None) -> Account:
    """Enroll ``name`` with ``code`` and set a fresh delivery token."""
    async with connect(url, source=source) as conn:
        hello = conn.hello
        suite = get_suite_by_id(hello.suite)
        identity = Identity.generate(suite, SYSTEM_ENTROPY)
        address = f"{name}@{hello.server}"
        payload = AuthPayload(PURPOSE_REGISTER, hello.server, hello.nonce, address, 0)
        sig = identity.sign(encode(payload), labels.CTX_DEVICE_AUTH)
        reg = await conn.call(Register(1, code, name, identity.public, sig))
        if not isinstance(reg, Registered):
            raise AssertionError(f"register {name}: {reg}")
        token = secrets.token_bytes(16)
        ok = await conn.call(SetDeliveryToken(2, token_verifier(token)))
        if isinstance(ok, Error):
            raise AssertionError(f"set token {name}: {ok}")
        return Account(
            reg.address,
            reg.device,
            reg.mailbox,
            token,
            suite.name,
            suite.sig.private_key_bytes(identity.sig_key),
        )


# --- connections -----------------------------------------------------------------------------


@dataclass
class Conn:
    """One WebSocket to a node: requests answered in order, pushes kept aside."""

    ws: WebSocketConnection
    hello: Hello
    pushes: list[Deliver | Drained] = field(default_factory=list)
    next_id: int = 100

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id

    async def send_raw(self, data: bytes | str) -> None:
        await self.ws.send_message(data)

    async def send(self, frame: object) -> None:
        await self.ws.send_message(encode(frame))

    async def next_frame(self, seconds: float = REPLY_TIMEOUT) -> Any:
        with trio.fail_after(seconds):
            data = await self.ws.get_message()
        assert isinstance(data, bytes), f"the node sent a text frame: {data!r}"
        return decode(data)

    async def reply(self, seconds: float = REPLY_TIMEOUT) -> Any:
        """The next frame that is not a push (pushes go to ``pushes``)."""
        while True:
            frame = await self.next_frame(seconds)
            if isinstance(frame, Deliver | Drained):
                self.pushes.append(frame)
                continue
            return frame

    async def call(self, frame: object, seconds: float = REPLY_TIMEOUT) -> Any:
        await self.send(frame)
        return await self.reply(seconds)

    async def login(self, acct: Account) -> Authenticated:
        answer = await self.call(acct.sign_auth(self.hello))
        if not isinstance(answer, Authenticated):
            raise AssertionError(f"login {acct.address}: {answer}")
        return answer

    def delivered(self) -> list[Envelope]:
        """Every envelope pushed so far (and forget the pushes)."""
        found = [env for p in self.pushes if isinstance(p, Deliver) for env in p.envelopes]
        self.pushes = [p for p in self.pushes if not isinstance(p, Deliver)]
        return found

    async def wait_delivered(self, count: int, seconds: float = REPLY_TIMEOUT) -> list[Envelope]:
        """Read pushes until ``count`` envelopes arrived (the others wait in ``pushes``)."""
        got = self.delivered()
        with trio.fail_after(seconds):
            while len(got) < count:
                frame = await self.next_frame(seconds)
                if isinstance(frame, Deliver):
                    got.extend(frame.envelopes)
                elif isinstance(frame, Drained):
                    self.pushes.append(frame)
                else:
                    raise AssertionError(f"unexpected frame while waiting for pushes: {frame}")
        return got

    async def backlog(self, seconds: float = REPLY_TIMEOUT) -> list[Envelope]:
        """Every envelope pushed until ``Drained`` (after a login)."""
        got: list[Envelope] = []
        with trio.fail_after(seconds):
            while True:
                frame = self.pushes.pop(0) if self.pushes else await self.next_frame(seconds)
                if isinstance(frame, Deliver):
                    got.extend(frame.envelopes)
                elif isinstance(frame, Drained):
                    return got
                else:
                    raise AssertionError(f"unexpected frame before Drained: {frame}")

    async def send_envelope(
        self, to: Account, body: bytes, *, ttl: int = STREAM_TTL, eid: bytes | None = None
    ) -> Sent:
        frame = Send(self.new_id(), to.mailbox, eid or secrets.token_bytes(16), to.token, ttl, body)
        answer = await self.call(frame)
        if not isinstance(answer, Sent):
            raise AssertionError(f"send refused: {answer}")
        return answer

    async def ack(self, envelopes: list[Envelope]) -> None:
        answer = await self.call(Ack(self.new_id(), tuple(env.eid for env in envelopes)))
        if isinstance(answer, Error):
            raise AssertionError(f"ack refused: {answer}")


def ws_url(url: str) -> str:
    return url.replace("http://", "ws://", 1).rstrip("/") + CLIENT_PATH


@contextlib.asynccontextmanager
async def connect(
    url: str, *, source: str | None = None, path: str = CLIENT_PATH
) -> AsyncIterator[Conn]:
    """A WebSocket to ``url`` from the local address ``source`` (any 127.x.y.z works on
    loopback, so per-address limits can tell test clients apart), at ``path``
    (:data:`SEALED_PATH`: the anonymous connection); Hello already read."""
    parts = urlsplit(url)
    assert parts.hostname is not None
    assert parts.port is not None
    with trio.fail_after(REPLY_TIMEOUT):
        stream = await trio.open_tcp_stream(parts.hostname, parts.port, local_address=source)
    try:
        async with trio.open_nursery() as nursery:
            ws = await trio_websocket.wrap_client_stream(
                nursery, stream, parts.hostname, path, max_message_size=MAX_MESSAGE
            )
            try:
                hello = decode(await ws.get_message(), Hello)  # type: ignore[arg-type]
                yield Conn(ws, hello)
            finally:
                with trio.CancelScope(shield=True), trio.move_on_after(5):
                    await ws.aclose()
                nursery.cancel_scope.cancel()
    finally:
        await trio.aclose_forcefully(stream)


# --- the crash-test roles -----------------------------------------------------------------------


def stream_eid(seed: bytes, index: int) -> bytes:
    return hashlib.sha256(seed + index.to_bytes(4, "big")).digest()[:16]


def stream_body(eid: bytes) -> bytes:
    return eid + hashlib.shake_256(b"body" + eid).digest(BODY_BYTES - len(eid))


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def _network_failure(exc: BaseException) -> bool:
    if isinstance(exc, BaseExceptionGroup):
        return all(_network_failure(e) for e in exc.exceptions)
    return isinstance(
        exc,
        OSError
        | trio_websocket.ConnectionClosed
        | trio_websocket.HandshakeError
        | trio.BrokenResourceError
        | trio.ClosedResourceError,
    )


@dataclass
class StreamState:
    seed: bytes
    count: int
    todo: deque[int]
    in_flight: dict[int, int] = field(default_factory=dict)  # request id -> index
    acked: set[int] = field(default_factory=set)
    sends: int = 0
    duplicates: int = 0


async def _stream_once(
    url: str, acct: Account, target: Account, st: StreamState, rate: float, window: int
) -> None:
    async with connect(url) as conn:
        await conn.login(acct)
        # Everything unacknowledged goes again, first, with the same eid and bytes.
        resend = sorted(st.in_flight.values())
        st.todo.extendleft(reversed(resend))
        st.in_flight.clear()
        _emit({"event": "connected", "acked": len(st.acked), "resend": resend})
        slots = trio.Semaphore(window)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_stream_replies, conn, st, slots, nursery.cancel_scope)
            while st.todo or st.in_flight:
                await slots.acquire()
                if not st.todo:
                    slots.release()
                    await trio.sleep(0.01)
                    continue
                index = st.todo.popleft()
                eid = stream_eid(st.seed, index)
                rid = conn.new_id()
                st.in_flight[rid] = index
                st.sends += 1
                await conn.send(
                    Send(rid, target.mailbox, eid, target.token, STREAM_TTL, stream_body(eid))
                )
                await trio.sleep(1 / rate)
            nursery.cancel_scope.cancel()


async def _stream_replies(
    conn: Conn, st: StreamState, slots: trio.Semaphore, scope: trio.CancelScope
) -> None:
    while True:
        frame = await conn.reply(60)
        index = st.in_flight.pop(getattr(frame, "id", -1), None)
        if index is None:
            raise AssertionError(f"a reply to no request in flight: {frame}")
        slots.release()
        if isinstance(frame, Sent):
            assert frame.eid == stream_eid(st.seed, index)
            st.acked.add(index)
            st.duplicates += frame.duplicate
            _emit({"acked": index, "duplicate": frame.duplicate})
        elif isinstance(frame, Error) and frame.code == "limit.rate":
            st.todo.appendleft(index)
            await trio.sleep(frame.retry_after / 1000)
        else:
            raise AssertionError(f"send {index} refused: {frame}")
        if len(st.acked) == st.count:
            scope.cancel()


async def stream(
    url: str, acct: Account, target: Account, seed: bytes, count: int, rate: float, window: int
) -> None:
    st = StreamState(seed, count, deque(range(count)))
    with trio.fail_after(120):
        while len(st.acked) < count:
            try:
                await _stream_once(url, acct, target, st, rate, window)
            except BaseException as exc:
                if not _network_failure(exc):
                    raise
                _emit({"event": "disconnected", "acked": len(st.acked)})
                await trio.sleep(0.1)
    _emit({"event": "done", "acked": len(st.acked), "sends": st.sends, "duplicates": st.duplicates})


async def receive(url: str, acct: Account, seed: bytes, count: int, seconds: float) -> None:
    index_of = {stream_eid(seed, i): i for i in range(count)}
    seen: set[bytes] = set()
    pushed = bad = unknown = 0
    with trio.move_on_after(seconds):
        async with connect(url) as conn:
            await conn.login(acct)
            while len(seen) < count:
                frame = conn.pushes.pop(0) if conn.pushes else await conn.next_frame(seconds)
                if not isinstance(frame, Deliver):
                    continue
                for env in frame.envelopes:
                    pushed += 1
                    if env.eid in seen:
                        continue  # a duplicate: the application never sees it
                    if env.eid not in index_of:
                        unknown += 1
                    elif env.body != stream_body(env.eid):
                        bad += 1
                    else:
                        seen.add(env.eid)
                        _emit({"delivered": index_of[env.eid]})
                acked = await conn.call(Ack(conn.new_id(), tuple(e.eid for e in frame.envelopes)))
                assert not isinstance(acked, Error), acked
    _emit({"event": "done", "unique": len(seen), "pushed": pushed, "bad": bad, "unknown": unknown})


def main(argv: list[str]) -> None:
    role, url = argv[0], argv[1]
    if role == "send":
        acct = Account.from_json(Path(argv[2]).read_text())
        target = Account.from_json(Path(argv[3]).read_text())
        seed, count = bytes.fromhex(argv[4]), int(argv[5])
        trio.run(stream, url, acct, target, seed, count, float(argv[6]), int(argv[7]))
    elif role == "receive":
        acct = Account.from_json(Path(argv[2]).read_text())
        trio.run(receive, url, acct, bytes.fromhex(argv[3]), int(argv[4]), float(argv[5]))
    else:
        raise SystemExit(f"unknown role {role!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
