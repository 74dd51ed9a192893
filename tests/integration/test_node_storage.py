"""What a real node keeps on disk: never a secret, and nothing past its TTL.

Secrets: two users talk through the `sealrelay` command line (an introduction, a normal
sealed send with the delivery token, a text with a distinctive marker and an attachment).
Then the node's whole data directory (SQLite with -wal and -shm, blob files, keys), its
stderr log and its stdout are searched for the plaintexts, the attachment's name and
bytes, the delivery tokens and the passphrases, and the envelope rows for the users'
addresses; the log must never name an address next to a send.

TTL: envelopes and blobs with a 2 s TTL are never delivered (or served) once expired, even
before a sweep, and after a sweep their rows and blob files are gone.
"""

from __future__ import annotations

import base64
import os
import secrets
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import httpx
import pytest
import trio

from client import persist
from client.store.sqlite import SqliteStore
from tests.integration import rawclient
from tests.integration.nodeproc import NodeProcess, invite, json_lines, run_cli
from tests.integration.rawclient import Account, connect
from wire.relay import BlobGrant, RequestBlobUpload

DOMAIN: Final = "storage.test"
DB_FILE: Final = "node.sqlite3"
BLOB_DIR: Final = "node.sqlite3-blobs"


def node_files(data_dir: Path) -> dict[str, bytes]:
    """Every file of the data directory and the node's log, by name."""
    found = {
        str(p.relative_to(data_dir)): p.read_bytes() for p in data_dir.rglob("*") if p.is_file()
    }
    found["<stderr log>"] = data_dir.with_name(data_dir.name + ".log").read_bytes()
    return found


def envelope_rows(data_dir: Path) -> list[dict[str, Any]]:
    """Stored envelopes (acked tombstones too) with the address owning the mailbox."""
    uri = f"file:{data_dir / DB_FILE}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True)) as db:
        db.row_factory = sqlite3.Row
        rows = db.execute(
            "SELECT e.eid, e.sender, e.body, e.origin, d.address AS owner FROM envelopes e"
            " LEFT JOIN devices d ON d.mailbox = e.mailbox ORDER BY e.seq"
        ).fetchall()
    return [dict(row) for row in rows]


# --- secrets ---------------------------------------------------------------------------------


@dataclass
class User:
    name: str
    home: Path
    passphrase: str

    @property
    def address(self) -> str:
        return f"{self.name}@{DOMAIN}"

    @property
    def env(self) -> dict[str, str]:
        return {"SEALRELAY_PASSPHRASE": self.passphrase, "SEALRELAY_TIMEOUT": "60"}

    def cli(self, *args: str) -> list[dict[str, Any]]:
        result = run_cli("client", args[0], "--home", str(self.home), *args[1:], env=self.env)
        return json_lines(result.stdout)

    def send(self, to: User, text: str, *extra: str) -> bytes:
        (out,) = self.cli("send", to.address, text, *extra)
        (eid,) = out["eids"]
        return bytes.fromhex(eid)

    def delivery_token(self) -> bytes:
        store = SqliteStore.open(self.home / "state.db", self.passphrase)
        try:
            info = persist.load_account_info(store)
        finally:
            store.close()
        assert info is not None
        return info.delivery_token


def encodings(secret: bytes) -> list[bytes]:
    """``secret`` as raw bytes, hex (both cases) and base64 (both alphabets, unpadded)."""
    b64 = base64.b64encode(secret).rstrip(b"=")
    return [
        secret,
        secret.hex().encode(),
        secret.hex().upper().encode(),
        b64,
        base64.urlsafe_b64encode(secret).rstrip(b"="),
    ]


