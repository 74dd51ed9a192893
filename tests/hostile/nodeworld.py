"""The real nodes the node-boundary cases go to, and a node's state before and after.

``alpha`` (cnsa2, the target) and ``bravo`` (cnsa2, its pinned peer, whose keys sign the
federation requests) run as ``sealrelay node serve`` processes for the whole module, and
so does ``xray``, a node of no federation on the xwing suite, for the X25519 cases.
``delta`` is a peer alpha pins, with no node: a test serves its key document.
``charlie`` is only server keys, of no peer: they sign forgeries.

On each target, ``victim`` is a registered device with published prekeys and a delivery
token, and ``sender`` an authenticated device that sends. ``newcomer`` holds an unspent
enrollment code; every refused registration must leave it unspent (the last check of the
module spends it).

:func:`node_state` is what must not change when an input is refused: a digest of every
table of the node's SQLite store but the federation nonces (peers' hellos write those at
any time; a nonce is checked by reusing it in a valid request instead), plus its
envelope counters from ``/metrics``.
"""

from __future__ import annotations

import hashlib
import http.server
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import httpx
import trio

from client.entropy import SYSTEM_ENTROPY
from client.identity import Identity, PrekeyPool
from node import accounts
from node.keys import ServerKeys, generate
from node.store import open_store, sqlite_path
from suites import Suite, get_suite, get_suite_by_id, labels
from tests.integration.fedharness import (
    DOCUMENT_PATH,
    LOOPBACK,
    LocalFederation,
    SignedRequest,
    metric,
)
from tests.integration.nodeproc import NodeProcess
from tests.integration.rawclient import Account, connect, token_verifier
from wire import encode
from wire.relay import (
    PURPOSE_REGISTER,
    AuthPayload,
    Hello,
    PrekeyStatus,
    PublishPrekeys,
    Register,
    Registered,
    SetDeliveryToken,
)
from wire.server import ServerKeyDocument

ALPHA: Final = "alpha.test"
BRAVO: Final = "bravo.test"
CHARLIE: Final = "charlie.test"
DELTA: Final = "delta.test"
XRAY: Final = "xray.test"
TABLES: Final = (
    "invites",
    "devices",
    "token_verifiers",
    "prekeys",
    "one_time_keys",
    "envelopes",
    "blobs",
    "introductions",
    "outbound",
    "fed_txns",
    "shared_bodies",
)
ONE_TIME_KEYS: Final = 4
INVITE_TTL_MS: Final = 3_600_000
COUNTERS: Final = (
    "sealrelay_envelopes_accepted_total",
    "sealrelay_federation_received_total",
    "sealrelay_federation_fanout_records_total",
)


@dataclass
class Member:
    """A registered device, with its private identity and prekeys (test only)."""

    account: Account
    identity: Identity
    pool: PrekeyPool
    hello: Hello
    """The Hello of the connection it registered on: a spent challenge."""

    @property
    def suite(self) -> Suite:
        return self.identity.suite


@dataclass
class Target:
    """One node under attack and its members."""

    domain: str
    url: str
    data_dir: Path
    victim: Member
    sender: Member
    newcomer: str
    """An unspent enrollment code for the name ``newcomer``."""


