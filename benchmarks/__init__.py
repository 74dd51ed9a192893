"""Benchmarks: ``make bench`` (``python -m benchmarks [--quick] [--out DIR] [module ...]``).

Each module prints a table and writes ``<out>/<module>.json``; one run also writes
``<out>/latest.json`` with every module it ran, plus machine and library details.  ``<out>``
is ``benchmarks/results/`` (git-ignored) unless ``--out`` or ``SEALRELAY_BENCH_OUT`` says
otherwise.  Benchmarks are never timed assertions in the test suite.

Adding a module (``client``, ``node``, ``federation``, ``cluster``, ``groups``, ...):

1. write ``benchmarks/<name>.py`` with ``run(quick: bool) -> list[Result]``, timing each
   case with :func:`benchmarks.harness.measure` (set up keys and inputs outside the timed
   callable; pass ``extra={"in_bytes": ...}`` for columns of your own);
2. add ``"<name>"`` to :data:`benchmarks.harness.MODULES`.

``tests/test_benchmarks_smoke.py`` shows a ``--quick`` run into a temporary directory.
"""