def test_node_storage_and_logs_hold_no_secrets(tmp_path: Path) -> None:
    marker = f"PLAINTEXT-MARKER-{secrets.token_hex(8)}"
    attach_marker = f"ATTACHMENT-MARKER-{secrets.token_hex(8)}".encode()
    attach_name = f"plan-{secrets.token_hex(6)}.txt"
    env = {"SEALRELAY_SUITE": "xwing", "SEALRELAY_LOG_LEVEL": "debug"}
    with NodeProcess(tmp_path / "node", domain=DOMAIN, env=env) as node:
        url = node.start()
        alice, bob = (User(n, tmp_path / n, f"pass-{n}-{secrets.token_hex(6)}") for n in "ab")
        for user in (alice, bob):
            code = invite(node.data_dir, user.name)
            user.cli("register", user.address, "--node", url, "--code", code, "--suite", "xwing")

        # First contact: an introduction (the node knows alice sent it, by design).
        first = alice.send(bob, f"{marker} one")
        (row,) = envelope_rows(node.data_dir)
        assert (row["eid"], row["owner"], row["sender"]) == (first, bob.address, alice.address)
        assert [m["text"] for m in bob.cli("receive")] == [f"{marker} one"]
        # bob learned alice's token from the message: a sealed send, sender unknown.
        reply = bob.send(alice, f"{marker} two")
        pending = [r for r in envelope_rows(node.data_dir) if r["body"] is not None]
        assert [(r["eid"], r["owner"], r["sender"]) for r in pending] == [
            (reply, alice.address, None)
        ]
        assert [m["text"] for m in alice.cli("receive")] == [f"{marker} two"]
        # A sealed send with an attachment.
        original = tmp_path / attach_name
        original.write_bytes(attach_marker * 4096)
        third = alice.send(bob, f"{marker} three", "--attach", str(original))
        pending = [r for r in envelope_rows(node.data_dir) if r["body"] is not None]
        assert [(r["eid"], r["owner"], r["sender"]) for r in pending] == [
            (third, bob.address, None)
        ]
        blob_files = list((node.data_dir / BLOB_DIR).iterdir())
        assert len(blob_files) == 1
        stored_while_pending = node_files(node.data_dir)
        (got,) = bob.cli("receive", "--save-dir", str(tmp_path / "saved"))
        assert got["text"] == f"{marker} three"
        assert Path(got["attachments"][0]["path"]).read_bytes() == original.read_bytes()

        tokens = [alice.delivery_token(), bob.delivery_token()]
        rows = envelope_rows(node.data_dir)
        stored_after = node_files(node.data_dir)
    stored_after_stop = node_files(node.data_dir)  # the WAL checkpointed into the file
    stdout = "".join(iter_stdout(node)).encode()
    assert len(rows) == 3
    # The search does see what the node stores (eids are kept as raw bytes).
    assert any(third in data for data in stored_while_pending.values())

    # Envelope rows: no address in any body; a sender only on the introduction.
    addresses = [u.address.encode() for u in (alice, bob)]
    for r in rows:
        assert r["sender"] is None or r["eid"] == first
        for needle in [*addresses, marker.encode(), attach_marker, *tokens]:
            assert r["body"] is None or needle not in r["body"]
        assert r["origin"] in ("", DOMAIN)

    # Files and logs: no plaintext, attachment, token or passphrase anywhere.
    haystacks = {f"{k} (while pending)": v for k, v in stored_while_pending.items()}
    haystacks |= {f"{k} (after stop)": v for k, v in stored_after_stop.items()}
    haystacks |= {**stored_after, "<stdout>": stdout}
    needles = {
        "the text marker": [marker.encode(), marker.encode("utf-16-le")],
        "the attachment's bytes": [attach_marker],
        "the attachment's name": [attach_name.encode()],
        "alice's passphrase": [alice.passphrase.encode()],
        "bob's passphrase": [bob.passphrase.encode()],
        "alice's delivery token": encodings(tokens[0]),
        "bob's delivery token": encodings(tokens[1]),
    }
    leaks = [
        f"{what} in {name}"
        for name, data in haystacks.items()
        for what, forms in needles.items()
        if any(form in data for form in forms)
    ]
    assert not leaks, leaks

    # Logs name an account only when it registers, never next to a send or a delivery.
    log_lines = json_lines(node.log_text()) + json_lines(stdout.decode())
    named = [e for e in log_lines if any(a.decode() in str(e) for a in addresses)]
    assert named, "expected the registrations in the log"
    assert {e.get("msg") for e in named} <= {"registered", "authenticated"}, named


def iter_stdout(node: NodeProcess) -> Iterator[str]:
    """The node's stdout lines after its "listening" line (read by NodeProcess)."""
    lines = node._lines  # once the node stopped, every line is queued
    while not lines.empty():
        line = lines.get_nowait()
        if line is not None:
            yield line


# --- TTL -------------------------------------------------------------------------------------


TTL: Final = 2


@dataclass
class TtlWorld:
    node: NodeProcess
    url: str
    alice: Account
    bob: Account


def ttl_world(tmp_path: Path, sweep_interval: float) -> Iterator[TtlWorld]:
    env = {"SEALRELAY_SUITE": "xwing", "SEALRELAY_SWEEP_INTERVAL": str(sweep_interval)}
    with NodeProcess(tmp_path / "node", domain=DOMAIN, env=env) as node:
        url = node.start()
        alice, bob = (
            trio.run(rawclient.register, url, name, invite(node.data_dir, name))
            for name in ("alice", "bob")
        )
        yield TtlWorld(node, url, alice, bob)
        assert '"level": "error"' not in node.log_text()


@pytest.fixture
def unswept(tmp_path: Path) -> Iterator[TtlWorld]:
    """A node whose sweeper will not run during the test."""
    yield from ttl_world(tmp_path, 3600)


@pytest.fixture
def swept(tmp_path: Path) -> Iterator[TtlWorld]:
    yield from ttl_world(tmp_path, 0.5)


