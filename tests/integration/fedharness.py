"""A local federation of real node processes, and clients on it, for integration and
resilience tests.

    fed = LocalFederation(tmp / "fed", ["alpha.test", "bravo.test"], extra="...")
    fed.start()                              # `sealrelay node serve` per domain, pinned peers
    alice = await fed.enroll("alpha.test", "alice", tmp / "alice")   # a Person
    client = alice.load()                    # a Client over alice's saved state
    async with client.online(): ...
    await fed.metrics("alpha.test")          # the /metrics text; metric(text, name, **labels)
    fed.outbound_rows("alpha.test")          # items in its durable outbound queue
    sign(fed.keys("alpha.test"), ...)        # a federation request signed by hand; put(url, r)
    with DocumentServer(port).running() as server: ...   # a domain without a node
    fed.close()

Ports are picked free first (the peers' endpoints are written into every configuration by
``node.devfed.prepare``), so a node restarted on its data directory keeps its port and its
peers still find it. A person's client state lives in a ``MemoryStore`` that outlives each
test's trio run (the tests are about the nodes). Clients reconnect with a short backoff cap
(``RECONNECT_CAP``; the product's is 30 s), so a test measures the federation's recovery
rather than the client's reconnect schedule.
"""

from __future__ import annotations

import contextlib
import http.server
import re
import secrets
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import httpx
import trio

from client import persist
from client.app import Client
from client.enroll import enroll
from client.net import (
    Backoff,
)
from client.store.memory import MemoryStore
from federation.documents import kem_key
from federation.requestsig import NONCE_LEN, sign_request
from federation.routing import seal_layer
from node.devfed import DomainSetup, prepare
from node.keys import KEY_FILE, ServerKeys
from node.keys import load as load_keys
from node.store import sqlite_path
from tests.integration.nodeproc import NodeProcess, invite
from wire import decode, encode
from wire.federation import RoutingLayer, RoutingRecipient, Transaction, TransactionItem
from wire.server import ServerKeyDocument

LOOPBACK: Final = "127.0.0.1"
RECONNECT_CAP: Final = 1.0
"""Longest wait of a test client between two connection attempts (seconds)."""
DOCUMENT_PATH: Final = "/.well-known/sealrelay/server"


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports free on the loopback interface right now."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind((LOOPBACK, 0))
        return [int(sock.getsockname()[1]) for sock in socks]


class LocalFederation:
    """One ``NodeProcess`` per domain over the layout of ``node.devfed.prepare``."""

    def __init__(
        self,
        base: Path,
        domains: list[str],
        *,
        extra: str = "",
        env: Mapping[str, str] | None = None,
        suite: str = "cnsa2",
        ports: list[int] | None = None,
    ) -> None:
        self.base = base
        self.suite = suite
        ports = ports or free_ports(len(domains))
        self.setups: dict[str, DomainSetup] = {
            s.domain: s for s in prepare(base, domains, ports, suite=suite, extra=extra)
        }
        self.nodes: dict[str, NodeProcess] = {
            s.domain: NodeProcess(
                s.data_dir, domain=s.domain, config=s.config, port=s.port, env=env
            )
            for s in self.setups.values()
        }
        self._invite_locks: dict[str, trio.Lock] = {}

    def start(self, *domains: str) -> None:
        for domain in domains or tuple(self.nodes):
            self.nodes[domain].start()

    def close(self) -> None:
        for node in self.nodes.values():
            with contextlib.suppress(Exception):
                node.close()

    def url(self, domain: str) -> str:
        return self.setups[domain].url

    def root_dir(self, domain: str) -> Path:
        return self.base / f"{domain}-root"

    async def enroll(
        self, domain: str, name: str, home: Path, *, introductions: bool = True
    ) -> Person:
        """A new account ``name@domain``, enrolled on the domain's node."""
        node = self.nodes[domain]
        async with self._invite_locks.setdefault(domain, trio.Lock()):
            code = await trio.to_thread.run_sync(invite, node.data_dir, name)
        store = MemoryStore()
        address = f"{name}@{domain}"
        await enroll(
            store, address, self.url(domain), code, self.suite, introductions=introductions
        )
        return Person(address, store, home)

    async def enroll_all(self, people: Mapping[str, tuple[str, Path]]) -> dict[str, Person]:
        """``{name: (domain, home)}`` enrolled concurrently (one invite at a time per node)."""
        enrolled: dict[str, Person] = {}

        async def one(name: str, domain: str, home: Path) -> None:
            enrolled[name] = await self.enroll(domain, name, home)

        async with trio.open_nursery() as nursery:
            for name, (domain, home) in people.items():
                nursery.start_soon(one, name, domain, home)
        return enrolled

    def keys(self, domain: str) -> ServerKeys:
        """The domain's server keys as its node reads them now (private keys: test only)."""
        return load_keys(self.setups[domain].data_dir / KEY_FILE)

    async def document(self, domain: str) -> ServerKeyDocument:
        """The key document the domain's node serves now."""
        async with httpx.AsyncClient(timeout=10) as http:
            response = await http.get(self.url(domain) + DOCUMENT_PATH)
        response.raise_for_status()
        return decode(response.content, ServerKeyDocument)

    async def metrics(self, domain: str) -> str:
        """The node's ``/metrics`` text."""
        async with httpx.AsyncClient(timeout=10) as http:
            response = await http.get(self.url(domain) + "/metrics")
        response.raise_for_status()
        return response.text

    def outbound_rows(self, domain: str) -> int:
        """Items in the domain's durable outbound queue (read-only look at its SQLite)."""
        path = sqlite_path(self.setups[domain].data_dir)
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
        try:
            return int(conn.execute("SELECT count(*) FROM outbound").fetchone()[0])
        finally:
            conn.close()


