"""``python -m node serve`` as a real process: the listening line, readiness, an invite made
while it runs, and a clean exit on SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from functools import partial
from pathlib import Path

import httpx
import trio

from node.accounts import parse_code

ROOT = Path(__file__).resolve().parents[2]


async def read_line(stream: trio.abc.ReceiveStream) -> bytes:
    data = b""
    with trio.fail_after(30):
        while b"\n" not in data:
            chunk = await stream.receive_some()
            assert chunk, "the node exited before listening"
            data += chunk
    return data.split(b"\n", 1)[0]


async def test_serve_prints_listening_and_stops_on_sigterm(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    command = [sys.executable, "-m", "node", "serve", "--domain", "cli.test"]
    command += ["--listen", "127.0.0.1:0", "--data", data]
    async with trio.open_nursery() as nursery:
        process: trio.Process = await nursery.start(
            partial(
                trio.run_process,
                command,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                cwd=ROOT,
                check=False,
            )
        )
        assert process.stdout is not None
        line = json.loads(await read_line(process.stdout))
        assert line["event"] == "listening"
        assert line["url"].startswith("http://127.0.0.1:")
        async with httpx.AsyncClient(base_url=line["url"]) as http:
            assert (await http.get("/readyz")).status_code == 200
        invite = await trio.run_process(
            [sys.executable, "-m", "sealrelay", "admin", "invite", "carol", "--data", data],
            capture_stdout=True,
            cwd=ROOT,
        )
        assert parse_code(invite.stdout.decode().splitlines()[0]) is not None
        process.send_signal(signal.SIGTERM)
        with trio.fail_after(15):
            assert await process.wait() == 0
