"""Real node processes and CLI runs for integration and resilience tests.

    node = NodeProcess(tmp_path / "node", domain="example.test")
    url = node.start()                  # `sealrelay node serve` on 127.0.0.1:0, waits for
                                        # its {"event": "listening"} line
    code = invite(node.data_dir, "alice")
    run_cli("client", "register", ...)  # `python -m sealrelay ...`, checked, with a timeout
    node.kill()                         # SIGKILL (crash); node.stop() is SIGTERM + wait
    node.restart()                      # same data directory and the same port
    node.close()                        # idempotent; also the context manager's exit

Everything runs as a separate process with the interpreter running the tests, so no
absolute path of the machine is written anywhere. The node's stderr (JSON logs) goes to
``<data_dir>.log`` for post-mortems: :meth:`NodeProcess.log_text`.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, ClassVar, Final

START_TIMEOUT: Final = 30.0
STOP_TIMEOUT: Final = 15.0
CLI_TIMEOUT: Final = 120.0
LOOPBACK: Final = "127.0.0.1"


def sealrelay_command() -> list[str]:
    return [sys.executable, "-m", "sealrelay"]


class NodeProcess:
    """One ``sealrelay node serve`` process over a data directory it keeps across restarts."""

    def __init__(
        self,
        data_dir: Path,
        *,
        domain: str = "example.test",
        config: Path | None = None,
        port: int = 0,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.domain = domain
        self.config = config
        self.port = port
        self.env = dict(env) if env is not None else None
        self.url: str | None = None
        self.proc: subprocess.Popen[str] | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._log: IO[str] | None = None
        self._reader: threading.Thread | None = None

    @property
    def log_path(self) -> Path:
        return self.data_dir.with_name(self.data_dir.name + ".log")

    def log_text(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def start(self, timeout: float = START_TIMEOUT) -> str:
        """Start the node and wait until it listens; its URL."""
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError("the node is already running")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        argv = [*sealrelay_command(), "node", "serve", "--domain", self.domain]
        argv += ["--listen", f"{LOOPBACK}:{self.port}", "--data", str(self.data_dir)]
        if self.config is not None:
            argv += ["--config", str(self.config)]
        self._log = self.log_path.open("a")
        self.proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=self._log, text=True, env=self._environ()
        )
        self._lines = queue.Queue()
        self._reader = threading.Thread(
            target=_pump_lines, args=(self.proc, self._lines), daemon=True
        )
        self._reader.start()
        self.url = self._await_listening(timeout)
        self.port = int(self.url.rsplit(":", 1)[1])
        return self.url

    def _environ(self) -> dict[str, str] | None:
        if self.env is None:
            return None
        return {**os.environ, **self.env}

    def _await_listening(self, timeout: float) -> str:
        while True:
            try:
                line = self._lines.get(timeout=timeout)
            except queue.Empty:
                self.kill()
                raise TimeoutError(f"the node did not listen in {timeout} s") from None
            if line is None:
                code = self.proc.wait() if self.proc else None
                raise RuntimeError(f"the node exited with {code}:\n{self.log_text()[-4000:]}")
            event = _json(line)
            if event.get("event") == "listening":
                return str(event["url"])

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM and wait for a clean exit; the exit status."""
        return self._signal(signal.SIGTERM, timeout)

    def kill(self) -> int:
        """SIGKILL (a crash: nothing is flushed); the exit status."""
        return self._signal(signal.SIGKILL, STOP_TIMEOUT)

    def restart(self, timeout: float = START_TIMEOUT) -> str:
        """Stop if running (SIGTERM), then start on the same data directory and port."""
        if self.proc is not None and self.proc.poll() is None:
            self.stop()
        return self.start(timeout)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _signal(self, signum: int, timeout: float) -> int:
        proc = self.proc
        if proc is None:
            raise RuntimeError("the node was never started")
        if proc.poll() is None:
            proc.send_signal(signum)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._reader is not None:
            self._reader.join(STOP_TIMEOUT)
            self._reader = None
        if proc.stdout is not None:
            proc.stdout.close()
        if self._log is not None:
            self._log.close()
            self._log = None
        return proc.returncode

    def close(self) -> None:
        if self.running():
            self.stop()

    def __enter__(self) -> NodeProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _pump_lines(proc: subprocess.Popen[str], lines: queue.Queue[str | None]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.put(line)
    lines.put(None)


def _json(line: str) -> dict[str, Any]:
    try:
        value = json.loads(line)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def run_cli(
    *args: str,
    env: Mapping[str, str] | None = None,
    timeout: float = CLI_TIMEOUT,
    check: bool = True,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``sealrelay ARGS...`` (in ``cwd`` when given); with ``check``, fail with its
    stderr on a non-zero exit."""
    result = subprocess.run(
        [*sealrelay_command(), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"sealrelay {' '.join(args[:2])} exited {result.returncode}:\n{result.stderr}"
        )
    return result


def invite(data_dir: Path, name: str, env: Mapping[str, str] | None = None) -> str:
    """A one-time enrollment code for ``name`` (``sealrelay admin invite``)."""
    out = run_cli("admin", "invite", name, "--data", str(data_dir), env=env)
    return out.stdout.splitlines()[0].strip()


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@dataclass
class CliUser:
    """An account used through ``sealrelay client`` (subclasses set ``domain``)."""

    domain: ClassVar[str]
    name: str
    home: Path
    passphrase: str

    @property
    def address(self) -> str:
        return f"{self.name}@{self.domain}"

    @property
    def env(self) -> dict[str, str]:
        return {"SEALRELAY_PASSPHRASE": self.passphrase, "SEALRELAY_TIMEOUT": "60"}

    def cli(
        self, *args: str, check: bool = True, cwd: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``sealrelay client ARGS[0] --home HOME ARGS[1:]``."""
        home = ["--home", str(self.home)]
        return run_cli("client", args[0], *home, *args[1:], env=self.env, check=check, cwd=cwd)
