"""Smoke test of ``python -m benchmarks``: a ``--quick`` run of the suites module, in-process,
writing its JSON to a temporary directory.  It checks shape, never timings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from benchmarks import harness
from benchmarks.__main__ import OUT_ENV, main
from suites import SUITE_NAMES

RESULT_KEYS = {
    "group",
    "name",
    "ops_per_s",
    "mean_us",
    "p50_us",
    "p99_us",
    "calls",
    "samples",
    "batch",
    "extra",
}
MACHINE_KEYS = {"timestamp", "python", "cpu_count", "libraries", "openssl", "platform"}
SUITE_CASES = {
    "kem.encapsulate",
    "kem.decapsulate",
    "hpke.seal 1KiB",
    "hpke.open 1KiB",
    "sig.sign 1KiB",
    "sig.verify 1KiB",
}


def _load(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return document


def test_quick_suites_run_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["suites", "--quick", "--out", str(tmp_path)]) == 0

    module = _load(tmp_path / "suites.json")
    assert module["module"] == "suites"
    assert module["quick"] is True
    assert module["machine"].keys() >= MACHINE_KEYS
    assert {"cryptography", "pqcrypto"} <= module["machine"]["libraries"].keys()
    results = module["results"]
    for row in results:
        assert set(row) == RESULT_KEYS
        assert row["ops_per_s"] > 0
        assert row["calls"] == row["samples"] * row["batch"] >= 1
    for suite in SUITE_NAMES:
        names = {row["name"] for row in results if row["group"] == suite}
        assert names >= SUITE_CASES
        assert any(name.startswith("dh.exchange") for name in names)
    assert {row["name"] for row in results if row["group"].startswith("sframe")} == {
        "protect 1KiB",
        "unprotect 1KiB",
    }

    latest = _load(tmp_path / "latest.json")
    assert latest["modules"]["suites"] == results
    assert latest["errors"] == {}
    assert "== suites ==" in capsys.readouterr().out


def test_out_directory_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(OUT_ENV, str(tmp_path))
    monkeypatch.setattr(harness, "QUICK", harness.Budget(0.0, 0.0, 0.0, 1, 0.0))
    assert main(["suites", "--quick"]) == 0
    assert _load(tmp_path / "latest.json")["modules"]["suites"]


def test_unknown_module_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        main(["no-such-module", "--out", str(tmp_path)])
    assert not (tmp_path / "latest.json").exists()


def test_quick_groupnet_run_delivers_every_group_message(tmp_path: Path) -> None:
    """Real node processes: the module fails unless every delivery arrived exactly once."""
    from benchmarks import groupnet

    assert main(["groupnet", "--quick", "--out", str(tmp_path)]) == 0

    fanout, group = _load(tmp_path / "groupnet.json")["results"]
    receivers, messages = groupnet.QUICK_FANOUT_RECEIVERS, groupnet.QUICK_FANOUT_MESSAGES
    assert fanout["extra"]["deliveries"] == fanout["calls"] == receivers * messages
    assert fanout["ops_per_s"] > 0
    assert group["calls"] == groupnet.QUICK_GROUP_MESSAGES
    members = [int(n) for n in group["extra"]["members_a_b_c"].split("/")]
    delivered = [int(n) for n in group["extra"]["delivered_a_b_c"].split("/")]
    assert sum(members) == groupnet.QUICK_GROUP_RECEIVERS
    assert delivered == [n * (groupnet.QUICK_GROUP_MESSAGES + 1) for n in members]
    assert group["extra"]["uploads_per_message"] == 3
    assert 0 < group["p50_us"] <= group["p99_us"]
