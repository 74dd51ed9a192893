"""A group's meeting through the command line against a real node process with
``udp_listen`` (issue 18): four accounts of one domain in one group run ``sealrelay client
meet GROUP`` as separate processes at about the same time. The first hosts and invites the
others over the pairwise sessions, the others join its room, the key leader hands out the
epochs, and every member's summary shows the whole meeting, frames received from the
others (the node's SFU forwarding the speakers) and not one decryption failure. One video
sender runs on the WebSocket fallback and, as the one on QUIC, gets the node's layer
notices."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pytest

from tests.integration.callharness import SUMMARY_KEYS as CALL_SUMMARY_KEYS
from tests.integration.nodeproc import (
    LOOPBACK,
    CliUser,
    NodeProcess,
    invite,
    json_lines,
    run_cli,
    sealrelay_command,
)

pytestmark = pytest.mark.slow

DOMAIN: Final = "meet-cli.test"
NAMES: Final = ("ann", "bob", "cat", "dan")
SECONDS: Final = "10"  # the first still overlaps the last to join (slow to start under load)
HOST_HEAD_START: Final = 0.5  # seconds after the host entered its room
STEP_TIMEOUT: Final = 90.0
VIDEO: Final = ("bob", "dan")  # two members send video (two simulcast layers each)
WEBSOCKET: Final = "dan"  # its media on the WebSocket fallback (--transport websocket)
SUMMARY_KEYS: Final = CALL_SUMMARY_KEYS | {
    "participants",
    "speakers_heard",
    "videos_received",
    "epochs",
}


@dataclass
class User(CliUser):
    domain = DOMAIN

    def start(self, *args: str) -> subprocess.Popen[str]:
        """``sealrelay client ARGS[0] --home HOME ARGS[1:]`` in the background."""
        argv = [*sealrelay_command(), "client", args[0], "--home", str(self.home), *args[1:]]
        env = {**os.environ, **self.env}
        return subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )


@dataclass
class World:
    node: NodeProcess
    users: list[User]


def _register(node: NodeProcess, root: Path, name: str) -> User:
    user = User(name, root / name, f"meeting {name} {os.urandom(4).hex()} phrase")
    code = invite(node.data_dir, name)
    assert node.url is not None
    run_cli(
        *("client", "register", user.address, "--node", node.url, "--code", code),
        *("--home", str(user.home)),
        env=user.env,
    )
    return user


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("climeet")
    config = root / "node.toml"
    config.write_text(f'udp_listen = "{LOOPBACK}:0"\n')
    with NodeProcess(root / "node", domain=DOMAIN, config=config) as node:
        node.start()
        users = [_register(node, root, name) for name in NAMES]
        members = [arg for u in users[1:] for arg in ("--member", u.address)]
        home = ["--home", str(users[0].home)]
        run_cli("client", "group", "create", "crisis", *home, *members, env=users[0].env)
        for user in users[1:]:
            user.cli("receive")  # the welcome
        yield World(node, users)


def _finish(proc: subprocess.Popen[str]) -> tuple[int, list[dict[str, Any]], str]:
    try:
        out, err = proc.communicate(timeout=STEP_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"timed out:\n{out}\n{err}") from None
    return proc.returncode, json_lines(out), err


def test_four_members_meet_in_one_room(world: World) -> None:
    host, *others = world.users
    first = host.start("meet", "crisis", "--seconds", SECONDS)
    assert first.stdout is not None
    head = [first.stdout.readline() for _ in range(2)]  # the host's participant, joined
    time.sleep(HOST_HEAD_START)  # its invites on their way
    procs = [
        u.start(
            *("meet", "crisis", "--seconds", SECONDS),
            *(["--video"] if u.name in VIDEO else []),
            *(["--transport", "websocket"] if u.name == WEBSOCKET else []),
        )
        for u in others
    ]
    results = [_finish(first), *(_finish(p) for p in procs)]
    results[0][1][:0] = [json.loads(line) for line in head]
    rooms = set()
    report = "\n".join(
        f"{u.name}: {r[0]} {r[1]}\n{r[2][-2000:]}"
        for u, r in zip(world.users, results, strict=True)
    )
    for user, (status, lines, err) in zip(world.users, results, strict=True):
        assert status == 0, report
        assert "Traceback" not in err
        summary = lines[-1]
        assert "event" not in summary
        assert set(summary) >= SUMMARY_KEYS
        assert summary["participants"] >= 3, report
        assert summary["frames_received"] > 0, (user.name, summary)
        assert summary["decrypt_failures"] == 0, (user.name, summary)
        assert summary["digest_mismatches"] == 0, (user.name, summary)
        assert summary["forged_streams"] == 0, report  # every stream's signatures verify
        assert summary["signatures_sent"] > 0, (user.name, summary)
        assert summary["signatures_received"] > 0, (user.name, summary)
        assert "forged_stream" not in [line.get("event") for line in lines], report
        assert summary["epochs"] >= 1
        assert summary["speakers_heard"] >= 2, report
        assert summary["videos_received"] >= 1, report
        assert summary["transport"] == ("websocket" if user.name == WEBSOCKET else "quic")
        if user.name in VIDEO:  # every receiver takes the upper layer: the lower one pauses
            assert summary["layer_notices"] >= 1, (user.name, summary)
        events = [line.get("event") for line in lines[:-1]]
        assert "joined" in events
        assert events[-1] == "ended"
        joined = [line for line in lines if line.get("event") == "joined"]
        rooms.add(joined[-1]["room"])  # the last: a device that hosted at once moves over
        addresses = {line["address"] for line in lines if line.get("event") == "participant"}
        assert user.address in addresses
    assert len(rooms) == 1
    assert next(line for line in results[0][1] if line.get("event") == "joined")["host"] is True
