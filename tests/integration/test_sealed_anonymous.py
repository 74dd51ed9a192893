"""The anonymous connection (``/v1/sealed``, issue 20) against a real node, frame by frame.

Sealed sending needs no login: a connection to ``/v1/sealed`` is authorised only by the
recipients' delivery tokens. A wrong or missing token is refused with its stable code,
anything but sealed sending (a login, an introduction, a prekey request) with
``auth.anonymous``, and the node's debug dump shows that the connection holds no account.
Abuse control without an identity: a flood from one address is throttled (``limit.rate``)
while clients at other addresses, anonymous or logged in, keep working; a flood to one
mailbox is throttled per mailbox (``limit.mailbox``) without touching other mailboxes, and
sends with a bad token never spend a mailbox's allowance.

Each client connects from its own loopback address (127.0.x.y), as a client on another
host would, so the per-address limits tell them apart. The sealed limits are lowered in
this node's configuration so that a flood is short.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

import httpx
import pytest
import trio

from tests.integration import rawclient
from tests.integration.nodeproc import NodeProcess, invite
from tests.integration.rawclient import SEALED_PATH, Account, Conn, connect
from wire.relay import (
    Auth,
    Error,
    GetPrekeyStatus,
    Introduce,
    Ping,
    Pong,
    PrekeyStatus,
    Send,
    SendBatch,
    SendShared,
    Sent,
    SentBatch,
    SentShared,
    SharedRecipient,
)

DOMAIN: Final = "sealed.test"
SEALED_IP_RATE: Final = 2
SEALED_IP_BURST: Final = 40
MAILBOX_RATE: Final = 1
MAILBOX_BURST: Final = 50
NODE_ENV: Final = {
    "SEALRELAY_SUITE": "xwing",
    "SEALRELAY_LOG_LEVEL": "debug",
    "SEALRELAY_DEBUG_CONNECTIONS": "true",
    "SEALRELAY_RATE_SEALED_IP_PER_S": str(SEALED_IP_RATE),
    "SEALRELAY_RATE_SEALED_IP_BURST": str(SEALED_IP_BURST),
    "SEALRELAY_RATE_SEALED_MAILBOX_PER_S": str(MAILBOX_RATE),
    "SEALRELAY_RATE_SEALED_MAILBOX_BURST": str(MAILBOX_BURST),
    "SEALRELAY_SHUTDOWN_TIMEOUT": "3",
}
NAMES: Final = ("alice", "bob", "carol", "dave", "erin")
TTL: Final = 3600


@dataclass
class World:
    node: NodeProcess
    url: str
    people: dict[str, Account]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("sealed")
    with NodeProcess(root / "node", domain=DOMAIN, env=NODE_ENV) as node:
        url = node.start()
        people = {
            name: trio.run(rawclient.register, url, name, invite(node.data_dir, name))
            for name in NAMES
        }
        yield World(node, url, people)


def send(to: Account, *, token: bytes | None = None, body: bytes = b"sealed") -> Send:
    return Send(0, to.mailbox, secrets.token_bytes(16), token, TTL, body)


async def call(conn: Conn, frame: Any) -> Any:
    return await conn.call(dataclasses.replace(frame, id=conn.new_id()))


async def connection_table(url: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(url + "/v1/debug/connections")
    response.raise_for_status()
    rows: list[dict[str, Any]] = response.json()["connections"]
    return rows


async def test_sealed_sending_needs_no_login_and_the_connection_holds_no_account(
    world: World,
) -> None:
    bob = world.people["bob"]
    async with (
        connect(world.url, source="127.0.2.1") as reader,
        connect(world.url, source="127.0.2.2", path=SEALED_PATH) as sealed,
    ):
        await reader.login(bob)
        await reader.backlog()
        body = b"unattributed " + secrets.token_bytes(8)
        sent = await call(sealed, send(bob, token=bob.token, body=body))
        assert isinstance(sent, Sent)
        assert not sent.duplicate
        (envelope,) = await reader.wait_delivered(1)
        assert envelope.body == body
        assert envelope.sender is None
        assert envelope.origin == DOMAIN
        await reader.ack([envelope])
        table = await connection_table(world.url)
    anonymous = [row for row in table if row["path"] == "sealed"]
    logged_in = [row for row in table if row["path"] == "client"]
    assert anonymous, table
    for row in anonymous:
        assert row["state"] == "anonymous"
        assert row["account"] is None
        assert row["device"] is None
        assert row["mailbox"] is None
    assert bob.address in {row["account"] for row in logged_in}
    assert sent.eid.hex() not in world.node.log_text()


async def test_a_wrong_or_missing_token_is_refused_with_a_stable_code(world: World) -> None:
    bob, carol = world.people["bob"], world.people["carol"]
    wrong = secrets.token_bytes(16)
    async with connect(world.url, source="127.0.2.3", path=SEALED_PATH) as sealed:
        refused = await call(sealed, send(bob, token=wrong))
        assert isinstance(refused, Error)
        assert refused.code == "send.bad_token"
        missing = await call(sealed, send(bob, token=None))
        assert isinstance(missing, Error)
        assert missing.code == "send.token_required"
        nowhere = Send(0, secrets.token_bytes(16), secrets.token_bytes(16), wrong, TTL, b"x")
        unknown = await call(sealed, nowhere)
        assert isinstance(unknown, Error)
        assert unknown.code == "send.no_mailbox"
        recipients = (SharedRecipient(bob.mailbox, bob.token), SharedRecipient(carol.mailbox, None))
        shared = SendShared(0, secrets.token_bytes(16), TTL, recipients, b"group")
        answer = await call(sealed, shared)
        assert isinstance(answer, SentShared)
        # Without a sender there is no introduction: a recipient needs its token.
        assert answer.results == ("", "send.token_required")
        batch = SendBatch(0, (send(bob, token=bob.token), send(bob, token=wrong)))
        results = await call(sealed, batch)
        assert isinstance(results, SentBatch)
        assert isinstance(results.results[0], Sent)
        assert isinstance(results.results[1], Error)
        assert results.results[1].code == "send.bad_token"
        pong = await call(sealed, Ping(0))
        assert isinstance(pong, Pong)


@pytest.mark.parametrize(
    "frame",
    [
        Introduce(0, bytes(16), bytes(16), TTL, b"hello"),
        GetPrekeyStatus(0),
        Auth(0, f"bob@{DOMAIN}", 1, bytes(64)),
    ],
    ids=["introduce", "prekeys", "auth"],
)
async def test_anything_but_sealed_sending_is_refused_auth_anonymous(
    world: World, frame: Any
) -> None:
    async with connect(world.url, source="127.0.2.4", path=SEALED_PATH) as sealed:
        answer = await call(sealed, frame)
        assert isinstance(answer, Error)
        assert answer.code == "auth.anonymous"
        still = await call(sealed, send(world.people["bob"], token=world.people["bob"].token))
        assert isinstance(still, Sent)


async def test_a_flood_from_one_address_is_throttled_while_others_keep_working(
    world: World,
) -> None:
    """The flooding address gets ``limit.rate`` (with ``retry_after``) once its sealed
    allowance is spent; an anonymous sender at another address and a logged-in client
    are answered all along."""
    alice, carol, dave = world.people["alice"], world.people["carol"], world.people["dave"]
    flood_size = SEALED_IP_BURST + 30
    async with (
        connect(world.url, source="127.0.3.1", path=SEALED_PATH) as flooder,
        connect(world.url, source="127.0.3.2", path=SEALED_PATH) as other,
        connect(world.url, source="127.0.3.3") as logged_in,
    ):
        await logged_in.login(alice)
        await logged_in.backlog()
        codes: list[str] = []
        for n in range(flood_size):
            answer = await call(flooder, send(carol, token=carol.token))
            codes.append("" if isinstance(answer, Sent) else answer.code)
            if n % 10 == 0:
                ok = await call(other, send(dave, token=dave.token))
                assert isinstance(ok, Sent), ok
                status = await call(logged_in, GetPrekeyStatus(0))
                assert isinstance(status, PrekeyStatus), status
        limited = [code for code in codes if code]
        assert set(limited) == {"limit.rate"}
        # The burst passed (give or take what refilled meanwhile), the rest was throttled.
        assert SEALED_IP_BURST <= codes.count("") < flood_size
        refusal = await call(flooder, send(carol, token=carol.token))
        assert isinstance(refusal, Error)
        assert refusal.code == "limit.rate"
        assert refusal.retry_after > 0
        ok = await call(other, send(dave, token=dave.token))
        assert isinstance(ok, Sent)


async def test_a_flood_to_one_mailbox_is_throttled_per_mailbox(world: World) -> None:
    """Sealed envelopes with a valid token spend the recipient mailbox's allowance, from
    any address (``limit.mailbox``); another mailbox is not touched, and sends with a bad
    token never spend it."""
    bob, erin = world.people["bob"], world.people["erin"]
    codes: list[str] = []
    for n in range(4):
        async with connect(world.url, source=f"127.0.4.{n + 1}", path=SEALED_PATH) as sealed:
            for _ in range(MAILBOX_BURST // 4 + 5):
                answer = await call(sealed, send(erin, token=erin.token))
                codes.append("" if isinstance(answer, Sent) else answer.code)
            bad = await call(sealed, send(bob, token=secrets.token_bytes(16)))
            assert bad.code == "send.bad_token"
    assert codes.count("") < len(codes)
    assert set(codes) == {"", "limit.mailbox"}
    async with connect(world.url, source="127.0.4.9", path=SEALED_PATH) as sealed:
        for _ in range(3):
            bad = await call(sealed, send(bob, token=secrets.token_bytes(16)))
            assert bad.code == "send.bad_token"
        refused = await call(sealed, send(erin, token=erin.token))
        assert isinstance(refused, Error)
        assert refused.code == "limit.mailbox"
        assert refused.retry_after > 0
        ok = await call(sealed, send(bob, token=bob.token))
        assert isinstance(ok, Sent)
