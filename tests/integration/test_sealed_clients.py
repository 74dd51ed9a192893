"""Unattributed sealed sending between real clients on real nodes (issue 20).

Two users of one node, then two users of two federated domains, exchange messages with
the client library. After the first contact (an introduction, which names its sender by
design, over the authenticated connection) every envelope leaves over the client's
second, anonymous connection (``/v1/sealed``): the sender's node sees a sealed request
from an address, never from an account. Checked on the node's side:

- its in-memory connection table (``GET /v1/debug/connections``, enabled for the test)
  shows the sending connection holding no account, device or mailbox;
- the stored envelope has no sender, and its envelope id appears nowhere else in the
  store; the origin node's logs never name it, and its metrics never name an account;

and on the client's side: nothing but introductions went over the authenticated
connection once the tokens were known (the pump's two request functions are wrapped to
record what each carried).
"""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Final

import httpx

from client.app import Client
from client.outbox import OutboxPump
from node.store import sqlite_path
from tests.integration.fedharness import LocalFederation, converse, texts, wait_until
from wire.relay import Forward, Introduce, Send, SendBatch, SendShared

SOLO: Final = "solo.test"
ALPHA: Final = "alpha.test"
BRAVO: Final = "bravo.test"
ENV: Final = {"SEALRELAY_DEBUG_CONNECTIONS": "true", "SEALRELAY_LOG_LEVEL": "debug"}
SEALED: Final = (Send, SendBatch, SendShared, Forward)
WITHIN: Final = 30.0


def record(pump: OutboxPump, attribute: str) -> list[Any]:
    """Wrap one of the pump's request functions (``_request``: the authenticated
    connection; ``_sealed``: the anonymous one); the frames it carries from now on."""
    frames: list[Any] = []
    inner: Callable[[Any], Awaitable[Any]] = getattr(pump, attribute)

    async def wrapped(frame: Any) -> Any:
        frames.append(frame)
        return await inner(frame)

    setattr(pump, attribute, wrapped)
    return frames


def eids_of(frames: list[Any]) -> set[bytes]:
    found = set()
    for frame in frames:
        if isinstance(frame, SendBatch):
            found |= {send.eid for send in frame.sends}
        elif isinstance(frame, SEALED):
            found.add(frame.eid)
    return found


