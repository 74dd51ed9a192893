"""``python -m benchmarks [--quick] [--out DIR] [module ...]``: run, print, write JSON.

Without module names every module of :data:`benchmarks.harness.MODULES` runs (those of
:data:`benchmarks.harness.NAMED_ONLY`, such as ``calls``, run only when named).  A module
that raises is reported (traceback on stderr, message under ``errors`` in ``latest.json``)
and the others still run; the exit status is then 1.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from benchmarks import harness, report

OUT_ENV: Final = "SEALRELAY_BENCH_OUT"
DEFAULT_OUT: Final = Path(__file__).resolve().parent / "results"


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "modules",
        nargs="*",
        metavar="module",
        help=f"any of: {', '.join((*harness.MODULES, *harness.NAMED_ONLY))}",
    )
    parser.add_argument("--quick", action="store_true", help="tiny time budget (smoke run)")
    parser.add_argument(
        "--out", type=Path, help=f"JSON directory (default ${OUT_ENV}, else {DEFAULT_OUT})"
    )
    args = parser.parse_args(argv)
    known = (*harness.MODULES, *harness.NAMED_ONLY)
    unknown = [m for m in args.modules if m not in known]
    if unknown:
        parser.error(f"unknown module(s) {', '.join(unknown)}; have {', '.join(known)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    out: Path = args.out or Path(os.environ.get(OUT_ENV) or DEFAULT_OUT)
    modules: list[str] = args.modules or list(harness.MODULES)
    machine = report.machine_info()
    done: dict[str, list[harness.Result]] = {}
    errors: dict[str, str] = {}
    for name in modules:
        try:
            results = harness.load(name)(args.quick)
        except Exception as exc:  # one broken module must not hide the others' numbers
            traceback.print_exc()
            errors[name] = f"{type(exc).__name__}: {exc}"
            continue
        done[name] = results
        print(report.table(name, results), end="\n\n", flush=True)
        doc = report.module_document(name, results, machine, args.quick)
        report.write_json(out / f"{name}.json", doc)
    latest = report.latest_document(done, errors, machine, args.quick)
    report.write_json(out / report.LATEST, latest)
    print(f"JSON written to {out}/ ({', '.join([*done, report.LATEST])})")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
