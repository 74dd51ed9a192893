"""The fuzz targets under hypothesis, in ``make test``: each target's corpus inputs with a
byte flipped, a piece cut out or inserted, or cut short. A few dozen derandomised
examples per target (the long runs are ``make fuzz``); anything but the target's own
refusal escaping is a finding, as under atheris."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz import corpus
from tests.fuzz.targets import TARGETS


def mutate(data: bytes, draw: st.DataObject) -> bytes:
    at = draw.draw(st.integers(0, len(data)))
    how = draw.draw(st.sampled_from(["flip", "cut", "insert", "truncate"]))
    if how == "flip" and at < len(data):
        bit = draw.draw(st.integers(0, 7))
        return data[:at] + bytes([data[at] ^ (1 << bit)]) + data[at + 1 :]
    if how == "cut":
        return data[:at] + data[at + draw.draw(st.integers(1, 64)) :]
    if how == "insert":
        return data[:at] + draw.draw(st.binary(min_size=1, max_size=16)) + data[at:]
    return data[:at]


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_mutated_corpus_inputs_raise_only_the_package_error(target: str) -> None:
    inputs = [path.read_bytes() for path in corpus.files(target)]
    run = TARGETS[target].run

    @settings(
        max_examples=25,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(st.sampled_from(inputs), st.data())
    def mutated(data: bytes, draw: st.DataObject) -> None:
        run(mutate(data, draw))

    mutated()
