"""``python -m tests.fuzz``: see the package docstring."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from tests.fuzz import corpus

if TYPE_CHECKING:
    from tests.fuzz.runner import Result


def _targets(name: str) -> list[str]:
    from tests.fuzz.targets import TARGETS

    if name == "all":
        return list(TARGETS)
    if name not in TARGETS:
        raise SystemExit(f"unknown target {name!r}; `python -m tests.fuzz list` names them")
    return [name]


def _max_len(name: str) -> int:
    from tests.fuzz.targets import TARGETS

    sizes = [p.stat().st_size for p in corpus.files(name)]
    return max([TARGETS[name].max_len, *sizes])


def cmd_list(_: argparse.Namespace) -> int:
    from tests.fuzz.targets import TARGETS

    for t in TARGETS.values():
        print(f"{t.name:20} {t.entry}\n{'':20} refuses with: {t.refuses}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from tests.fuzz import runner

    results = []
    for name in _targets(args.target):
        print(f"fuzzing {name} for {args.seconds} s ...", file=sys.stderr, flush=True)
        result = runner.run(name, args.seconds, _max_len(name), args.engine)
        if args.keep:
            added = runner.keep_new(name, _max_len(name))
            print(f"  kept {added} new corpus inputs", file=sys.stderr)
        results.append(result)
    print(_table(results))
    return 1 if any(r.findings for r in results) else 0


def _table(results: list[Result]) -> str:
    head = f"{'target':20} {'execs':>9} {'execs/s':>8} {'cov':>6} {'ft':>6} {'corpus':>6}  findings"
    lines = [head, "-" * len(head)]
    for r in results:
        found = "; ".join(f.exception for f in r.findings) or "none"
        lines.append(
            f"{r.target:20} {r.executions:>9} {r.rate:>8.0f} {r.cov:>6} {r.ft:>6} "
            f"{r.corpus:>6}  {found}"
        )
    return "\n".join(lines)


def cmd_seeds(args: argparse.Namespace) -> int:
    from tests.fuzz.seeds import seeds

    for name in _targets(args.target):
        folder = corpus.directory(name)
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("seed-*"):
            old.unlink()
        for i, data in enumerate(seeds(name)):
            (folder / f"seed-{i:02d}").write_bytes(data)
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from tests.fuzz.replay import failures

    bad = 0
    for name in _targets(args.target):
        for path, error in failures(name):
            print(f"{name}: {path.name}: {error}")
            bad += 1
    return 1 if bad else 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list").set_defaults(func=cmd_list)
    run = sub.add_parser("run")
    run.add_argument("target")
    run.add_argument("--seconds", type=int, default=60)
    run.add_argument("--engine", choices=["atheris", "hypothesis"], default="atheris")
    run.add_argument("--keep", action="store_true", help="add new interesting inputs")
    run.set_defaults(func=cmd_run)
    for name, func in (("seeds", cmd_seeds), ("replay", cmd_replay)):
        cmd = sub.add_parser(name)
        cmd.add_argument("target", nargs="?", default="all")
        cmd.set_defaults(func=func)
    args = parser.parse_args()
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
