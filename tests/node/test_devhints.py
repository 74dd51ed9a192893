"""The commands ``dev run`` and ``dev up`` print run as printed: they name this
installation's ``sealrelay`` the way a person in the working directory can run it."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

from node.devhints import command_name

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 60.0


def venv(tmp_path: Path) -> Path:
    """A fake environment's interpreter with a ``sealrelay`` script beside it."""
    bin_dir = tmp_path / "project" / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python").write_text("")
    script = bin_dir / "sealrelay"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    return bin_dir / "python"


def test_inside_the_working_directory_relative(tmp_path: Path) -> None:
    python = venv(tmp_path)
    name = command_name(str(python), cwd=tmp_path / "project", path=os.defpath)
    assert name == ".venv/bin/sealrelay"


def test_on_the_path_by_name_elsewhere_absolute(tmp_path: Path) -> None:
    python = venv(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert command_name(str(python), cwd=elsewhere, path=str(python.parent)) == "sealrelay"
    assert command_name(str(python), cwd=elsewhere, path=os.defpath) == str(
        python.parent / "sealrelay"
    )


def test_without_a_script_the_module(tmp_path: Path) -> None:
    python = tmp_path / "python"
    assert command_name(str(python), cwd=tmp_path, path="") == f"{python} -m sealrelay"


def test_dev_run_prints_commands_that_run(tmp_path: Path) -> None:
    """``make run``: the printed register command enrolls alice, run from the same place."""
    data = tmp_path / "dev" / "node"
    env = {**os.environ, "PATH": os.defpath, "SEALRELAY_PASSPHRASE": "dev-run-test"}
    argv = [sys.executable, "-m", "sealrelay", "dev", "run", "--data", str(data)]
    proc = subprocess.Popen(
        [*argv, "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
        env=env,
    )
    try:
        lines = _lines_until(proc, "More accounts: ")
        register = next(line.split() for line in lines if "register alice@" in line)
        script = Path(os.path.abspath(Path(sys.executable).parent / "sealrelay"))
        expected = script.relative_to(ROOT) if script.is_relative_to(ROOT) else script
        assert register[0] == str(expected)
        assert lines[-1] == f"More accounts: {expected} admin invite NAME --data {data}"
        done = subprocess.run(
            register, cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT
        )
        assert done.returncode == 0, done.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0


def _lines_until(proc: subprocess.Popen[str], prefix: str) -> list[str]:
    """Lines of ``proc`` up to one starting with ``prefix`` (read in a thread: bounded)."""
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    seen: list[str] = []
    while not seen or not seen[-1].startswith(prefix):
        line = lines.get(timeout=TIMEOUT)
        assert line is not None, f"dev run stopped printing after {seen}"
        seen.append(line)
    return seen
