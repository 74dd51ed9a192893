"""``benchmarks.compare``'s table and import check, without running a benchmark (the tool
itself runs minutes of real nodes: ``make bench-compare``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from benchmarks.compare import PROFILES, foreign_imports, project_packages
from benchmarks.comparetable import Run, cells, markdown, plain, rows


def _result(name: str, ops: float, p50_us: float | None = None) -> dict[str, Any]:
    return {"group": "node", "name": name, "ops_per_s": ops, "p50_us": p50_us, "p99_us": None}


def _run(side: str, number: int, ops: float, half_p50_us: float) -> Run:
    results = [_result("throughput", ops), _result("latency at half load", ops / 2, half_p50_us)]
    return Run("node", side, number, 1.0, results, None)


def test_rows_are_medians_per_side_with_ratio_and_spread() -> None:
    runs = [
        _run("base", 1, 1000.0, 20_000.0),
        _run("head", 1, 900.0, 30_000.0),
        _run("base", 2, 1200.0, 40_000.0),
        _run("head", 2, 1100.0, 10_000.0),
        _run("base", 3, 1100.0, 30_000.0),
        _run("head", 3, 1000.0, 20_000.0),
    ]

    table = {(r.case, r.metric): r for r in rows(runs)}

    throughput = table["node throughput", "ops/s"]
    assert (throughput.base, throughput.head) == (1100.0, 1000.0)
    assert throughput.ratio == pytest.approx(1000 / 1100)
    assert throughput.base_spread == pytest.approx(200 / 1100)
    assert throughput.throughput
    latency = table["node latency at half load", "p50 ms"]
    assert (latency.base, latency.head) == (30.0, 20.0)
    assert not latency.throughput
    assert not table["node latency at half load", "ops/s"].throughput


def test_table_flags_throughput_below_the_threshold() -> None:
    runs = [_run("base", 1, 1000.0, 1.0), _run("head", 1, 850.0, 1.0)]

    grid = cells(rows(runs), 0.10)

    assert grid[0][-1] == "within 10%"
    by_case = {(line[1], line[2]): line for line in grid[1:]}
    assert by_case["throughput", "ops/s"][-1] == "SLOWER"
    assert by_case["throughput", "ops/s"][5] == "0.850"
    assert by_case["latency at half load", "ops/s"][-1] == ""
    assert "SLOWER" in plain(grid)
    assert markdown(grid).splitlines()[1].count("---") == len(grid[0])


def test_imports_from_outside_the_tree_are_reported(tmp_path: Path) -> None:
    tree = tmp_path / "base"
    (tree / "node").mkdir(parents=True)
    (tree / "node" / "__init__.py").write_text("", encoding="utf-8")
    packages = project_packages(tree)
    inside = str(tree / "node" / "__init__.py")
    outside = str(tmp_path / "head" / "node" / "__init__.py")

    ok = Run("node", "base", 1, 1.0, [], None, {"node": [inside]})
    wrong = Run("node", "base", 1, 1.0, [], None, {"node": [inside, outside], "trio": ["/x"]})

    assert packages == {"node"}
    assert foreign_imports(ok, tree, packages) == []
    assert foreign_imports(wrong, tree, packages) == [f"node: {outside}"]


def test_profiles_override_only_constants_the_modules_have() -> None:
    import importlib

    for overrides in PROFILES.values():
        for module, values in overrides.items():
            target = importlib.import_module(module)
            for key, value in values.items():
                assert type(getattr(target, key)) is type(value), (module, key)
