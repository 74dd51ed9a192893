"""``sealrelay dev up`` as a real process: SIGTERM stops its nodes too (a second ``dev up``
on the same ports starts), and with ``--domains 3`` it invites one account on each domain,
with commands that run as printed."""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT = 120.0
STOP_TIMEOUT = 30.0
READY_MARK = "Ctrl-C stops it"


def free_port_pair() -> int:
    """A port P with P and P + 1 both free on loopback (``dev up --base-port P``)."""
    for _ in range(50):
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            port = first.getsockname()[1]
            if port < 65535 and port_free(port + 1):
                return port
    raise RuntimeError("no two consecutive free ports")


def port_free(port: int) -> bool:
    """Whether a server could listen on ``port`` (as the nodes do, with SO_REUSEADDR)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class DevUp:
    """One ``dev up`` process; :meth:`wait_ready` returns the lines printed until ready."""

    def __init__(self, base: Path, port: int, *extra: str) -> None:
        argv = [sys.executable, "-m", "sealrelay", "dev", "up", "--data", str(base)]
        env = {**os.environ, "PATH": os.defpath}  # no sealrelay on the PATH
        self.proc = subprocess.Popen(
            [*argv, "--base-port", str(port), *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=env,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.pump = threading.Thread(target=self._pump, daemon=True)
        self.pump.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def wait_ready(self) -> list[str]:
        seen: list[str] = []
        while not any(READY_MARK in line for line in seen):
            line = self.lines.get(timeout=READY_TIMEOUT)
            assert line is not None, f"dev up exited: {self.proc.wait()} {self.stderr()}"
            seen.append(line)
        return seen

    def read_until(self, prefix: str) -> list[str]:
        """The next lines up to the first that starts with ``prefix``."""
        seen: list[str] = []
        while not seen or not seen[-1].startswith(prefix):
            line = self.lines.get(timeout=READY_TIMEOUT)
            assert line is not None, f"dev up exited: {self.proc.wait()} {self.stderr()}"
            seen.append(line)
        return seen

    def children(self) -> list[int]:
        """The node processes of ``dev up`` (not helpers that imports may run briefly)."""
        path = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        pids = [int(pid) for pid in path.read_text().split()]
        return [pid for pid in pids if b"\0serve\0" in _cmdline(pid)]

    def terminate(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.close()

    def close(self) -> int:
        try:
            status = self.proc.wait(timeout=STOP_TIMEOUT)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.pump.join(STOP_TIMEOUT)
            for stream in (self.proc.stdout, self.proc.stderr):
                if stream is not None:
                    stream.close()
        return status

    def stderr(self) -> str:
        done = self.proc.poll() is not None
        return self.proc.stderr.read() if self.proc.stderr and done else ""


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie is not)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


@pytest.fixture
def started() -> Iterator[list[int]]:
    """Node pids a test saw; any still running at the end are killed (no strays)."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        if running(pid):
            os.kill(pid, signal.SIGKILL)


def test_sigterm_stops_the_nodes_and_the_ports_are_reused(
    tmp_path: Path, started: list[int]
) -> None:
    port = free_port_pair()
    for _ in range(2):  # the second run would fail on busy ports if nodes were left
        dev = DevUp(tmp_path / "fed", port)
        try:
            dev.wait_ready()
            nodes = dev.children()
            started.extend(nodes)
            assert len(nodes) == 2
            assert dev.terminate() == 0
        finally:
            if dev.proc.poll() is None:
                dev.proc.kill()
            dev.close()
        assert [pid for pid in nodes if running(pid)] == []
        assert port_free(port)
        assert port_free(port + 1)


def test_three_domains_each_get_an_invite_that_works(tmp_path: Path, started: list[int]) -> None:
    base = tmp_path / "fed"
    cmd = expected_command()
    dev = DevUp(base, free_triple(), "--domains", "3")
    try:
        lines = dev.wait_ready()
        started.extend(dev.children())
        lines += dev.read_until("More accounts: ")
        registers = [line.split() for line in lines if " client register " in line]
        domains = ["alpha.localhost", "bravo.localhost", "charlie.localhost"]
        assert [words[3].split("@")[1] for words in registers] == domains
        assert any(f"data {base / 'charlie.localhost'}," in line for line in lines)
        assert lines[-1] == f"More accounts: {cmd} admin invite NAME --data {base / domains[0]}"
        env = {**os.environ, "SEALRELAY_PASSPHRASE": "dev-up test passphrase", "PATH": os.defpath}
        for words in registers:
            assert words[0] == cmd
            done = subprocess.run(
                words, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
            )
            assert done.returncode == 0, done.stderr
    finally:
        assert dev.terminate() == 0


def free_triple() -> int:
    for _ in range(50):
        port = free_port_pair()
        if port + 2 <= 65535 and port_free(port + 2):
            return port
    raise RuntimeError("no three consecutive free ports")


def expected_command() -> str:
    script = Path(sys.executable).parent / "sealrelay"
    absolute = Path(os.path.abspath(script))
    if absolute.is_relative_to(ROOT):
        return str(absolute.relative_to(ROOT))
    return str(absolute)


def test_a_node_that_does_not_start_is_named_with_its_log(tmp_path: Path) -> None:
    """bravo's port is taken: one line naming bravo's log, and alpha's node is stopped."""
    port = free_port_pair()
    base = tmp_path / "fed"
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port + 1))
        squatter.listen()
        dev = DevUp(base, port)
        try:
            status = dev.proc.wait(timeout=READY_TIMEOUT)
            err = dev.stderr()
        finally:
            dev.close()
    log = base / "bravo.localhost.log"
    assert status == 1
    assert err.strip().splitlines()[-1] == (
        f"sealrelay: dev.node_failed: the node for bravo.localhost did not start; see its log {log}"
    )
    assert "node.listen" in log.read_text()
    assert port_free(port)  # alpha's node was stopped


def test_sigterm_while_the_nodes_start_stops_them_too(tmp_path: Path, started: list[int]) -> None:
    dev = DevUp(tmp_path / "fed", free_port_pair())
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while not dev.children():  # the first node is spawned, not yet listening
            assert dev.proc.poll() is None
            assert time.monotonic() < deadline
            time.sleep(0.01)
        nodes = dev.children()
        started.extend(nodes)
        assert dev.terminate() == 0
    finally:
        dev.close()
    assert [pid for pid in nodes if running(pid)] == []
