"""The client-boundary corpus: every case given to a device's real parsing and
verification code is refused with its stable code, leaves the device's saved state equal,
and the device still takes a valid input afterwards."""

from __future__ import annotations

import pytest

from client.errors import ClientError
from tests.hostile import client_bundles, client_envelopes
from tests.hostile.client_bundles import BundleCase
from tests.hostile.client_envelopes import EnvelopeCase
from tests.hostile.client_world import ClientWorld, device_state, make_world

SUITES = ("cnsa2", "xwing")


@pytest.fixture(scope="module", params=SUITES)
def world(request: pytest.FixtureRequest) -> ClientWorld:
    return make_world(request.param)


def _still_takes_a_valid_envelope(w: ClientWorld) -> None:
    sender = w.fresh(w.home, "alice-after")
    received = w.bob.decrypt(sender.encrypt(w.bob.address, w.bob.device_id, b"still here"))
    assert received.plaintext == b"still here"


@pytest.mark.parametrize("case", client_envelopes.CASES, ids=str)
def test_envelope_is_refused(world: ClientWorld, case: EnvelopeCase) -> None:
    given = case.build(world)
    before = device_state(world.bob)
    with pytest.raises(ClientError) as refused:
        world.bob.decrypt(given.body, sent_ms=given.sent_ms)
    assert refused.value.code == case.code, f"{case.name}: {refused.value!r}"
    assert device_state(world.bob) == before, case.name
    _still_takes_a_valid_envelope(world)


@pytest.mark.parametrize("case", client_bundles.CASES, ids=str)
def test_prekey_bundle_is_refused(world: ClientWorld, case: BundleCase) -> None:
    bundle = case.build(world)
    before = device_state(world.alice)
    with pytest.raises(ClientError) as refused:
        world.alice.start_session(bundle)
    assert refused.value.code == case.code, f"{case.name}: {refused.value!r}"
    assert device_state(world.alice) == before, case.name
    world.alice.start_session(world.bob_bundle())  # a valid bundle still makes a session