@dataclass
class Person:
    """An enrolled account whose client state lives in ``store`` across trio runs; each
    test loads a fresh :class:`Client` from it."""

    address: str
    store: MemoryStore
    home: Path

    def load(self) -> Client:
        self.home.mkdir(parents=True, exist_ok=True)
        info = persist.load_account_info(self.store)
        assert info is not None
        client = Client.load(self.store, save_dir=self.home)
        client.link.backoff = Backoff(cap=RECONNECT_CAP)
        return client

    @property
    def mailbox(self) -> bytes:
        info = persist.load_account_info(self.store)
        assert info is not None
        assert info.mailbox is not None
        return info.mailbox

    @property
    def token(self) -> bytes:
        info = persist.load_account_info(self.store)
        assert info is not None
        return info.delivery_token


def texts(client: Client) -> list[str]:
    """The texts in ``client``'s inbox, in order of receipt."""
    return [msg.text for msg in client.inbox.messages()]


async def converse(a: Client, b: Client, within: float = 20.0) -> None:
    """``a`` writes to ``b`` and ``b`` answers, so each holds the other's delivery token
    (later messages are not introductions). Both must be online."""
    tag = secrets.token_hex(4)
    await a.send(b.device.address, f"hello {tag}")
    await wait_until(lambda: f"hello {tag}" in texts(b), within, "the first message")
    await b.send(a.device.address, f"hello back {tag}")
    await wait_until(lambda: f"hello back {tag}" in texts(a), within, "the answer")


# --- signed federation requests, made by hand -------------------------------------------------


@dataclass(frozen=True)
class SignedRequest:
    method: str
    path: str
    body: bytes
    headers: dict[str, str]


def transaction(
    origin: str,
    destination: str,
    destination_doc: ServerKeyDocument,
    mailbox: bytes,
    token: bytes | None,
    *,
    body: bytes | None = None,
) -> tuple[bytes, bytes]:
    """``(txn_id, encoded Transaction)`` of one item: a routing layer sealed to
    ``destination``'s KEM key, for ``mailbox`` (an opaque ``body`` the recipient drops)."""
    now = int(time.time() * 1000)
    eid = secrets.token_bytes(16)
    layer = RoutingLayer(
        destination=destination,
        eid=eid,
        ttl=3600,
        recipients=(RoutingRecipient(mailbox=mailbox, token=token),),
        body=body if body is not None else secrets.token_bytes(512),
    )
    kem = kem_key(destination_doc, now)
    sealed = seal_layer(kem.suite, kem.id, kem.public, layer)
    item = TransactionItem(eid=eid, expires=now + 3_600_000, layer=sealed)
    txn = Transaction(origin=origin, destination=destination, items=(item,))
    return secrets.token_bytes(16), encode(txn)


def sign(
    keys: ServerKeys,
    origin: str,
    destination: str,
    path: str,
    body: bytes,
    *,
    at_ms: int | None = None,
    method: str = "PUT",
) -> SignedRequest:
    """A request (``PUT`` unless ``method``) of ``body`` to ``path``, signed as ``origin``
    with ``keys``."""
    now = int(time.time() * 1000) if at_ms is None else at_ms
    headers = sign_request(
        keys.suite,
        keys.sig_key,
        keys.sig_key_id,
        method,
        path,
        origin,
        destination,
        body,
        now,
        secrets.token_bytes(NONCE_LEN),
    )
    headers = {"content-type": "application/x-msgpack", **headers}
    return SignedRequest(method, path, body, headers)


async def put(url: str, request: SignedRequest) -> httpx.Response:
    """Send ``request`` (whatever its method) to the node at ``url``."""
    async with httpx.AsyncClient(timeout=15) as http:
        return await http.request(
            request.method, url + request.path, content=request.body, headers=request.headers
        )


def metric(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels`` (0 if none)."""
    total = 0.0
    pattern = re.compile(rf"^{re.escape(name)}(?:\{{(.*)\}})? (\S+)$")
    for line in text.splitlines():
        m = pattern.match(line)
        if m is None:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(1) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(m.group(2))
    return total


def data_files(directory: Path) -> Iterator[Path]:
    """Every regular file under ``directory``."""
    yield from (p for p in sorted(directory.rglob("*")) if p.is_file())


async def wait_until(
    check: Callable[[], bool], within: float, what: str, *, poll: float = 0.1
) -> float:
    """Poll ``check`` until it is true; seconds it took, AssertionError after ``within``."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > within:
            raise AssertionError(f"{what}: not within {within} s")
        await trio.sleep(poll)
    return time.monotonic() - start


# --- a stand-in for a domain without a node -----------------------------------------------------


class DocumentServer:
    """Serves ``document`` at the key document path on ``port`` (a domain's configured
    endpoint where no node runs)."""

    def __init__(self, port: int) -> None:
        self.document = b""
        self.fetches = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path != DOCUMENT_PATH:
                    self.send_error(404)
                    return
                outer.fetches += 1
                self.send_response(200)
                self.send_header("content-type", "application/x-msgpack")
                self.send_header("content-length", str(len(outer.document)))
                self.end_headers()
                self.wfile.write(outer.document)

            def do_POST(self) -> None:  # hellos from the nodes: not a node
                self.send_error(404)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer((LOOPBACK, port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @contextlib.contextmanager
    def running(self) -> Iterator[DocumentServer]:
        self.thread.start()
        try:
            yield self
        finally:
            self.server.shutdown()
            self.server.server_close()
