"""The calls benchmark (``make bench calls``; ``benchmarks.calls``): it runs only when named,
its per-hop arithmetic, and the load generator's datagram keys. The quick run itself starts
two node processes and three load processes, then two replicas on a redis-server (about 50 s
on the 2-core machine), so it is marked ``long``: ``make resilience`` runs it, ``make test``
does not."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from benchmarks import callload, callreplicas, callrows, calls, harness
from benchmarks.__main__ import main
from wire.media import HEADER_SIZE


def test_calls_runs_only_when_named() -> None:
    assert "calls" not in harness.MODULES
    assert "calls" in harness.NAMED_ONLY
    assert harness.load("calls") is calls.run


def _round(path_us: list[float], base_us: list[float], sent: int, received: int) -> callrows.Round:
    relayed: dict[str, Any] = {
        "latencies": path_us,
        "sent": sent,
        "received": received,
        "frames_sent": 100,
        "frames_lost": 1,
        "frames_late": 0,
        "decrypt_failures": 0,
        "cpu_s": 1.0,
    }
    base = {"latencies": base_us, "sent": sent, "received": sent}
    return callrows.Round(relayed, base, 2.0, 0.5, 1.0, 15_000.0, 1.0)


def test_relay_added_latency_is_path_minus_baseline_per_hop() -> None:
    r = _round([3000.0] * 99 + [9000.0], [1000.0] * 99 + [2000.0], sent=1000, received=999)
    one = callrows.hop_result("one hop", r, 1)
    two = callrows.hop_result("two hops", r, 2)
    assert one.p50_us == pytest.approx(2000.0)
    assert one.p99_us == pytest.approx(2000.0)  # the 99th of 100 samples is still 3 ms / 1 ms
    assert two.p50_us == pytest.approx(1000.0)
    assert one.extra["loss_pct"] == pytest.approx(0.1)
    assert one.extra["base_loss_pct"] == 0
    assert one.extra["frames_lost_pct"] == pytest.approx(1.0)
    forwarding = callrows.forwarding_result("forwarding", r)
    assert forwarding.ops_per_s == pytest.approx(30_000.0)  # 15,000 datagrams / 0.5 CPU-s


def test_a_datagram_key_leaves_out_the_sender_the_node_rewrites() -> None:
    header = bytes(range(HEADER_SIZE))
    other_sender = header[:3] + b"\xff\xff\xff\xff" + header[7:]
    assert callload._key(header + b"x") == callload._key(other_sender + b"x")
    assert callload._key(header) != callload._key(header[:13] + b"\x00" + header[14:])
    last = header[:17] + (2).to_bytes(2, "big") + (3).to_bytes(2, "big")
    assert callload._last_packet(last)
    assert not callload._last_packet(header[:17] + (1).to_bytes(2, "big") + (3).to_bytes(2, "big"))


@pytest.mark.long  # about 40 s of node processes: `make resilience`, not `make test`
def test_quick_calls_run_writes_every_case(tmp_path: Path) -> None:
    assert main(["calls", "--quick", "--out", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "calls.json").read_text(encoding="utf-8"))["results"]
    names = {row["name"] for row in rows if row["group"] == "calls"}
    quick = calls.QUICK.calls
    assert {
        "setup, same domain",
        "hop latency, 1 call",
        f"hop latency, {quick} video calls",
        f"forwarding, {quick} video calls",
    } <= names
    assert {name for name, _ in callreplicas.CASES} <= names  # the replicas' rows
    forwarding = next(r for r in rows if r["name"].startswith("forwarding"))
    assert forwarding["ops_per_s"] > 0
    assert any(row["group"] == "profile" for row in rows)
    for row in rows:
        assert row["extra"].get("decrypt_failures", 0) == 0
