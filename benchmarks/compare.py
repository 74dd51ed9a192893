"""``python -m benchmarks.compare --base REV``: two revisions' benchmarks, interleaved.

    python -m benchmarks.compare --base REV [--head REV|DIR] [--rounds N]
                                 [--only node,federation,groupnet] [--profile full|short|quick]
                                 [--threshold 0.10] [--out DIR]
    python -m benchmarks.compare --replay compare.json [--threshold 0.10]

For each module, ``--rounds`` times (default 3): the base revision's run, then the head's.
Interleaving makes both sides see the same machine: on a shared machine whose load drifts,
running all of one side first would measure the drift, not the change.  The table gives,
per case and metric, the median over the rounds of each side, head/base, and each side's
spread ((max - min) / median: the noise); throughput rows say whether head is within
``--threshold`` (default 10%) of base.  ``compare.json`` (every run's numbers, the medians,
what was imported from where) and ``compare.md`` (the table, for a note) go where
``make bench`` writes its JSON (``--out``, else ``$SEALRELAY_BENCH_OUT``, else
``benchmarks/results/``).

The base is a temporary ``git worktree --detach`` of ``REV`` (removed at the end, also on
Ctrl-C or SIGTERM); ``--head`` is this working tree (uncommitted changes included) unless
it names a directory or another revision.  Each run is ``python -m benchmarks MODULE`` with
this interpreter (hence this virtualenv's dependencies), started in that side's tree with
``PYTHONPATH`` set to it: the directory of ``-m`` and ``PYTHONPATH`` come before the
virtualenv's editable install, and every process a benchmark starts (``python -m sealrelay
node serve``, the load generators) inherits both.  That is checked, not assumed: a
``sitecustomize`` hook (first on ``PYTHONPATH``) logs where every process imported each
top-level package from, and a run that took any of the project's packages from outside its
own tree fails.

Profiles: ``full`` is ``make bench`` as it is; ``quick`` is ``--quick`` (a smoke run, its
numbers are noise); ``short`` (the default) is the full cases with smaller counts and
shorter windows (:data:`PROFILES`), set on the module constants of both sides alike before
the run.  Most of a run is setup (accounts registered, nodes started, layers sealed), so
``short`` saves about a quarter: on the shared 2-core machine, one round of both sides of
node, federation and groupnet took 9 minutes with ``short`` (about 10 with ``full``).

Besides rates and latencies the table has the benchmarks' CPU per envelope (``node CPU
us/env``, ``A``/``B CPU us/env``, ``node CPU us/delivery``) and ``other load, cores`` (what
the rest of the machine used meanwhile): on a shared machine the rates move by tens of
percent with the other load between two runs of the same code, the CPU per envelope far
less.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType
from typing import Any, Final

from benchmarks import report
from benchmarks.comparetable import Row, Run, cells, markdown, plain, rows

REPO: Final = Path(__file__).resolve().parent.parent
DEFAULT_MODULES: Final = ("node", "federation", "groupnet")
DEFAULT_ROUNDS: Final = 3
DEFAULT_THRESHOLD: Final = 0.10
DEFAULT_PROFILE: Final = "short"
OUT_ENV: Final = "SEALRELAY_BENCH_OUT"
ORIGIN_ENV: Final = "SEALRELAY_BENCH_ORIGIN_LOG"
STOP_GRACE_S: Final = 60.0
LOG_TAIL_LINES: Final = 30

Overrides = Mapping[str, Mapping[str, int | float]]

PROFILES: Final[Mapping[str, Overrides]] = {
    "full": {},
    "quick": {},
    "short": {
        "benchmarks.node": {"SECONDS": 5.0, "IDLE": 500},
        "benchmarks.federation": {"THROUGHPUT_ENVELOPES": 6000, "HALF_SECONDS": 4.0,
                                  "BACKLOG": 3000},
        "benchmarks.groupnet": {"FANOUT_MESSAGES": 150, "GROUP_MESSAGES": 10},
    },
}  # fmt: skip
"""Module constants each profile sets before ``run`` (``quick`` passes ``--quick``)."""

SITECUSTOMIZE: Final = '''\
"""Written by benchmarks.compare: log where each top-level package is imported from."""
import os
import sys

_LOG = os.environ.get("SEALRELAY_BENCH_ORIGIN_LOG")


class _OriginLog:
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if path is not None or "." in name:
            return None
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            if finder is cls or find is None:
                continue
            spec = find(name, path, target)
            if spec is not None:
                with open(_LOG, "a", encoding="utf-8") as log:
                    log.write(f"{os.getpid()}\\t{name}\\t{spec.origin}\\n")
                return spec
        return None


if _LOG:
    sys.meta_path.insert(0, _OriginLog)
'''

RUNNER: Final = """\
import importlib, json, sys
from pathlib import Path
from benchmarks import harness, report
name, out, quick, overrides = sys.argv[1], Path(sys.argv[2]), sys.argv[3] == "1", sys.argv[4]
for module, values in json.loads(overrides).items():
    target = importlib.import_module(module)
    for key, value in values.items():
        if not hasattr(target, key):
            sys.exit(f"{module}.{key} does not exist in this tree")
        setattr(target, key, value)
