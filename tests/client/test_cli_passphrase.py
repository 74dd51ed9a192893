"""Without ``SEALRELAY_PASSPHRASE`` and without a terminal, a client command says so in one
line (``client.passphrase``) instead of an ``EOFError`` traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("stdin", ["devnull", "closed"])
def test_no_passphrase_and_no_terminal_is_one_line(tmp_path: Path, stdin: str) -> None:
    (tmp_path / "state.db").write_bytes(b"")  # an account's home: the passphrase is asked
    env = {k: v for k, v in os.environ.items() if k != "SEALRELAY_PASSPHRASE"}
    command = [sys.executable, "-m", "sealrelay", "client", "info", "--home", str(tmp_path)]
    done = subprocess.run(
        command if stdin == "devnull" else ["sh", "-c", '"$@" <&-', "sh", *command],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=env,
        check=False,
    )
    assert done.returncode != 0
    assert done.stderr.startswith("sealrelay: client.passphrase: ")
    assert "SEALRELAY_PASSPHRASE" in done.stderr
    assert len(done.stderr.splitlines()) == 1
