"""A group's meeting through the command line across two domains (issue 18, "across
domains, cascaded"): a group of four, two accounts on alpha and two on bravo, each running
``sealrelay client meet GROUP`` as its own process. The first (on alpha) hosts; bravo's
members join its room through their own node, which joins the room at alpha over its media
link (``MeetingJoinAt``). Every member's summary shows the whole meeting, frames from the
others and not one decryption failure, and all four report the same room."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from typing import Any, Final

import pytest

from tests.integration.callharness import A, B, CallUser, CallWorld
from tests.integration.nodeproc import run_cli

pytestmark = pytest.mark.slow

SECONDS: Final = "6"
HOST_SECONDS: Final = "20"
HOST_HEAD_START: Final = 6.0
"""Seconds the host runs alone first: its invites cross to the other domain (a first
contact between members who never wrote to each other) before the others look for one."""
STEP_TIMEOUT: Final = 120.0
PEOPLE: Final = (("ann", A), ("bob", B), ("cat", A), ("dan", B))
VIDEO: Final = ("bob",)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CallWorld]:
    world = CallWorld.started(tmp_path_factory.mktemp("fedmeet"))
    try:
        yield world
    finally:
        world.close()


def _finish(proc: subprocess.Popen[str]) -> tuple[int, list[dict[str, Any]], str]:
    try:
        out, err = proc.communicate(timeout=STEP_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"timed out:\n{out}\n{err}") from None
    return proc.returncode, [json.loads(line) for line in out.splitlines() if line], err


def _group(user: CallUser, *args: str) -> str:
    """``sealrelay client group ARGS[0] --home HOME ARGS[1:]``: its output."""
    home = ("--home", str(user.home))
    return run_cli("client", "group", args[0], *home, *args[1:], env=user.env).stdout


def _welcomed(user: CallUser) -> None:
    """Read the mailbox until the group's welcome came (federation may take a moment)."""
    deadline = time.monotonic() + STEP_TIMEOUT
    while time.monotonic() < deadline:
        if "crisis" in _group(user, "list"):
            return
        user.cli("receive")
        time.sleep(0.5)
    raise AssertionError(f"{user.address} never got the group")


def test_four_members_of_two_domains_meet_in_one_room(world: CallWorld) -> None:
    users = [world.user(domain, name) for name, domain in PEOPLE]
    host, *others = users
    members = [arg for u in others for arg in ("--member", u.address)]
    _group(host, "create", "crisis", *members)
    for user in others:
        _welcomed(user)
    first = host.start("meet", "crisis", "--seconds", HOST_SECONDS)
    assert first.stdout is not None
    head = [first.stdout.readline() for _ in range(2)]  # its participant line, joined
    time.sleep(HOST_HEAD_START)
    procs = [
        u.start("meet", "crisis", "--seconds", SECONDS, *(["--video"] if u.name in VIDEO else []))
        for u in others
    ]
    results = [_finish(first), *(_finish(p) for p in procs)]
    results[0][1][:0] = [json.loads(line) for line in head]
    report = "\n".join(
        f"{u.address}: {r[0]} {r[1]}\n{r[2][-2000:]}" for u, r in zip(users, results, strict=True)
    )
    rooms = set()
    for user, (status, lines, err) in zip(users, results, strict=True):
        assert status == 0, report
        assert "Traceback" not in err
        summary = lines[-1]
        assert summary["participants"] == len(PEOPLE), report
        assert summary["frames_received"] > 0, report
        assert summary["decrypt_failures"] == 0, report
        assert summary["speakers_heard"] >= 2, report
        joined = [line for line in lines if line.get("event") == "joined"]
        rooms.add(joined[-1]["room"])
        if user.name != "bob":
            assert summary["videos_received"] >= 1, report
    assert len(rooms) == 1, report
