"""The data disk of a node fills up (DESIGN section 5: nothing accepted is lost).

A real node runs on the embedded SQLite store with its data directory on a tmpfs of its
own (``tests.resilience.volume``). alice sends envelopes to bob with the client
protocol; then another file takes the rest of the volume (ENOSPC for real).

- The node refuses the sends it cannot commit with ``store.full`` and a ``retry_after``,
  never acknowledging one it did not keep; it stays up (``/healthz``, the same
  connection), counts the failures (``sealrelay_store_failures_total{kind="full"}``) and
  logs an error line that says so, without a line per refusal.
- bob logs in while the disk is full and receives everything acknowledged so far.
- Space comes back: the next send is acknowledged, without a restart.
- After ``kill -9`` and a restart, bob's mailbox holds exactly what was acknowledged:
  nothing lost, nothing refused stored.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import httpx
import pytest
import trio

from tests.integration.fedharness import metric
from tests.integration.nodeproc import NodeProcess, invite
from tests.integration.rawclient import Account, Conn, connect, register
from tests.resilience.volume import fill, small_volume
from wire.relay import Error, Send, Sent

DOMAIN: Final = "full.test"
VOLUME: Final = 24 * 1024 * 1024
BODY: Final = 16 * 1024
WARM_UP: Final = 20
MOST_SENDS: Final = 3000
"""Sends tried after the disk is full before the test gives up on a refusal."""
REFUSED_IN_A_ROW: Final = 20
RECOVER_WITHIN: Final = 10.0
FULL_LOG: Final = "the store is full"

pytestmark = pytest.mark.slow


@pytest.fixture
def node(tmp_path: Path) -> Iterator[NodeProcess]:
    with small_volume(tmp_path / "volume", VOLUME) as volume:
        # The log goes next to the volume (``NodeProcess.log_path``), not on it.
        proc = NodeProcess(volume, domain=DOMAIN)
        try:
            proc.start()
            yield proc
        finally:
            proc.close()


class Ledger:
    """What the node acknowledged and what it refused, by eid."""

    def __init__(self) -> None:
        self.acked: set[bytes] = set()
        self.refused: list[Error] = []


async def _send(conn: Conn, to: Account, ledger: Ledger) -> bool:
    """One send; whether the node acknowledged it (else it must be ``store.full``)."""
    eid = secrets.token_bytes(16)
    answer = await conn.call(Send(conn.new_id(), to.mailbox, eid, to.token, 3600, bytes(BODY)))
    if isinstance(answer, Sent):
        assert answer.eid == eid
        ledger.acked.add(eid)
        return True
    assert isinstance(answer, Error), answer
    assert answer.code == "store.full", answer
    assert answer.retry_after > 0, answer
    ledger.refused.append(answer)
    return False


async def _until_refused(conn: Conn, to: Account, ledger: Ledger) -> None:
    """Send until the node refuses ``REFUSED_IN_A_ROW`` sends in a row (the WAL file may
    still have room for a few commits once the volume is full)."""
    row = 0
    for _ in range(MOST_SENDS):
        row = 0 if await _send(conn, to, ledger) else row + 1
        if row >= REFUSED_IN_A_ROW:
            return
    raise AssertionError(f"no {REFUSED_IN_A_ROW} refusals in a row in {MOST_SENDS} sends")


async def _backlog(url: str, who: Account) -> set[bytes]:
    async with connect(url) as conn:
        await conn.login(who)
        return {env.eid for env in await conn.backlog(30)}


async def _get(url: str, path: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.get(url + path)


def _error_lines(log_text: str, message: str) -> list[dict[str, object]]:
    records = [json.loads(line) for line in log_text.splitlines() if line.startswith("{")]
    return [r for r in records if r["level"] == "error" and str(r["msg"]).startswith(message)]


async def test_disk_full_refuses_sends_keeps_the_acknowledged_and_recovers(
    node: NodeProcess,
) -> None:
    url = node.url
    assert url is not None
    alice = await register(
        url, "alice", await trio.to_thread.run_sync(invite, node.data_dir, "alice")
    )
    bob = await register(url, "bob", await trio.to_thread.run_sync(invite, node.data_dir, "bob"))
    ledger = Ledger()
    async with connect(url) as conn:
        await conn.login(alice)
        for _ in range(WARM_UP):
            assert await _send(conn, bob, ledger)
        filler = await trio.to_thread.run_sync(fill, node.data_dir / "filler", VOLUME)
        await _until_refused(conn, bob, ledger)

        assert (await _get(url, "/healthz")).status_code == 200
        assert await _backlog(url, bob) == ledger.acked  # reads work on a full disk
        metrics = (await _get(url, "/metrics")).text
        assert metric(metrics, "sealrelay_store_failures_total", kind="full") >= len(ledger.refused)
        lines = _error_lines(node.log_text(), FULL_LOG)
        assert lines, "no error line says the store is full"
        assert len(lines) <= 2, f"{len(lines)} lines for {len(ledger.refused)} refusals"

        await trio.to_thread.run_sync(filler.unlink)
        freed = time.monotonic()
        while not await _send(conn, bob, ledger):
            assert time.monotonic() - freed < RECOVER_WITHIN, "sends did not resume"
            await trio.sleep(0.2)
        took = time.monotonic() - freed
        for _ in range(WARM_UP):
            assert await _send(conn, bob, ledger)
    print(
        f"disk full: {len(ledger.acked)} acknowledged, {len(ledger.refused)} refused;"
        f" sends resumed {took:.2f} s after space came back"
    )
    await trio.to_thread.run_sync(node.kill)
    await trio.to_thread.run_sync(node.start)
    assert await _backlog(node.url or url, bob) == ledger.acked
