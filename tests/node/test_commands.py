"""A user's mistake in a node command ends in one line ``sealrelay: CODE: text`` and a
non-zero exit, never a traceback; ``admin invite`` refuses codes that could never work;
``node serve --config`` takes every key from the file."""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from node import accounts, keys_cli
from node.store import SQLITE_FILENAME, open_store
from node.store.base import DeviceRecord
from sealrelay.cli import main

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 60


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A loopback port with a listener on it, as a second `make run` finds it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sealrelay", *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
        check=False,
    )


def one_line_error(err: str) -> str:
    """The last line of stderr, checked to be the one error line (logs may precede it)."""
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("sealrelay: ")
    return last


@pytest.mark.parametrize("command", ["node serve --domain busy.test", "dev run"])
def test_a_busy_port_is_one_line(tmp_path: Path, busy_port: int, command: str) -> None:
    listen = f"127.0.0.1:{busy_port}"
    done = run(*command.split(), "--listen", listen, "--data", str(tmp_path / "data"))
    assert done.returncode == 1
    line = one_line_error(done.stderr)
    assert line == f"sealrelay: node.listen: cannot listen on {listen}: Address already in use"


def serve(*args: str) -> list[str]:
    return ["node", "serve", "--domain", "a.test", "--listen", "127.0.0.1:0", *args]


@pytest.mark.parametrize(
    ("args", "status", "start"),
    [
        (["--listen", "nope"], 2, "sealrelay: config.invalid: listen: expected HOST:PORT"),
        (["--data", "{file}/data"], 1, "sealrelay: node.data_dir: cannot create the data"),
        (["--config", "{tmp}/none.toml"], 2, "sealrelay: config.file: cannot read"),
        (["--config", "{tmp}/bad.toml"], 2, "sealrelay: config.file: configuration file"),
        (["--domain", ""], 2, "sealrelay: config.missing: domain is required"),
    ],
)
def test_serve_mistakes_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], status: int, start: str
) -> None:
    (tmp_path / "file").write_text("not a directory")
    (tmp_path / "bad.toml").write_text("domain = [\n")
    values = [a.format(file=tmp_path / "file", tmp=tmp_path) for a in args]
    assert main([*serve("--data", str(tmp_path / "d")), *values]) == status
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1
    assert err.startswith(start)


def test_serve_without_data_anywhere_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SEALRELAY_DATA_DIR", raising=False)
    assert main(["node", "serve", "--domain", "a.test"]) == 2
    assert capsys.readouterr().err == (
        "sealrelay: config.missing: data_dir is required: give --data, data_dir in the"
        " --config file or SEALRELAY_DATA_DIR\n"
    )


# --- admin invite ---------------------------------------------------------------------------


def test_invite_without_a_node_creates_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "nothing-here"
    assert main(["admin", "invite", "alice", "--data", str(data)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"sealrelay: admin.no_node: no node's data in {data}")
    assert not data.exists()


async def _node_with_account(data: Path, name: str) -> None:
    store = await open_store("sqlite", data)
    try:
        raw = bytes(accounts.CODE_BYTES)
        await store.add_invite(accounts.code_hash(raw), name, 2**62)
        device = DeviceRecord(f"{name}@a.test", 1, b"identity", b"m" * 16, 1)
        assert await store.register(accounts.code_hash(raw), name, device, 2)
    finally:
        await store.aclose()


def test_invite_for_an_existing_account_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "node"
    trio.run(_node_with_account, data, "alice")
    before = (data / SQLITE_FILENAME).stat().st_size
    assert main(["admin", "invite", "alice", "--data", str(data)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("sealrelay: admin.account_exists: 'alice' already has an account")
    assert main(["admin", "invite", "alic", "--data", str(data)]) == 0  # a prefix is another
    assert accounts.parse_code(capsys.readouterr().out.splitlines()[0]) is not None
    assert before > 0


# --- serve --config ---------------------------------------------------------------------------


def test_serve_takes_every_key_from_the_file(tmp_path: Path) -> None:
    config = tmp_path / "node.toml"
    data = tmp_path / "data"
    config.write_text(
        f'domain = "file.test"\ndata_dir = {json.dumps(str(data))}\n'
        'listen_host = "127.0.0.1"\nlisten_port = 0\n'
    )
    assert _listening_domain(["node", "serve", "--config", str(config)]) == "file.test"
    assert (data / SQLITE_FILENAME).exists()
    flags = ["node", "serve", "--config", str(config), "--domain", "flag.test"]
    assert _listening_domain(flags) == "flag.test"  # a flag overrides the file


def _listening_domain(args: list[str]) -> str:
    proc = subprocess.Popen(
        [sys.executable, "-m", "sealrelay", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], TIMEOUT)
        line = json.loads((proc.stdout.readline() if ready else "") or "{}")
        assert line.get("event") == "listening", proc.communicate(timeout=TIMEOUT)[1]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0
    return str(line["domain"])


@pytest.mark.parametrize(
    ("args", "start"),
    [
        (["keys", "init", "--domain", "a.test", "--data", "{file}/x"], "keys.files: {file}/x"),
        (["keys", "root-init", "--out", "{file}/root"], "keys.files: {file}/root"),
        (["dev", "up", "--data", "{file}/fed", "--base-port", "1"], "node.data_dir: {file}/fed"),
        (["keys", "show", "http://[::1"], "keys.fetch: cannot fetch http://[::1/"),
    ],
)
def test_other_node_commands_fail_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], start: str
) -> None:
    file = tmp_path / "file"
    file.write_text("not a directory")
    assert main([a.format(file=file) for a in args]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("sealrelay: " + start.format(file=file))
    assert len(err.splitlines()) == 1


def test_a_bug_still_shows_its_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only errors with a code, a message and an exit status are a user's mistake."""

    def broken(args: object) -> int:
        raise KeyError("a bug")

    monkeypatch.setattr(keys_cli, "show", broken)
    with pytest.raises(KeyError, match="a bug"):
        main(["keys", "show", "http://127.0.0.1:1"])