async def upload_blob(url: str, conn: rawclient.Conn, data: bytes, ttl: int) -> bytes:
    grant = await conn.call(RequestBlobUpload(conn.new_id(), len(data), ttl))
    assert isinstance(grant, BlobGrant), grant
    headers = {"Authorization": f"Bearer {grant.upload_token.hex()}"}
    async with httpx.AsyncClient() as http:
        put = await http.put(f"{url}/v1/blobs/{grant.blob.hex()}", content=data, headers=headers)
    assert put.status_code == 201, put.text
    return grant.blob


async def get_blob(url: str, blob: bytes) -> httpx.Response:
    async with httpx.AsyncClient() as http:
        return await http.get(f"{url}/v1/blobs/{blob.hex()}")


async def wait_until(deadline_wall: float) -> None:
    await trio.sleep(max(0.0, deadline_wall - time.time()))


async def test_expired_envelopes_and_blobs_are_never_delivered(unswept: TtlWorld) -> None:
    w = unswept
    short_body, keep_body, blob_data = os.urandom(1024), os.urandom(1024), os.urandom(4096)
    async with connect(w.url) as alice:
        await alice.login(w.alice)
        short = await alice.send_envelope(w.bob, short_body, ttl=TTL)
        keep = await alice.send_envelope(w.bob, keep_body, ttl=600)
        expiry = time.time() + TTL
        # bob is pushed the short one while it lives, but does not ack it.
        async with connect(w.url) as bob:
            await bob.login(w.bob)
            got = await bob.wait_delivered(2)
            assert [env.eid for env in got] == [short.eid, keep.eid]
        blob = await upload_blob(w.url, alice, blob_data, TTL)
        blob_expiry = time.time() + TTL
    assert (await get_blob(w.url, blob)).content == blob_data
    await wait_until(max(expiry, blob_expiry) + 0.3)

    assert (await get_blob(w.url, blob)).status_code == 404
    async with connect(w.url) as bob:
        auth = await bob.login(w.bob)
        assert auth.pending == 1
        got = await bob.backlog()
        assert [env.eid for env in got] == [keep.eid]
        await bob.ack(got)
    # Not swept yet: the row is still there, it was just never delivered.
    assert short.eid in {r["eid"] for r in envelope_rows(w.node.data_dir)}


async def test_the_sweep_removes_expired_envelopes_and_blobs(swept: TtlWorld) -> None:
    w = swept
    short_body, keep_body, blob_data = os.urandom(1024), os.urandom(1024), os.urandom(4096)
    async with connect(w.url) as alice:
        await alice.login(w.alice)
        short = await alice.send_envelope(w.bob, short_body, ttl=TTL)
        keep = await alice.send_envelope(w.bob, keep_body, ttl=600)
        blob = await upload_blob(w.url, alice, blob_data, TTL)
        keep_blob = await upload_blob(w.url, alice, os.urandom(4096), 600)
    expiry = time.time() + TTL
    blob_dir = w.node.data_dir / BLOB_DIR
    assert {p.name for p in blob_dir.iterdir()} == {blob.hex(), keep_blob.hex()}
    assert {r["eid"] for r in envelope_rows(w.node.data_dir)} == {short.eid, keep.eid}
    await wait_until(expiry + 1.5)  # three sweeps

    assert {r["eid"] for r in envelope_rows(w.node.data_dir)} == {keep.eid}
    assert {p.name for p in blob_dir.iterdir()} == {keep_blob.hex()}
    assert (await get_blob(w.url, blob)).status_code == 404
    async with connect(w.url) as bob:
        auth = await bob.login(w.bob)
        assert auth.pending == 1
        got = await bob.backlog()
        assert [env.eid for env in got] == [keep.eid]
        await bob.ack(got)


async def test_the_sweep_leaves_no_expired_bytes_on_disk(swept: TtlWorld) -> None:
    """DESIGN section 4: "nodes never hold an envelope or blob past its TTL" -- not as a
    row, and not as bytes left in the database file, its WAL or the blob directory."""
    w = swept
    short_body, blob_data = os.urandom(1024), os.urandom(4096)
    async with connect(w.url) as alice:
        await alice.login(w.alice)
        await alice.send_envelope(w.bob, short_body, ttl=TTL)
        await upload_blob(w.url, alice, blob_data, TTL)
    expiry = time.time() + TTL
    files = node_files(w.node.data_dir)
    assert any(short_body in data for data in files.values())
    assert any(blob_data in data for data in files.values())
    await wait_until(expiry + 1.5)  # three sweeps
    assert envelope_rows(w.node.data_dir) == []
    files = node_files(w.node.data_dir)
    leftovers = [name for name, data in files.items() if short_body in data or blob_data in data]
    assert not leftovers, f"expired bytes still on disk in {leftovers}"
