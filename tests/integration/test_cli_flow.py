"""Two users on one real node, driven only through the `sealrelay` command line.

Enrollment with `sealrelay admin invite` + `sealrelay client register`, text both ways, a
5 MiB attachment (digest verified, file saved), a disappearing message that leaves the
recipient's store once its timer ran out, and matching safety numbers; an account
registered with ``--no-introductions`` refuses a first message.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from client.inbox import Inbox
from client.store.sqlite import SqliteStore
from tests.integration.nodeproc import (
    CliUser,
    NodeProcess,
    invite,
    json_lines,
    run_cli,
    sealrelay_command,
)

DOMAIN = "example.test"


@dataclass
class User(CliUser):
    domain = DOMAIN

    def send(self, to: User, text: str, *extra: str) -> str:
        out = json_lines(self.cli("send", to.address, text, *extra).stdout)
        assert out[0]["to"] == to.address
        (eid,) = out[0]["eids"]  # one device
        return str(eid)

    def receive(self, *extra: str, cwd: Path | None = None) -> dict[str, dict[str, Any]]:
        return {m["eid"]: m for m in json_lines(self.cli("receive", *extra, cwd=cwd).stdout)}

    def history(self, cwd: Path | None = None) -> dict[str, dict[str, Any]]:
        return {m["eid"]: m for m in json_lines(self.cli("history", cwd=cwd).stdout)}


@dataclass
class World:
    node: NodeProcess
    alice: User
    bob: User


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("cliflow")
    with NodeProcess(root / "node", domain=DOMAIN) as node:
        url = node.start()
        users = []
        for name in ("alice", "bob"):
            user = User(name, root / name, f"pass-{name}-{os.urandom(4).hex()}")
            code = invite(node.data_dir, name)
            out = json_lines(
                run_cli(
                    "client",
                    "register",
                    user.address,
                    "--node",
                    url,
                    "--code",
                    code,
                    "--home",
                    str(user.home),
                    env=user.env,
                ).stdout
            )
            assert out == [{"address": user.address, "device": 1}]
            users.append(user)
        yield World(node, users[0], users[1])


def test_text_both_ways(world: World) -> None:
    alice, bob = world.alice, world.bob
    eid = alice.send(bob, "hello bob")
    got = bob.receive()
    assert got[eid]["text"] == "hello bob"
    assert got[eid]["from"] == alice.address
    assert got[eid]["device"] == 1
    assert got[eid]["expire"] is None
    assert got[eid]["attachments"] == []
    reply = bob.send(alice, "hi alice, ünïcode ✓")
    back = alice.receive()
    assert back[reply]["text"] == "hi alice, ünïcode ✓"
    assert back[reply]["from"] == bob.address
    # Delivered once: a second receive prints nothing old.
    assert eid not in bob.receive()
    assert reply not in alice.receive()


def test_receive_waits_for_more(world: World) -> None:
    alice, bob = world.alice, world.bob
    first = alice.send(bob, "one")
    second = alice.send(bob, "two")
    got = bob.receive("--wait", "0.5")
    assert [got[first]["text"], got[second]["text"]] == ["one", "two"]


def test_five_mib_attachment(world: World, tmp_path: Path) -> None:
    alice, bob = world.alice, world.bob
    data = os.urandom(5 * 1024 * 1024)
    original = tmp_path / "report.bin"
    original.write_bytes(data)
    save_dir = tmp_path / "saved"
    eid = alice.send(bob, "the report", "--attach", str(original))
    got = bob.receive("--save-dir", str(save_dir))
    (att,) = got[eid]["attachments"]
    assert att["name"] == "report.bin"
    assert att["size"] == len(data)
    assert att["error"] is None
    assert att["sha256"] == hashlib.sha256(data).hexdigest()
    saved = Path(att["path"])
    assert saved.parent == save_dir
    assert saved.read_bytes() == data
    assert list(save_dir.iterdir()) == [saved]  # saved once


def test_disappearing_message_leaves_the_store(world: World) -> None:
    alice, bob = world.alice, world.bob
    keep = alice.send(bob, "keep me")
    eid = alice.send(bob, "burn after reading", "--expire", "2")
    got = bob.receive()
    assert got[eid]["expire"] == 2
    assert got[keep]["expire"] is None
    assert _stored_eids(bob) >= {eid, keep}
    deadline = got[eid]["received"] / 1000 + 2
    time.sleep(max(0.0, deadline - time.time()) + 0.5)
    history = bob.history()  # purges on start
    assert eid not in history
    assert keep in history
    assert eid not in _stored_eids(bob)
    assert keep in _stored_eids(bob)


def test_expiry_deletes_only_the_file_the_client_saved(world: World, tmp_path: Path) -> None:
    """Issue 15: saved with a relative ``--save-dir``, purged by a command run from another
    directory; a file of the same relative path there is not the attachment."""
    alice, bob = world.alice, world.bob
    bob.receive()  # drain
    original = tmp_path / "note.txt"
    original.write_bytes(b"the real attachment")
    received_in, purged_in = tmp_path / "first", tmp_path / "second"
    unrelated = purged_in / "inbox2" / "note.txt"
    unrelated.parent.mkdir(parents=True)
    unrelated.write_bytes(b"someone else's note")
    received_in.mkdir()
    eid = alice.send(bob, "self-destructing", "--attach", str(original), "--expire", "2")
    got = bob.receive("--save-dir", "inbox2", cwd=received_in)
    (att,) = got[eid]["attachments"]
    saved = received_in / "inbox2" / "note.txt"
    assert att["path"] == str(saved)  # absolute, resolved when saved
    assert saved.read_bytes() == b"the real attachment"
    time.sleep(max(0.0, got[eid]["received"] / 1000 + 2 - time.time()) + 0.5)
    assert eid not in bob.history(cwd=purged_in)
    assert unrelated.read_bytes() == b"someone else's note"
    assert not saved.exists()


def test_expiry_leaves_a_replaced_file_alone(world: World, tmp_path: Path) -> None:
    alice, bob = world.alice, world.bob
    bob.receive()  # drain
    original = tmp_path / "photo.jpg"
    original.write_bytes(b"jpeg bytes")
    eid = alice.send(bob, "look", "--attach", str(original), "--expire", "2")
    got = bob.receive("--save-dir", str(tmp_path / "saved"))
    saved = Path(got[eid]["attachments"][0]["path"])
    replacement = tmp_path / "mine.jpg"
    replacement.write_bytes(b"jpeg bytes")  # same size and contents, another file
    replacement.replace(saved)
    time.sleep(max(0.0, got[eid]["received"] / 1000 + 2 - time.time()) + 0.5)
    assert eid not in bob.history()
    assert saved.read_bytes() == b"jpeg bytes"


def _stored_eids(user: User) -> set[str]:
    store = SqliteStore.open(user.home / "state.db", user.passphrase)
    try:
        return {msg.eid.hex() for msg in Inbox(store).messages()}
    finally:
        store.close()


def test_safety_numbers_match(world: World) -> None:
    alice, bob = world.alice, world.bob
    alice.send(bob, "verify me")
    bob.receive()
    a = json_lines(alice.cli("verify", bob.address).stdout)[0]
    b = json_lines(bob.cli("verify", alice.address).stdout)[0]
    assert a["safety_number"] == b["safety_number"]
    assert len(a["safety_number"]) == 60
    assert a["identity_changed"] is False
    assert b["identity_changed"] is False
    assert a["formatted"].replace(" ", "").replace("\n", "") == a["safety_number"]


def test_receive_survives_a_node_restart(world: World) -> None:
    """A waiting `receive` reconnects by itself after the node restarts (same data, same
    port) and gets what was sent meanwhile."""
    alice, bob = world.alice, world.bob
    bob.receive()  # drain
    argv = [*sealrelay_command(), "client", "receive", "--home", str(bob.home), "--wait", "15"]
    waiting = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, **bob.env},
    )  # fmt: skip
    try:
        time.sleep(3)  # connected and drained
        world.node.restart()
        eid = alice.send(bob, "after the restart")
        out, err = waiting.communicate(timeout=60)
    finally:
        if waiting.poll() is None:
            waiting.kill()
            waiting.communicate()
    assert waiting.returncode == 0, err
    got = {m["eid"]: m for m in json_lines(out)}
    assert got[eid]["text"] == "after the restart"


def test_unknown_recipient_fails_clearly(world: World) -> None:
    result = world.alice.cli("send", f"nobody@{DOMAIN}", "hello?", check=False)
    assert result.returncode == 1
    assert "client.unknown_account" in result.stderr
    assert f"nobody@{DOMAIN} does not exist" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_an_account_registered_without_introductions_refuses_first_contact(
    world: World, tmp_path: Path
) -> None:
    dave = User("dave", tmp_path / "dave", "dave-passphrase")
    code = invite(world.node.data_dir, dave.name)
    assert world.node.url is not None
    args = ["client", "register", dave.address, "--node", world.node.url, "--code", code]
    run_cli(*args, "--home", str(dave.home), "--no-introductions", env=dave.env)
    result = world.alice.cli("send", dave.address, "hello dave", check=False)
    assert result.returncode == 1
    assert "send.introductions_closed" in result.stderr
    assert dave.receive() == {}


def test_wrong_passphrase_refused(world: World) -> None:
    env = {"SEALRELAY_PASSPHRASE": "not the passphrase"}
    result = run_cli("client", "receive", "--home", str(world.bob.home), env=env, check=False)
    assert result.returncode == 1
    assert "client.wrong_passphrase" in result.stderr


def test_spent_code_refused(world: World, tmp_path: Path) -> None:
    code = invite(world.node.data_dir, "carol")
    env = {"SEALRELAY_PASSPHRASE": "carol-passphrase"}
    assert world.node.url is not None
    args = ["client", "register", f"carol@{DOMAIN}", "--node", world.node.url, "--code", code]
    run_cli(*args, "--home", str(tmp_path / "carol1"), env=env)
    again = run_cli(*args, "--home", str(tmp_path / "carol2"), env=env, check=False)
    assert again.returncode == 1
    assert "auth.bad_code" in again.stderr
