"""Coverage-guided fuzzing of every parser at a trust boundary (atheris, libFuzzer).

    python -m tests.fuzz list                         the targets and their entry points
    python -m tests.fuzz run TARGET --seconds 60      fuzz one target; ``all`` for each in turn
    python -m tests.fuzz run all --seconds 60 --keep  ...and keep new interesting inputs
    python -m tests.fuzz seeds                        (re)write the seed inputs
    python -m tests.fuzz replay [TARGET]              feed the corpus to the targets, no fuzzer

``make fuzz`` runs every target for ``FUZZ_SECONDS`` (default 60) and prints a table of
executions, executions/s, coverage and findings. ``make test`` replays the corpus
(``tests/fuzz/test_corpus.py``). Targets: ``tests.fuzz.targets``; what they must keep:
``tests.fuzz.targets.base``; the corpus: ``tests/fuzz/corpus/TARGET/``.

This package's ``__init__`` imports nothing of the product: the fuzzing worker
(``tests.fuzz.worker``) must import the product inside ``atheris.instrument_imports``.
"""
