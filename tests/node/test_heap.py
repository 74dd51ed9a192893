"""node.heap: the node process's collector settings, and the gc series on /metrics.

``settle`` changes the collector of the whole process, so it runs in a child interpreter.
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import textwrap

from prometheus_client.parser import text_string_to_metric_families

from node.heap import GEN0_THRESHOLD
from node.metrics import Metrics

CHILD = textwrap.dedent(
    """
    import gc, json, weakref
    from node import heap
    from node.metrics import GC_PAUSES, Metrics

    before = gc.get_freeze_count()
    heap.settle()
    frozen = gc.get_freeze_count()
    pauses = GC_PAUSES.histogram.count

    class Node:
        pass

    a, b = Node(), Node()
    a.other, b.other = b, a  # a reference cycle made after settle
    gone = weakref.ref(a)
    del a, b
    gc.collect()
    print(json.dumps({
        "before": before,
        "frozen": frozen,
        "threshold": gc.get_threshold()[0],
        "watched": GC_PAUSES in gc.callbacks,
        "pauses_after_settle": pauses,
        "pauses_after_collect": GC_PAUSES.histogram.count,
        "cycle_collected": gone() is None,
        "metrics": Metrics().render({}),
    }))
    """
)


def _values(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition text by (name, sorted labels), read by the parser."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _child() -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, check=True, timeout=60
    )
    result: dict[str, object] = json.loads(out.stdout)
    return result


def test_settle_freezes_startup_objects_and_keeps_collecting_new_cycles() -> None:
    got = _child()
    assert got["before"] == 0
    assert isinstance(got["frozen"], int)
    assert got["frozen"] > 1_000  # the imported modules
    assert got["threshold"] == GEN0_THRESHOLD
    assert got["watched"] is True
    assert got["pauses_after_settle"] == 1  # settle's own collection was timed
    assert got["pauses_after_collect"] == 2
    assert got["cycle_collected"] is True
    text = got["metrics"]
    assert isinstance(text, str)
    values = _values(text)
    assert values["sealrelay_gc_frozen_objects", ()] == got["frozen"]
    assert values["sealrelay_gc_pause_seconds_bucket", (("le", "+Inf"),)] == 2
    assert values["sealrelay_gc_pause_seconds_count", ()] == 2


def test_metrics_show_collections_and_no_pauses_unless_watched() -> None:
    before = [stats["collections"] for stats in gc.get_stats()]
    text = Metrics().render({})
    lines = text.splitlines()
    after = [stats["collections"] for stats in gc.get_stats()]
    generations = [ln for ln in lines if ln.startswith("sealrelay_gc_collections_total{")]
    assert [ln.split("}")[0] for ln in generations] == [
        f'sealrelay_gc_collections_total{{generation="{g}"' for g in range(3)
    ]
    values = _values(text)
    shown = [values["sealrelay_gc_collections_total", (("generation", str(g)),)] for g in range(3)]
    assert all(b <= n <= a for b, n, a in zip(before, shown, after, strict=True))
    assert any(ln.startswith("sealrelay_gc_frozen_objects ") for ln in lines)
    # this test process never called settle: no pause histogram to misread as "no pauses"
    assert not any(ln.startswith("sealrelay_gc_pause_seconds") for ln in lines)