class DocumentServer:
    """Serves ``document`` as delta's key document on delta's configured port (delta is
    a pinned peer of alpha's with no node: what it serves is the test's to choose)."""

    def __init__(self, port: int) -> None:
        self.document = b""
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200 if self.path == DOCUMENT_PATH else 404)
                self.send_header("content-length", str(len(outer.document)))
                self.end_headers()
                self.wfile.write(outer.document)

            def do_POST(self) -> None:  # alpha's hello: not a node
                self.send_error(404)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer((LOOPBACK, port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class NodeWorld:
    fed: LocalFederation
    xray: NodeProcess
    charlie: ServerKeys
    """Server keys of a domain that is no peer (they sign forgeries)."""
    delta: DocumentServer
    targets: dict[str, Target] = field(default_factory=dict)
    docs: dict[str, ServerKeyDocument] = field(default_factory=dict)
    """The key documents alpha and bravo serve."""

    def target(self, domain: str) -> Target:
        return self.targets[domain]


async def register(url: str, name: str, code: str) -> Member:
    """Enroll ``name``, set a delivery token and publish a full set of prekeys."""
    async with connect(url) as conn:
        hello = conn.hello
        suite = get_suite_by_id(hello.suite)
        identity = Identity.generate(suite, SYSTEM_ENTROPY)
        address = f"{name}@{hello.server}"
        payload = AuthPayload(PURPOSE_REGISTER, hello.server, hello.nonce, address, 0)
        sig = identity.sign(encode(payload), labels.CTX_DEVICE_AUTH)
        reg = await conn.call(Register(1, code, name, identity.public, sig))
        assert isinstance(reg, Registered), reg
        token = secrets.token_bytes(16)
        await conn.call(SetDeliveryToken(2, token_verifier(token)))
        pool = _small_pool(identity)
        status = await conn.call(PublishPrekeys(3, pool.upload()))
        assert isinstance(status, PrekeyStatus), status
        assert status.one_time > 0
    sig_key = suite.sig.private_key_bytes(identity.sig_key)
    account = Account(reg.address, reg.device, reg.mailbox, token, suite.name, sig_key)
    return Member(account, identity, pool, hello)


def _small_pool(identity: Identity) -> PrekeyPool:
    """A prekey pool with a few one-time keys (the corpus needs some, not a hundred)."""
    pool = PrekeyPool.create(identity, SYSTEM_ENTROPY)
    for keys in (pool.one_time_dh, pool.one_time_kem):
        for key_id in sorted(keys)[ONE_TIME_KEYS:]:
            del keys[key_id]
    return pool


async def invites(data_dir: Path, *names: str) -> list[str]:
    """Enrollment codes for ``names``, written to the node's store as ``sealrelay admin
    invite`` does (in this process: a command per code costs seconds on a loaded machine)."""
    store = await open_store("sqlite", str(data_dir))
    codes = []
    try:
        for name in names:
            raw = secrets.token_bytes(accounts.CODE_BYTES)
            expires = int(time.time() * 1000) + INVITE_TTL_MS
            await store.add_invite(accounts.code_hash(raw), name, expires)
            codes.append(accounts.format_code(raw))
    finally:
        await store.aclose()
    return codes


async def _target(world: NodeWorld, domain: str, url: str, data_dir: Path) -> None:
    victim_code, sender_code, newcomer = await invites(data_dir, "victim", "sender", "newcomer")
    victim = await register(url, "victim", victim_code)
    sender = await register(url, "sender", sender_code)
    world.targets[domain] = Target(domain, url, data_dir, victim, sender, newcomer)


async def _setup(world: NodeWorld) -> None:
    nodes = [world.fed.nodes[ALPHA], world.fed.nodes[BRAVO], world.xray]
    async with trio.open_nursery() as nursery:
        for node in nodes:
            nursery.start_soon(trio.to_thread.run_sync, node.start)
    alpha = world.fed.setups[ALPHA]
    assert world.xray.url is not None
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_target, world, ALPHA, alpha.url, alpha.data_dir)
        nursery.start_soon(_target, world, XRAY, world.xray.url, world.xray.data_dir)
    for domain in (ALPHA, BRAVO):
        world.docs[domain] = await world.fed.document(domain)


def start_world(base: Path) -> Iterator[NodeWorld]:
    """The module's nodes, running until the generator is closed."""
    fed = LocalFederation(base / "fed", [ALPHA, BRAVO, DELTA])
    config = base / "xray.toml"
    config.write_text(f'suite = "{labels.SUITE_XWING}"\nstore = "sqlite"\n')
    xray = NodeProcess(base / "xray", domain=XRAY, config=config)
    delta = DocumentServer(fed.setups[DELTA].port)
    try:
        world = NodeWorld(fed, xray, generate(get_suite(labels.SUITE_CNSA2)), delta)
        trio.run(_setup, world)
        yield world
    finally:
        fed.close()
        xray.close()
        delta.close()


# --- state -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeState:
    tables: dict[str, str]
    counters: dict[str, float]


def store_digest(data_dir: Path) -> dict[str, str]:
    """Per table, a digest of all its rows (read-only, beside the running node)."""
    path = sqlite_path(data_dir)
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        digests = {}
        for table in TABLES:
            rows = conn.execute(f"SELECT * FROM {table}").fetchall()  # noqa: S608 - constant names
            text = "\n".join(sorted(repr(row) for row in rows))
            digests[table] = f"{len(rows)}:{hashlib.sha256(text.encode()).hexdigest()[:16]}"
        return digests
    finally:
        conn.close()


async def metrics_text(http: httpx.AsyncClient, url: str) -> str:
    response = await http.get(url + "/metrics")
    response.raise_for_status()
    return response.text


async def node_state(http: httpx.AsyncClient, target: Target) -> NodeState:
    text = await metrics_text(http, target.url)
    counters = {name: metric(text, name) for name in COUNTERS}
    return NodeState(store_digest(target.data_dir), counters)


async def healthy(http: httpx.AsyncClient, url: str) -> bool:
    return (await http.get(url + "/healthz")).status_code == 200


async def declare(url: str, request: SignedRequest, length: int) -> tuple[int, bytes]:
    """Send ``request``'s head declaring a body of ``length`` bytes, and none of it; the
    status and body of the answer (read until the node closes or answers in full)."""
    host, port = url.removeprefix("http://").split(":")
    head = [f"{request.method} {request.path} HTTP/1.1", f"host: {host}:{port}"]
    head += [f"{k}: {v}" for k, v in request.headers.items()]
    head += [f"content-length: {length}", "connection: close", "", ""]
    stream = await trio.open_tcp_stream(host, int(port))
    async with stream:
        await stream.send_all("\r\n".join(head).encode("latin-1"))
        data = b""
        with trio.fail_after(15):
            while chunk := await stream.receive_some():
                data += chunk
    status_line, _, rest = data.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]
