"""Sending through the `sealrelay` command line when things go wrong, on one real node.

A message written while the node is down is kept (``"queued": true``), counted by
``info`` and sent on the next connection, by ``receive`` or by another ``send``, in the
order written; a queued message to an account that does not exist is reported when the
node says so. A message to one's own address, to an address without a domain, to an
account that does not exist, and a node URL without a scheme are refused in one line with
a stable code. ``receive --wait`` returns once it has something; ``--wait-all`` waits.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.integration.nodeproc import CliUser, NodeProcess, invite, json_lines, run_cli

DOMAIN = "send.test"
FAIL_FAST = 15.0
"""Most seconds a command may take to give up on a node that is down (the old wait: 30)."""


@dataclass
class User(CliUser):
    domain = DOMAIN

    def send(self, to: str, text: str) -> dict[str, Any]:
        (out,) = json_lines(self.cli("send", to, text).stdout)
        return out

    def receive(self, *extra: str) -> list[dict[str, Any]]:
        return json_lines(self.cli("receive", *extra).stdout)

    def outbox(self) -> int:
        (out,) = json_lines(self.cli("info").stdout)
        return int(out["outbox"])


@dataclass
class World:
    node: NodeProcess
    alice: User
    bob: User
    carol: User


def _register(node: NodeProcess, user: User, url: str) -> None:
    code = invite(node.data_dir, user.name)
    args = ["register", user.address, "--node", url, "--code", code]
    run_cli("client", *args, "--home", str(user.home), env=user.env)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("clisend")
    with NodeProcess(root / "node", domain=DOMAIN) as node:
        url = node.start()
        users = [User(n, root / n, f"pass-{n}-{os.urandom(4).hex()}") for n in ("a", "b", "c")]
        for user in users:
            _register(node, user, url)
        yield World(node, *users)


@pytest.fixture
def node_down(world: World) -> Iterator[NodeProcess]:
    world.node.stop()
    try:
        yield world.node
    finally:
        if not world.node.running():
            world.node.restart()


def _timed_send(user: User, to: str, text: str) -> dict[str, Any]:
    start = time.monotonic()
    out = user.send(to, text)
    assert time.monotonic() - start < FAIL_FAST
    return out


def test_a_message_written_while_the_node_is_down_goes_out_later(
    world: World, node_down: NodeProcess
) -> None:
    alice, bob = world.alice, world.bob
    out = _timed_send(alice, bob.address, "written offline")
    assert out == {"to": bob.address, "eids": [], "queued": True}
    assert alice.outbox() == 1
    node_down.restart()
    after = alice.send(bob.address, "written online")  # sends the queued one first
    assert after["queued"] is False
    assert alice.outbox() == 0
    assert [m["text"] for m in bob.receive()] == ["written offline", "written online"]


def test_receive_sends_what_was_queued_for_a_first_contact(
    world: World, node_down: NodeProcess
) -> None:
    alice, carol = world.alice, world.carol  # never wrote to each other: no session yet
    assert _timed_send(carol, alice.address, "first words, offline")["queued"] is True
    node_down.restart()
    assert carol.receive() == []
    assert carol.outbox() == 0
    got = alice.receive()
    assert [(m["from"], m["text"]) for m in got] == [(carol.address, "first words, offline")]


def test_a_queued_message_to_no_account_is_reported(world: World, node_down: NodeProcess) -> None:
    alice = world.alice
    assert _timed_send(alice, f"nobody@{DOMAIN}", "anyone?")["queued"] is True
    node_down.restart()
    result = alice.cli("receive")
    assert result.returncode == 0  # the receive itself worked
    assert "client.unknown_account" in result.stderr
    assert f"nobody@{DOMAIN} does not exist" in result.stderr
    assert alice.outbox() == 0


def test_a_message_to_oneself_is_refused(world: World) -> None:
    alice = world.alice
    result = alice.cli("send", alice.address, "note to self", check=False)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"sealrelay: client.self_send: {alice.address} is your own address:"
        " a message to yourself is not sent"
    ]
    assert alice.outbox() == 0


def test_an_unknown_account_is_named(world: World) -> None:
    result = world.alice.cli("send", f"nobody@{DOMAIN}", "hello?", check=False)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"sealrelay: client.unknown_account: nobody@{DOMAIN} does not exist"
        " or has no registered device"
    ]


def test_an_address_without_a_domain_is_refused_locally(world: World) -> None:
    result = world.alice.cli("send", "bob", "hello?", check=False)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "sealrelay: client.bad_address: the address must be NAME@DOMAIN, not 'bob'"
    ]
    assert world.alice.outbox() == 0


def test_a_node_url_without_a_scheme_is_refused(world: World, tmp_path: Path) -> None:
    dora = User("dora", tmp_path / "dora", "dora-passphrase")
    code = invite(world.node.data_dir, dora.name)
    bare = f"127.0.0.1:{world.node.port}"
    args = ["register", dora.address, "--node", bare, "--code", code, "--home", str(dora.home)]
    result = run_cli("client", *args, env=dora.env, check=False)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("sealrelay: client.bad_node_url: ")
    assert "http://" in line


def test_receive_wait_returns_once_a_message_came(world: World) -> None:
    alice, bob = world.alice, world.bob
    bob.receive()  # drain
    alice.send(bob.address, "no need to wait")
    start = time.monotonic()
    got = bob.receive("--wait", "30")
    assert time.monotonic() - start < 20
    assert [m["text"] for m in got] == ["no need to wait"]


def test_receive_wait_all_waits_the_whole_time(world: World) -> None:
    alice, bob = world.alice, world.bob
    bob.receive()  # drain
    alice.send(bob.address, "and then some")
    start = time.monotonic()
    got = bob.receive("--wait", "3", "--wait-all")
    assert time.monotonic() - start >= 3
    assert [m["text"] for m in got] == ["and then some"]


def test_a_group_command_fails_fast_while_the_node_is_down(
    world: World, node_down: NodeProcess
) -> None:
    start = time.monotonic()
    alice = world.alice
    args = ["group", "create", "crisis", "--member", world.bob.address, "--home", str(alice.home)]
    result = run_cli("client", *args, env=alice.env, check=False)
    assert time.monotonic() - start < FAIL_FAST
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("sealrelay: client.network: ")
