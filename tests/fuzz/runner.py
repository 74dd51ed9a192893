"""Running the fuzzing worker for a set time and reading what libFuzzer printed.

A run is one or more worker processes: a finding ends a process (atheris stops at the
first uncaught exception), its input is copied into the corpus as ``crash-<sha1>``, and
the target is started again for the time left, unless that finding's exception was
already seen in this run (the same bug again would only repeat itself).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from tests.fuzz import corpus

WORK: Final = Path(__file__).parent.parent.parent / ".fuzz"
_STATUS = re.compile(r"cov: (\d+) ft: (\d+) corp: (\d+)")
_UNITS = re.compile(r"stat::number_of_executed_units: (\d+)")
_COUNT = re.compile(r"^#(\d+)\s", re.MULTILINE)
_ARTIFACT = re.compile(r"Test unit written to (\S+)")
_EXCEPTION = re.compile(r"=== Uncaught Python exception: ===\s*\n(.+)")


@dataclass
class Finding:
    exception: str
    path: Path | None


@dataclass
class Result:
    target: str
    seconds: float = 0.0
    executions: int = 0
    cov: int = 0
    ft: int = 0
    corpus: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.executions / self.seconds if self.seconds else 0.0


def run(target: str, seconds: int, max_len: int, engine: str = "atheris") -> Result:
    """Fuzz ``target`` for ``seconds``; its working corpus is ``.fuzz/TARGET/``."""
    work = WORK / target
    (work / "corpus").mkdir(parents=True, exist_ok=True)
    (work / "artifacts").mkdir(exist_ok=True)
    result = Result(target)
    started = time.monotonic()
    seen: set[str] = set()
    while (left := seconds - (time.monotonic() - started)) >= 1:
        output = _worker(target, work, int(left), max_len, engine)
        _read(output, result)
        finding = _finding(output)
        if finding is None:
            break
        result.findings.append(finding)
        if finding.exception in seen:
            break
        seen.add(finding.exception)
    result.seconds = time.monotonic() - started
    return result


def _worker(target: str, work: Path, seconds: int, max_len: int, engine: str) -> str:
    flags = [
        f"-max_total_time={seconds}",
        f"-max_len={max_len}",
        f"-artifact_prefix={work / 'artifacts'}/",
        "-print_final_stats=1",
        "-rss_limit_mb=2048",
        "-timeout=20",
    ]
    dirs = [str(work / "corpus"), str(corpus.directory(target))]
    env = {"SEALRELAY_FUZZ_ENGINE": engine}
    cmd = [sys.executable, "-m", "tests.fuzz.worker", target, *flags, *dirs]
    done = subprocess.run(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # atheris prints the uncaught exception on stdout
        text=True,
        errors="replace",
        env={**os.environ, **env},
        check=False,
    )
    (work / "last.log").write_text(done.stdout)
    return done.stdout


def _read(output: str, result: Result) -> None:
    units = _UNITS.findall(output) or _COUNT.findall(output)[-1:]  # a crash prints no stats
    result.executions += sum(int(u) for u in units)
    statuses = _STATUS.findall(output)
    if statuses:
        cov, ft, corp = (int(v) for v in statuses[-1])
        result.cov, result.ft = max(result.cov, cov), max(result.ft, ft)
        result.corpus = corp


def _finding(output: str) -> Finding | None:
    artifact = _ARTIFACT.search(output)
    exception = _EXCEPTION.search(output)
    if artifact is None and exception is None:
        return None
    saved = None
    if artifact is not None:
        path = Path(artifact.group(1))
        if path.is_file() and path.name.startswith(("crash-", "timeout-", "oom-")):
            saved = corpus.save(result_target(path), "crash", path.read_bytes())
    text = exception.group(1).strip() if exception else (artifact.group(1) if artifact else "")
    return Finding(text[:200], saved)


def result_target(artifact: Path) -> str:
    """The target an artifact of ``.fuzz/TARGET/artifacts/`` belongs to."""
    return artifact.parent.parent.name


def keep_new(target: str, max_len: int) -> int:
    """Merge the working corpus into a minimal set (libFuzzer ``-merge=1``) and keep its
    inputs that the committed corpus lacks; how many were added."""
    work = WORK / target / "corpus"
    with tempfile.TemporaryDirectory() as tmp:
        merged = Path(tmp) / "merged"
        merged.mkdir()
        for path in corpus.files(target):
            shutil.copy(path, merged / path.name)
        before = {p.name for p in merged.iterdir()}
        cmd = [
            sys.executable,
            "-m",
            "tests.fuzz.worker",
            target,
            "-merge=1",
            f"-max_len={max_len}",
            str(merged),
            str(work),
        ]
        subprocess.run(cmd, capture_output=True, check=False)
        fresh = [p for p in merged.iterdir() if p.name not in before]
        return corpus.keep(target, fresh)