results = harness.load(name)(quick)
print(report.table(name, results), flush=True)
doc = report.module_document(name, results, report.machine_info(), quick)
report.write_json(out / f"{name}.json", doc)
"""
"""``python -c RUNNER MODULE OUT QUICK OVERRIDES``: ``python -m benchmarks MODULE`` with
module constants overridden (the same calls as ``benchmarks.__main__``)."""


class CompareError(Exception):
    """A revision, worktree or run that makes the comparison impossible."""


@dataclass(frozen=True)
class Tree:
    """One side: its label, commit, directory and whether this tool made the directory."""

    side: str
    commit: str
    path: Path
    temporary: bool
    dirty: bool = False


# --- git ----------------------------------------------------------------------------------------


def _git(*args: str, cwd: Path = REPO) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise CompareError(f"git {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout.strip()


def _commit(rev: str) -> str:
    try:
        return _git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    except CompareError:
        raise CompareError(f"{rev!r} names no commit of this repository") from None


@contextmanager
def _worktree(side: str, rev: str, parent: Path) -> Iterator[Tree]:
    """A detached worktree of ``rev`` under ``parent``, removed on the way out."""
    commit = _commit(rev)
    path = parent / side
    _git("worktree", "add", "--detach", "--quiet", str(path), commit)
    try:
        yield Tree(side, commit, path, temporary=True)
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(path)], cwd=REPO, check=False)
        subprocess.run(["git", "worktree", "prune"], cwd=REPO, check=False)


@contextmanager
def _head(spec: str | None, parent: Path) -> Iterator[Tree]:
    """This working tree, another directory, or a worktree of a revision."""
    if spec is None or Path(spec).is_dir():
        path = Path(spec).resolve() if spec else REPO
        top = Path(_git("rev-parse", "--show-toplevel", cwd=path))
        dirty = bool(_git("status", "--porcelain", "--untracked-files=no", cwd=top))
        yield Tree("head", _git("rev-parse", "HEAD", cwd=top), top, temporary=False, dirty=dirty)
        return
    with _worktree("head", spec, parent) as tree:
        yield tree


# --- one run --------------------------------------------------------------------------------------


def _command(module: str, out: Path, profile: str) -> list[str]:
    overrides = PROFILES[profile]
    if not overrides:
        quick = ["--quick"] if profile == "quick" else []
        return [sys.executable, "-m", "benchmarks", "--out", str(out), *quick, module]
    return [sys.executable, "-c", RUNNER, module, str(out), "0", json.dumps(overrides)]


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGINT to the benchmark (its ``finally`` blocks stop its nodes), at most
    :data:`STOP_GRACE_S` to end, then SIGKILL to its process group: all it started."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)
    with suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=STOP_GRACE_S)
    _kill_group(proc)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with suppress(ProcessLookupError):  # what it started and left behind, if anything
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def run_one(
    tree: Tree, module: str, number: int, work: Path, profile: str, hook: Path, packages: set[str]
) -> Run:
    """``module`` on ``tree`` in a fresh process of its own session (so that a Ctrl-C reaches
    this tool alone, which stops the run in order)."""
    out = work / f"{module}-{number}-{tree.side}"
    out.mkdir()
    origins = out / "origins.tsv"
    env = {key: value for key, value in os.environ.items() if key != OUT_ENV}
    env.update(PYTHONPATH=f"{hook}{os.pathsep}{tree.path}", **{ORIGIN_ENV: str(origins)})
    started = time.monotonic()
    with (out / "output.log").open("wb") as log:
        proc = subprocess.Popen(
            _command(module, out, profile),
            cwd=tree.path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            code = proc.wait()
        except BaseException:
            _stop(proc)
            raise
        if code != 0:
            _kill_group(proc)
    seconds = time.monotonic() - started
    error = None if code == 0 else f"exit status {code}: {_tail(out / 'output.log')}"
    results: list[dict[str, Any]] = []
    if error is None:
        results = json.loads((out / f"{module}.json").read_text(encoding="utf-8"))["results"]
    imported, processes = _origins(origins, packages)
    return Run(module, tree.side, number, seconds, results, error, imported, processes)


def _tail(path: Path) -> str:
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return "\n".join(lines[-LOG_TAIL_LINES:])


def _origins(log: Path, packages: set[str]) -> tuple[dict[str, list[str]], int]:
    """Each of ``packages`` -> the files it was imported from; and how many processes
    (of any package) logged."""
    seen: dict[str, set[str]] = {}
    pids: set[str] = set()
    if log.exists():
        for line in log.read_text(encoding="utf-8").splitlines():
            pid, name, origin = line.split("\t", 2)
            pids.add(pid)
            if name in packages:
                seen.setdefault(name, set()).add(origin)
    return {name: sorted(files) for name, files in sorted(seen.items())}, len(pids)


def project_packages(*trees: Path) -> set[str]:
    """The top-level packages (a directory with ``__init__.py``) of any of ``trees``."""
    return {p.parent.name for tree in trees for p in tree.glob("*/__init__.py")}


def foreign_imports(run: Run, tree: Path, packages: set[str]) -> list[str]:
    """``package: file`` for each of the project's packages ``run`` imported from elsewhere."""
    return [
        f"{name}: {origin}"
        for name, origins in run.imported_from.items()
        if name in packages
        for origin in origins
        if not Path(origin).resolve().is_relative_to(tree.resolve())
    ]


