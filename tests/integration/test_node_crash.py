"""kill -9 of a real node in the middle of a stream of 2,000 sends, then a restart.

A sender process (``tests.integration.rawclient send``) streams 2,000 opaque 1 KiB
envelopes with a window of unacknowledged sends and prints every ``Sent``. The test
SIGKILLs the node once some hundreds were acknowledged and restarts it on the same data
directory and port; the sender reconnects by itself and sends every unacknowledged
envelope again with the same eid and bytes. A receiver process (the application: drops
duplicates by eid, checks every body) then gets each of the 2,000 exactly once, including
every one the node acknowledged before it died.
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Final

import trio

from tests.integration import rawclient
from tests.integration.nodeproc import NodeProcess, invite, json_lines

DOMAIN: Final = "crash.test"
COUNT: Final = 2000
KILL_AFTER: Final = 300
WINDOW: Final = 64
RATE: Final = 1500.0  # sends per second at most, so the kill lands mid-stream
ROOT: Final = Path(__file__).resolve().parents[2]
NODE_ENV: Final = {
    "SEALRELAY_SUITE": "xwing",
    # This test is about durability, not limits: one account sends 2,000 quickly.
    "SEALRELAY_RATE_ACCOUNT_PER_S": "100000",
    "SEALRELAY_RATE_ACCOUNT_BURST": "100000",
    "SEALRELAY_RATE_IP_PER_S": "100000",
    "SEALRELAY_RATE_IP_BURST": "100000",
}


class Lines:
    """A child's stdout as JSON events, read by a thread so waits can time out."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self._q: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._q.put(line)
        self._q.put(None)

    def next(self, deadline: float) -> dict[str, Any]:
        try:
            line = self._q.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise AssertionError("the child printed nothing in time") from None
        if line is None:
            err = self.proc.stderr.read() if self.proc.stderr else ""
            raise AssertionError(f"the child exited ({self.proc.wait()}):\n{err[-3000:]}")
        (event,) = json_lines(line)
        return event


def _child(role: str, *args: str) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "tests.integration.rawclient", role, *args]
    return subprocess.Popen(
        argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _enroll(node: NodeProcess, tmp_path: Path) -> tuple[Path, Path]:
    paths = []
    for name in ("sender", "receiver"):
        code = invite(node.data_dir, name)
        assert node.url is not None
        acct = trio.run(rawclient.register, node.url, name, code)
        path = tmp_path / f"{name}.json"
        path.write_text(acct.to_json())
        paths.append(path)
    return paths[0], paths[1]


def test_kill_9_mid_stream_loses_no_acknowledged_send(tmp_path: Path) -> None:
    with NodeProcess(tmp_path / "node", domain=DOMAIN, env=NODE_ENV) as node:
        url = node.start()
        sender_json, receiver_json = _enroll(node, tmp_path)
        seed = os.urandom(8).hex()
        args = (url, str(sender_json), str(receiver_json), seed, str(COUNT))
        sender = _child("send", *args, str(RATE), str(WINDOW))
        try:
            lines = Lines(sender)
            deadline = time.monotonic() + 60
            acked: list[int] = []
            while len(acked) < KILL_AFTER:
                event = lines.next(deadline)
                if "event" not in event:
                    acked.append(event["acked"])
            node.kill()
            # Every Sent the sender printed before it noticed the crash came from the node
            # before it died.
            event = lines.next(deadline)
            while event.get("event") != "disconnected":
                if "event" not in event:
                    acked.append(event["acked"])
                event = lines.next(deadline)
            before_kill = set(acked)
            assert len(before_kill) == len(acked)
            assert KILL_AFTER <= len(before_kill) < COUNT, "the kill did not land mid-stream"

            node.start()
            resent: list[int] = []
            done: dict[str, Any] = {}
            while not done:
                event = lines.next(deadline)
                if "event" not in event:
                    acked.append(event["acked"])
                elif event.get("event") == "connected":
                    resent += event["resend"]
                elif event.get("event") == "done":
                    done = event
            assert sender.wait(30) == 0
        finally:
            if sender.poll() is None:
                sender.kill()
            sender.communicate()  # closes the pipes

        assert done["acked"] == COUNT
        assert sorted(set(acked)) == list(range(COUNT))
        # The sends in flight at the crash went again with the same eid (some may have
        # been stored before the crash: the node then answers duplicate=True).
        assert resent, "nothing was in flight at the kill: the retry was not exercised"
        assert set(resent).isdisjoint(before_kill)
        assert done["sends"] == COUNT + len(resent)

        receiver = _child("receive", url, str(receiver_json), seed, str(COUNT), "30")
        out, err = receiver.communicate(timeout=60)
        assert receiver.returncode == 0, err
        events = json_lines(out)
        summary = events[-1]
        delivered = [e["delivered"] for e in events if "delivered" in e]
        assert summary["event"] == "done"
        assert summary["bad"] == 0
        assert summary["unknown"] == 0
        assert len(delivered) == len(set(delivered)), "a duplicate reached the application"
        missing = before_kill - set(delivered)
        assert not missing, (
            f"{len(missing)} acknowledged envelopes lost, e.g. {sorted(missing)[:5]}"
        )
        assert sorted(delivered) == list(range(COUNT))
        assert summary["unique"] == COUNT
        assert '"level": "error"' not in node.log_text()
