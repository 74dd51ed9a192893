"""``sealrelay dev up``: 2 or 3 domains on loopback (laid out by ``node.devfed``), each a
``node serve`` process, until SIGTERM or SIGINT.

The command forwards SIGTERM and SIGINT to its nodes and waits for them (killing one that
has not stopped after ``STOP_TIMEOUT``), so ``kill -TERM`` of ``dev up`` leaves no node
behind on its ports. A node that does not start, or exits, stops the others; the error
names its log, ``<data>/<domain>.log``.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Final

from node import devfed, devhints
from node.errors import DEV_NODE_FAILED, NODE_DATA_DIR, CommandError, file_error
from node.keys import KEY_FILE

DEV_UP_USERS: Final = ("alice", "bob", "carol")  # one on each domain, in order
STOP_TIMEOUT: Final = 15.0
POLL_INTERVAL: Final = 0.2
FORWARDED: Final = (signal.SIGTERM, signal.SIGINT)

Invite = Callable[[str, str], str]
"""``invite(data_dir, name)``: a fresh code for ``name`` in that node's store."""


class Stopped(Exception):
    """SIGTERM or SIGINT reached ``dev up``."""


def run(base: Path, count: int, base_port: int, invite: Invite) -> int:
    domains = devfed.DEV_DOMAINS[:count]
    ports = [base_port + i for i in range(len(domains))]
    first_start = not (base / domains[0] / KEY_FILE).exists()
    procs: list[tuple[devfed.DomainSetup, subprocess.Popen[str]]] = []
    with _signals_raise_stopped():
        try:
            setups = _prepare(base, domains, ports)
            for setup in setups:
                proc = _spawn(setup)
                procs.append((setup, proc))  # stopped in the end even if it never listens
                _await_listening(setup, proc)
            codes = {}
            if first_start:
                for name, setup in zip(DEV_UP_USERS, setups, strict=False):
                    codes[name] = invite(str(setup.data_dir), name)
            print(devhints.federation_instructions(base, setups, codes), flush=True)
            _watch(procs)
        except Stopped:
            pass
        finally:
            _stop(procs)
    return 0


def _prepare(base: Path, domains: tuple[str, ...], ports: list[int]) -> list[devfed.DomainSetup]:
    try:
        return devfed.prepare(base, domains, ports)
    except OSError as exc:
        raise file_error(exc, NODE_DATA_DIR) from None


@contextlib.contextmanager
def _signals_raise_stopped() -> Iterator[None]:
    def handler(signum: int, frame: FrameType | None) -> None:
        _ignore_signals()  # the first one stops; more must not interrupt the stopping
        raise Stopped(signal.Signals(signum).name)

    previous = {signum: signal.signal(signum, handler) for signum in FORWARDED}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def _ignore_signals() -> None:
    for signum in FORWARDED:
        signal.signal(signum, signal.SIG_IGN)


def _spawn(setup: devfed.DomainSetup) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "sealrelay", "node", "serve", "--domain", setup.domain]
    argv += ["--listen", f"{devfed.LOOPBACK}:{setup.port}", "--data", str(setup.data_dir)]
    argv += ["--udp-listen", f"{devfed.LOOPBACK}:{setup.port}"]  # call media: same number, UDP
    argv += ["--config", str(setup.config)]
    with _log_path(setup).open("a") as log_file:
        return subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            argv, stdout=subprocess.PIPE, stderr=log_file, text=True
        )


def _await_listening(setup: devfed.DomainSetup, proc: subprocess.Popen[str]) -> None:
    assert proc.stdout is not None  # noqa: S101
    for line in proc.stdout:
        if '"listening"' in line:
            return
    proc.wait()
    raise _failed(setup, "did not start")


def _watch(procs: list[tuple[devfed.DomainSetup, subprocess.Popen[str]]]) -> None:
    """Until a node exits (an error naming its log) or a signal arrives (:class:`Stopped`)."""
    while True:
        for setup, proc in procs:
            status = proc.poll()
            if status is not None:
                raise _failed(setup, f"exited with status {status}")
        time.sleep(POLL_INTERVAL)


def _stop(procs: list[tuple[devfed.DomainSetup, subprocess.Popen[str]]]) -> None:
    """SIGTERM to every node still running, then wait for each (SIGKILL after the timeout);
    further signals meanwhile are ignored so the wait completes."""
    _ignore_signals()
    for _, proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    for _, proc in procs:
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def _log_path(setup: devfed.DomainSetup) -> Path:
    return setup.data_dir.with_name(setup.data_dir.name + ".log")


def _failed(setup: devfed.DomainSetup, what: str) -> CommandError:
    message = f"the node for {setup.domain} {what}; see its log {_log_path(setup)}"
    return CommandError(message, DEV_NODE_FAILED)
