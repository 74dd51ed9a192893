"""Large attachments through the `sealrelay` command line and a real node (issue 15).

A file above the node's announced blob limit is refused at once, before it is read: one
``blob.too_large`` line naming both sizes, little memory, no grant asked. A 200 MB file
goes up and comes down in chunks: the peak RSS of the sending and the receiving process
(each measured alone: ``ru_maxrss`` from ``os.wait4`` in a small parent) stays far below
the file's size.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pytest
import trio

from client import attachments, attachments_io, nodehttp
from client.entropy import SYSTEM_ENTROPY
from client.errors import AttachmentTooLarge
from tests.integration.nodeproc import (
    NodeProcess,
    invite,
    json_lines,
    run_cli,
    sealrelay_command,
)
from tests.integration.test_cli_flow import DOMAIN, User

MAX_BLOB: Final = 256 * 1024 * 1024
BIG: Final = 200 * 1000 * 1000
RSS_BOUND: Final = 150 * 1024 * 1024
"""Peak resident memory allowed to one client process moving a :data:`BIG` file."""
SLACK: Final = 32 * 1024 * 1024
"""Peak RSS a refused send may have above an ``info`` run that opens the same store."""
RUN_TIMEOUT: Final = 300.0
MEASURE: Final = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.executable, [sys.executable, *sys.argv[2:]])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as f:
    f.write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""
"""``python -c MEASURE RSS_FILE ARGS...``: run ``python ARGS...`` as a child, write its
peak RSS in KiB (``ru_maxrss`` of that child alone) to RSS_FILE, exit with its status."""


@dataclass
class World:
    node: NodeProcess
    alice: User
    bob: User


@dataclass
class Measured:
    returncode: int
    stdout: str
    stderr: str
    max_rss: int  # bytes
    seconds: float


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("bigattach")
    env = {"SEALRELAY_MAX_BLOB_BYTES": str(MAX_BLOB)}
    with NodeProcess(root / "node", domain=DOMAIN, env=env) as node:
        url = node.start()
        users = []
        for name in ("alice", "bob"):
            user = User(name, root / name, f"pass-{name}-{os.urandom(4).hex()}")
            code = invite(node.data_dir, name, env=env)
            args = ["client", "register", user.address, "--node", url, "--code", code]
            run_cli(*args, "--home", str(user.home), env=user.env)
            users.append(user)
        yield World(node, users[0], users[1])


def run_measured(user: User, *args: str, scratch: Path) -> Measured:
    """Run ``sealrelay client ARGS`` as ``user``; its exit status, output and own peak RSS.

    The peak comes from :data:`MEASURE`, which forks the client from a small process:
    Linux keeps a process's peak RSS across ``exec``, so a client started straight from
    this (large) test process would report this process's peak instead of its own."""
    command = sealrelay_command()
    rss_path = scratch / f"{args[0]}.rss"
    argv = [command[0], "-c", MEASURE, str(rss_path), *command[1:], "client", args[0]]
    argv += ["--home", str(user.home), *args[1:]]
    out_path, err_path = scratch / f"{args[0]}.out", scratch / f"{args[0]}.err"
    with out_path.open("w") as out, err_path.open("w") as err:
        start = time.monotonic()
        env = {**os.environ, **user.env}
        proc = subprocess.Popen(argv, stdout=out, stderr=err, env=env, start_new_session=True)
        killer = threading.Timer(RUN_TIMEOUT, os.killpg, (proc.pid, signal.SIGKILL))
        killer.start()
        try:
            returncode = proc.wait()
        finally:
            killer.cancel()
        seconds = time.monotonic() - start
    return Measured(
        returncode,
        out_path.read_text(),
        err_path.read_text(),
        int(rss_path.read_text()) * 1024,  # KiB on Linux
        seconds,
    )


def sparse_file(path: Path, size: int) -> Path:
    with path.open("wb") as f:
        f.truncate(size)
    return path


