"""1:1 calls through the command line against a real node process with ``udp_listen``
(issue 17): ``sealrelay client call`` and ``sealrelay client answer`` as separate
processes, two accounts of one domain, the node bridging their legs.

A few seconds of audio over QUIC and over ``--transport websocket`` complete with the
summary keys, frames received and no decryption failure, and a callee whose user did not
accept the caller's changed identity refuses the call (``call.untrusted_identity``; a short
ring timeout: ``$SEALRELAY_RING_TIMEOUT``, the CLI's test knob). The caller's side of an
unaccepted identity, ``call.missed`` and ``call.offline`` are tested across two domains in
``test_calls_federated.py``.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from client import persist
from client.records import DeviceRecord, TrustRecord
from client.store.base import NS_ACCOUNT, NS_IDENTITIES
from client.store.sqlite import SqliteStore
from tests.integration.nodeproc import (
    LOOPBACK,
    CliUser,
    NodeProcess,
    invite,
    json_lines,
    run_cli,
    sealrelay_command,
)
from wire import decode, encode

DOMAIN = "calls-cli.test"
SECONDS = "4"
RING_TIMEOUT = "6"  # seconds: a missed or offline call ends this long after dialing
STEP_TIMEOUT = 90.0
SUMMARY_KEYS = {
    "frames_sent",
    "frames_received",
    "frames_lost",
    "frames_late",
    "decrypt_failures",
    "latency_ms_p50",
    "latency_ms_p99",
    "jitter_ms",
    "transport",
    "seconds",
}


@dataclass
class User(CliUser):
    domain = DOMAIN

    def start(self, *args: str, ring: str | None = None) -> subprocess.Popen[str]:
        """``sealrelay client ARGS[0] --home HOME ARGS[1:]`` in the background."""
        env = {**os.environ, **self.env}
        if ring is not None:
            env["SEALRELAY_RING_TIMEOUT"] = ring
        argv = [*sealrelay_command(), "client", args[0], "--home", str(self.home), *args[1:]]
        return subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )


@dataclass
class Outcome:
    status: int
    lines: list[dict[str, Any]]
    stderr: str

    def events(self) -> list[str]:
        return [line["event"] for line in self.lines if "event" in line]


def finish(proc: subprocess.Popen[str]) -> Outcome:
    try:
        out, err = proc.communicate(timeout=STEP_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"timed out:\n{out}\n{err}") from None
    return Outcome(proc.returncode, json_lines(out), err)


@dataclass
class World:
    node: NodeProcess
    root: Path

    def user(self, name: str) -> User:
        user = User(name, self.root / name, f"calls {name} {os.urandom(4).hex()} phrase")
        code = invite(self.node.data_dir, name)
        assert self.node.url is not None
        run_cli(
            *("client", "register", user.address, "--node", self.node.url, "--code", code),
            *("--home", str(user.home)),
            env=user.env,
        )
        return user


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("clicalls")
    config = root / "node.toml"
    config.write_text(f'udp_listen = "{LOOPBACK}:0"\n')
    with NodeProcess(root / "node", domain=DOMAIN, config=config) as node:
        node.start()
        yield World(node, root)


def _check_summary(outcome: Outcome, transport: str) -> dict[str, Any]:
    assert outcome.status == 0, outcome.stderr
    assert "Traceback" not in outcome.stderr
    summary = outcome.lines[-1]
    assert "event" not in summary
    assert set(summary) >= SUMMARY_KEYS
    assert summary["transport"] == transport
    assert summary["frames_received"] > 0
    assert summary["decrypt_failures"] == 0
    assert outcome.events()[-1] == "ended"
    assert outcome.lines[-2]["reason"] == "call.hangup"
    return summary


def _call_and_answer(
    world: World, names: tuple[str, str], *extra: str
) -> tuple[Outcome, Outcome, User, User]:
    alice, bob = world.user(names[0]), world.user(names[1])
    callee = bob.start("answer", "--wait", "60", "--seconds", SECONDS)
    caller = alice.start("call", bob.address, "--seconds", SECONDS, *extra)
    return finish(caller), finish(callee), alice, bob


def test_an_audio_call_over_quic(world: World) -> None:
    caller, callee, alice, bob = _call_and_answer(world, ("alice", "bob"))
    assert caller.events()[:2] == ["ringing", "answered"]
    assert caller.lines[0]["to"] == bob.address
    assert callee.events()[:2] == ["ringing", "answered"]
    assert callee.lines[0]["from"] == alice.address
    _check_summary(caller, "quic")
    _check_summary(callee, "quic")


def test_an_audio_call_over_the_websocket(world: World) -> None:
    caller, callee, _, _ = _call_and_answer(world, ("ann", "ben"), "--transport", "websocket")
    _check_summary(caller, "websocket")
    _check_summary(callee, "quic")  # each side binds its own leg its own way


def _failed(outcome: Outcome, code: str) -> None:
    assert outcome.status == 1
    assert outcome.lines[-1] == {**outcome.lines[-1], "event": "ended", "reason": code}
    lines = outcome.stderr.strip().splitlines()
    assert len(lines) == 1, outcome.stderr
    assert lines[0].startswith(f"sealrelay: {code}: ")


def _change_identity(user: User, peer: User) -> None:
    """``peer``'s identity key changes: ``user``'s store is told of another key for it."""
    store = SqliteStore.open(user.home / "state.db", user.passphrase)
    try:
        own = decode(store.get(NS_ACCOUNT, persist.DEVICE_SLOT) or b"", DeviceRecord).identity
        changed = TrustRecord(identity=encode(own), accepted=False)
        store.put(NS_IDENTITIES, peer.address.encode(), encode(changed))
    finally:
        store.close()


def test_a_callee_refuses_a_caller_whose_identity_change_it_did_not_accept(
    world: World,
) -> None:
    ivan, jane = world.user("ivan"), world.user("jane")
    ivan.cli("send", jane.address, "hello jane")
    jane.cli("receive")
    _change_identity(jane, ivan)
    callee = jane.start("answer", "--wait", "30", ring=RING_TIMEOUT)
    caller = finish(ivan.start("call", jane.address, ring=RING_TIMEOUT))
    refused = finish(callee)
    _failed(refused, "call.untrusted_identity")
    assert refused.events() == ["ended"]
    _failed(caller, "call.offline")  # the callee's device never rang