async def connection_table(url: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(url + "/v1/debug/connections")
    response.raise_for_status()
    rows: list[dict[str, Any]] = response.json()["connections"]
    return rows


async def metrics_text(url: str) -> str:
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(url + "/metrics")
    response.raise_for_status()
    return response.text


def tables_holding(data_dir: Path, needle: bytes) -> dict[str, list[tuple[Any, ...]]]:
    """The rows of every table of the node's SQLite store that hold ``needle`` (as bytes
    or as text), by table."""
    conn = sqlite3.connect(f"file:{sqlite_path(data_dir)}?mode=ro", uri=True, timeout=10)
    found: dict[str, list[tuple[Any, ...]]] = {}
    try:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for name in names:
            for row in conn.execute(f'SELECT * FROM "{name}"'):  # noqa: S608 (own table names)
                if any(_holds(value, needle) for value in row):
                    found.setdefault(name, []).append(row)
    finally:
        conn.close()
    return found


def _holds(value: object, needle: bytes) -> bool:
    if isinstance(value, bytes):
        return needle in value
    if isinstance(value, str):
        return needle.decode("latin-1") in value
    return False


def check_anonymous_rows(table: list[dict[str, Any]], accounts: set[str]) -> None:
    """At least one anonymous connection, none holding anything of an account, and the
    logged-in ones holding exactly ``accounts``."""
    anonymous = [row for row in table if row["path"] == "sealed"]
    assert anonymous, table
    for row in anonymous:
        assert row["state"] == "anonymous", row
        assert (row["account"], row["device"], row["mailbox"]) == (None, None, None), row
    assert {row["account"] for row in table if row["path"] == "client"} == accounts


async def exchange_sealed(
    a: Client, b: Client, url: str
) -> tuple[bytes, list[dict[str, Any]], list[Any], list[Any]]:
    """``a`` and ``b`` make first contact, then ``a`` sends one message sealed; its eid,
    the node's connection table meanwhile, and what each of ``a``'s connections carried
    for it."""
    async with a.online(), b.online():
        await converse(a, b, WITHIN)
        authenticated = record(a.pump, "_request")
        anonymous = record(a.pump, "_sealed")
        text = f"sealed {secrets.token_hex(4)}"
        result = await a.send(b.device.address, text)
        assert not result.failed
        await wait_until(lambda: text in texts(b), WITHIN, "the sealed message")
        table = await connection_table(url)
    (eid,) = result.eids
    return eid, table, authenticated, anonymous


async def test_two_users_of_one_node_send_sealed_without_their_account(tmp_path: Path) -> None:
    fed = LocalFederation(tmp_path / "fed", [SOLO], env=ENV, suite="xwing")
    try:
        fed.start()
        alice = await fed.enroll(SOLO, "alice", tmp_path / "alice")
        bob = await fed.enroll(SOLO, "bob", tmp_path / "bob")
        a, b = alice.load(), bob.load()
        url = fed.url(SOLO)
        eid, table, authenticated, anonymous = await exchange_sealed(a, b, url)
        check_anonymous_rows(table, {alice.address, bob.address})
        assert eid in eids_of(anonymous)
        assert not eids_of(authenticated)
        assert a.sealed_link.connections >= 1

        # Bob offline: the stored envelope holds no sender, and nothing else holds its id.
        async with a.online():
            text = f"stored {secrets.token_hex(4)}"
            result = await a.send(bob.address, text)
            assert not result.failed
        (stored,) = result.eids
        data_dir = fed.setups[SOLO].data_dir
        rows = tables_holding(data_dir, stored)
        assert list(rows) == ["envelopes"], rows
        (row,) = rows["envelopes"]
        assert None in row  # the sender column
        assert not any(_holds(v, alice.address.encode()) for v in row)
        log = fed.nodes[SOLO].log_text()
        assert eid.hex() not in log
        assert stored.hex() not in log
        assert "alice" not in await metrics_text(url)
        async with b.online():
            await wait_until(lambda: text in texts(b), WITHIN, "the stored message")
            (msg,) = [m for m in b.inbox.messages() if m.text == text]
            assert msg.sender == alice.address  # inside the seal, for bob only
    finally:
        fed.close()


async def test_two_domains_send_sealed_without_the_senders_account(tmp_path: Path) -> None:
    fed = LocalFederation(tmp_path / "fed", [ALPHA, BRAVO], env=ENV, suite="xwing")
    try:
        fed.start()
        alice = await fed.enroll(ALPHA, "alice", tmp_path / "alice")
        bob = await fed.enroll(BRAVO, "bob", tmp_path / "bob")
        a, b = alice.load(), bob.load()
        eid, table, authenticated, anonymous = await exchange_sealed(a, b, fed.url(ALPHA))
        check_anonymous_rows(table, {alice.address})
        assert all(type(f) is Forward for f in anonymous if eid in eids_of([f]))
        assert eid in eids_of(anonymous)
        assert not eids_of(authenticated)
        assert eid.hex() not in fed.nodes[ALPHA].log_text()
        assert "alice" not in await metrics_text(fed.url(ALPHA))
        # The recipient's node stored it from the origin domain, with no sender.
        for row in tables_holding(fed.setups[BRAVO].data_dir, eid).get("envelopes", []):
            assert not any(_holds(v, alice.address.encode()) for v in row)
        assert not tables_holding(fed.setups[ALPHA].data_dir, alice.address.encode()).get(
            "outbound"
        )
    finally:
        fed.close()


async def test_an_introduction_stays_on_the_authenticated_connection(tmp_path: Path) -> None:
    """First contact names its sender by design: it is the one send that does not go
    anonymous (so the node can apply the per-sender introduction limit)."""
    fed = LocalFederation(tmp_path / "fed", [SOLO], env=ENV, suite="xwing")
    try:
        fed.start()
        alice = await fed.enroll(SOLO, "alice", tmp_path / "alice")
        bob = await fed.enroll(SOLO, "bob", tmp_path / "bob")
        a = alice.load()
        authenticated = record(a.pump, "_request")
        anonymous = record(a.pump, "_sealed")
        async with a.online():
            result = await a.send(bob.address, "hello, first contact")
            assert not result.failed
        assert [type(f) for f in authenticated] == [Introduce]
        assert anonymous == []
        assert a.sealed_link.connections == 0
    finally:
        fed.close()