@pytest.mark.parametrize("size", [MAX_BLOB + 1, 2 * 1024**3 + 1], ids=["limit+1", "2GiB+1"])
def test_a_file_over_the_limit_is_refused_at_once(world: World, tmp_path: Path, size: int) -> None:
    big = sparse_file(tmp_path / "huge.bin", size)
    run = run_measured(world.alice, "send", world.bob.address, "x", "--attach", str(big),
                       scratch=tmp_path)  # fmt: skip
    assert run.returncode == 1, run.stderr
    blob = attachments.cipher_size(size)
    assert run.stderr.splitlines() == [
        f"sealrelay: blob.too_large: huge.bin is {size} bytes ({blob} bytes encrypted); "
        f"the limit is {MAX_BLOB} bytes"
    ]
    assert run.stdout == ""
    idle = run_measured(world.alice, "info", scratch=tmp_path)  # the same process, no file
    assert run.max_rss < idle.max_rss + SLACK, (run.max_rss, idle.max_rss)
    assert run.seconds < 30, run.seconds


async def test_an_over_limit_file_is_never_opened_nor_granted(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = await trio.to_thread.run_sync(sparse_file, tmp_path / "huge.bin", MAX_BLOB + 1)
    asked: list[Any] = []

    async def request(frame: Any) -> Any:
        asked.append(frame)
        raise AssertionError("a grant was asked for")

    async def no_reading(*args: object, **kwargs: object) -> None:
        raise AssertionError("the file was opened")

    monkeypatch.setattr(trio, "open_file", no_reading)
    assert world.node.url is not None
    with pytest.raises(AttachmentTooLarge, match=f"the limit is {MAX_BLOB} bytes"):
        await attachments_io.upload_file(request, world.node.url, big, SYSTEM_ENTROPY)
    assert asked == []


async def test_the_client_reads_the_announced_limit_and_tolerates_its_absence(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = world.node.url
    assert url is not None
    assert await nodehttp.fetch_max_blob(url) == MAX_BLOB
    monkeypatch.setattr(nodehttp, "LIMITS_PATH", "/v1/not-announced")  # an older node: 404
    assert await nodehttp.fetch_max_blob(url) is None
    monkeypatch.setattr(nodehttp, "LIMITS_PATH", "/healthz")  # an answer that is not JSON
    assert await nodehttp.fetch_max_blob(url) is None


def test_a_200_mb_attachment_streams_both_ways_in_little_memory(
    world: World, tmp_path: Path
) -> None:
    alice, bob = world.alice, world.bob
    original = tmp_path / "video.bin"
    digest = hashlib.sha256()
    with original.open("wb") as f:
        for _ in range(BIG // 1_000_000):
            block = os.urandom(1_000_000)
            digest.update(block)
            f.write(block)
    sent = run_measured(alice, "send", bob.address, "the video", "--attach", str(original),
                        scratch=tmp_path)  # fmt: skip
    assert sent.returncode == 0, sent.stderr
    (eid,) = json_lines(sent.stdout)[0]["eids"]
    save_dir = tmp_path / "saved"
    got = run_measured(bob, "receive", "--save-dir", str(save_dir), scratch=tmp_path)
    assert got.returncode == 0, got.stderr
    (message,) = [m for m in json_lines(got.stdout) if m["eid"] == eid]
    (att,) = message["attachments"]
    assert att["error"] is None
    assert att["size"] == BIG
    assert att["sha256"] == digest.hexdigest()
    saved = Path(att["path"])
    assert saved.stat().st_size == BIG
    assert _sha256(saved) == digest.hexdigest()
    assert [p.name for p in save_dir.iterdir()] == ["video.bin"]  # no temporary file left
    print(f"peak RSS: send {sent.max_rss >> 20} MiB in {sent.seconds:.1f} s, "
          f"receive {got.max_rss >> 20} MiB in {got.seconds:.1f} s")  # fmt: skip
    assert sent.max_rss < RSS_BOUND, sent.max_rss
    assert got.max_rss < RSS_BOUND, got.max_rss


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()