# --- main -----------------------------------------------------------------------------------------


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.compare",
        description="Two revisions' benchmarks, interleaved (see the module docstring).",
    )
    parser.add_argument("--base", help="the revision to compare against")
    parser.add_argument("--head", help="a revision or a directory (default: this working tree)")
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS, help="runs of each side")
    parser.add_argument(
        "--only", default=",".join(DEFAULT_MODULES), help="comma-separated benchmark modules"
    )
    parser.add_argument("--profile", choices=sorted(PROFILES), default=DEFAULT_PROFILE)
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    parser.add_argument("--out", type=Path, help=f"JSON directory (default ${OUT_ENV})")
    parser.add_argument(
        "--replay", type=Path, help="print the table of an earlier compare.json; run nothing"
    )
    args = parser.parse_args(argv)
    args.modules = [m for m in args.only.split(",") if m]
    if args.replay is None and args.base is None:
        parser.error("--base is required (or --replay)")
    if args.rounds < 1 or not args.modules:
        parser.error("need at least one round and one module")
    return args


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _announce(run: Run, tree: Tree, foreign: list[str]) -> None:
    node = run.imported_from.get("node", ["(not imported)"])
    state = "ok" if run.error is None else "FAILED"
    print(
        f"[{run.module} round {run.round} {run.side} {tree.commit[:9]}] {state} in"
        f" {run.seconds:.0f} s; {run.processes} processes, node from {', '.join(node)}",
        flush=True,
    )
    if run.error:
        print(run.error, file=sys.stderr, flush=True)
    for line in foreign:
        print(f"  FOREIGN IMPORT {line}", file=sys.stderr, flush=True)


def _clean(run: Run, foreign: list[str]) -> bool:
    """The run finished, imported the node package, and only from its own tree."""
    return run.error is None and not foreign and "node" in run.imported_from


def compare(args: argparse.Namespace, work: Path) -> tuple[dict[str, Any], list[Row], bool]:
    """Every run, interleaved; the JSON document, the table and whether all runs were clean."""
    hook = work / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(SITECUSTOMIZE, encoding="utf-8")
    runs: list[Run] = []
    clean = True
    started = time.monotonic()
    with _worktree("base", args.base, work) as base, _head(args.head, work) as head:
        packages = project_packages(base.path, head.path)
        for module in args.modules:
            for number in range(1, args.rounds + 1):
                for tree in (base, head):
                    run = run_one(tree, module, number, work, args.profile, hook, packages)
                    foreign = foreign_imports(run, tree.path, packages)
                    _announce(run, tree, foreign)
                    clean = clean and _clean(run, foreign)
                    runs.append(run)
        trees = {t.side: {**asdict(t), "path": str(t.path)} for t in (base, head)}
    table = rows(runs)
    document = {
        "schema": report.SCHEMA_VERSION,
        "kind": "compare",
        "profile": args.profile,
        "overrides": PROFILES[args.profile],
        "rounds": args.rounds,
        "threshold": args.threshold,
        "seconds": round(time.monotonic() - started, 1),
        "machine": report.machine_info(),
        "trees": trees,
        "rows": [{**asdict(r), "ratio": r.ratio} for r in table],
        "runs": [asdict(r) for r in runs],
    }
    return document, table, clean


def _title(document: Mapping[str, Any]) -> str:
    base, head = document["trees"]["base"], document["trees"]["head"]
    return (
        f"base {base['commit'][:9]} vs head {head['commit'][:9]}"
        f"{' + uncommitted changes' if head['dirty'] else ''}: median of"
        f" {document['rounds']} interleaved round(s), profile {document['profile']},"
        f" {document['seconds'] / 60:.1f} min"
    )


def _replay(path: Path, threshold: float) -> int:
    """The table of an earlier run's ``compare.json`` (another threshold, newer metrics)."""
    document = json.loads(path.read_text(encoding="utf-8"))
    table = rows([Run(**run) for run in document["runs"]])
    print(f"{_title(document)}\n{plain(cells(table, threshold))}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    if args.replay is not None:
        return _replay(args.replay, args.threshold)
    out: Path = args.out or Path(os.environ.get(OUT_ENV) or REPO / "benchmarks" / "results")
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        with tempfile.TemporaryDirectory(prefix="sealrelay-compare-") as tmp:
            document, table, clean = compare(args, Path(tmp))
    except CompareError as exc:
        print(f"compare: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("compare: interrupted; worktree and runs cleaned up", file=sys.stderr)
        return 130
    grid = cells(table, args.threshold)
    title = _title(document)
    print(f"\n{title}\n{plain(grid)}")
    report.write_json(out / "compare.json", document)
    (out / "compare.md").write_text(f"{title}\n\n{markdown(grid)}\n", encoding="utf-8")
    print(f"JSON written to {out}/ (compare.json, compare.md)")
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
