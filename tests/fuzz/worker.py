"""One fuzzing process: ``python -m tests.fuzz.worker TARGET [libFuzzer flags] [dirs]``.

The product packages are imported inside ``atheris.instrument_imports`` so that their
branches guide the fuzzer. ``SEALRELAY_FUZZ_ENGINE=hypothesis`` drives the target through
hypothesis's ``fuzz_one_input`` instead (atheris's bytes become a hypothesis choice
sequence for ``st.binary``: hypothesis then keeps its own database of failures).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

import atheris

PRODUCT = ("wire", "suites", "trust", "transport", "client", "federation", "node")
INSTRUMENTED = (*PRODUCT, "h11")
"""The product, and the pure-Python HTTP parser the node's gateway reads request heads
with (msgpack and the crypto libraries are C: their branches are not seen)."""


def _hypothesis(run: Callable[[bytes], None], max_len: int) -> Callable[[bytes], object]:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    @settings(deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(st.binary(max_size=max_len))
    def one(data: bytes) -> None:
        run(data)

    fuzz: Callable[[bytes], object] = one.hypothesis.fuzz_one_input  # type: ignore[attr-defined]
    return fuzz


def main() -> None:
    name, flags = sys.argv[1], sys.argv[2:]
    with atheris.instrument_imports(include=INSTRUMENTED):
        from tests.fuzz.targets import TARGETS
        from tests.fuzz.world import world
    target = TARGETS[name]
    world()  # built before the first input: its cost is not an input's
    run: Callable[[bytes], object] = target.run
    if os.environ.get("SEALRELAY_FUZZ_ENGINE") == "hypothesis":
        run = _hypothesis(target.run, target.max_len)
    # libFuzzer runs argv[0] through the shell for -merge: make it this very command
    me = f"{sys.executable} -m tests.fuzz.worker {name}"
    atheris.Setup([me, *flags], run)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
