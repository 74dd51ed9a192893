"""A real ``sealrelay node serve`` process settles its heap once it listens (node.heap)."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.integration.nodeproc import NodeProcess


def _series(text: str, name: str) -> float:
    values = [float(ln.rsplit(" ", 1)[1]) for ln in text.splitlines() if ln.startswith(name + " ")]
    assert len(values) == 1, name
    return values[0]


def test_the_node_process_freezes_its_startup_objects_and_times_collections(
    tmp_path: Path,
) -> None:
    with NodeProcess(tmp_path / "node", domain="heap.test") as node:
        url = node.start()
        text = httpx.get(url + "/metrics").text
    # trio, hypercorn, cryptography and the node: tens of thousands of startup objects
    assert _series(text, "sealrelay_gc_frozen_objects") > 10_000
    assert _series(text, "sealrelay_gc_pause_seconds_count") >= 1  # settle's own collection
    assert 'sealrelay_gc_collections_total{generation="2"}' in text
