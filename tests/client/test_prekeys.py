"""One-time prekeys are consumed only by a first message that decrypted, and exactly once.

Anyone can seal an envelope to a device and name its one-time prekeys in a prekey message;
if a message that then fails to decrypt consumed them, a stranger could burn a device's whole
supply. Each test pairs the refusal with the genuine message that does consume the keys.
"""

from __future__ import annotations

import dataclasses

import pytest

from client.errors import DecryptionFailed
from client.formats import PrekeyMessage, RatchetMessage
from client.session import Device
from tests.client.envelopes import SUITES, flip, open_envelope, reseal
from tests.client.pairs import pair


def _pool_ids(device: Device) -> tuple[set[int], set[int]]:
    return set(device.pool.one_time_dh), set(device.pool.one_time_kem)


def _forgeries(pm: PrekeyMessage) -> dict[str, PrekeyMessage]:
    """Prekey messages naming the same one-time keys that cannot decrypt."""
    return {
        "ratchet ciphertext": dataclasses.replace(
            pm, m=RatchetMessage(h=pm.m.h, c=flip(pm.m.c, 3))
        ),
        "kem ciphertext": dataclasses.replace(pm, kc=flip(pm.kc, 7)),
        "empty ratchet ciphertext": dataclasses.replace(pm, m=RatchetMessage(h=pm.m.h, c=b"")),
    }


@pytest.mark.parametrize("suite_name", SUITES)
def test_forged_prekey_message_does_not_consume_one_time_prekeys(suite_name: str) -> None:
    alice, bob, _ = pair(suite_name)
    body = alice.encrypt(bob.address, bob.device_id, b"first")
    opened = open_envelope(bob, body)
    pm = opened.prekey
    assert pm is not None
    assert pm.opk is not None
    assert not pm.lr
    before = _pool_ids(bob)
    assert pm.opk in before[0]
    assert pm.kem in before[1]
    for name, forged in _forgeries(pm).items():
        with pytest.raises(DecryptionFailed):
            bob.decrypt(reseal(bob, forged, opened.content.s))
        assert _pool_ids(bob) == before, name
        assert bob.sessions == {}, name
        assert bob.pool.base_keys_seen == set(), name
    # The genuine message still finds its keys, and consumes exactly those two.
    assert bob.decrypt(body).plaintext == b"first"
    dh_ids, kem_ids = _pool_ids(bob)
    assert dh_ids == before[0] - {pm.opk}
    assert kem_ids == before[1] - {pm.kem}


@pytest.mark.parametrize("suite_name", SUITES)
def test_one_time_prekeys_are_consumed_exactly_once(suite_name: str) -> None:
    alice, bob, domain = pair(suite_name)
    bundle = bob.pool.bundle(bob.address, 1)  # the one Alice used: the lowest ids
    first = alice.encrypt(bob.address, bob.device_id, b"one")
    second = alice.encrypt(bob.address, bob.device_id, b"two")  # same PQXDH parameters
    pm = open_envelope(bob, first).prekey
    assert pm is not None
    assert bundle.one_time is not None
    assert (pm.opk, pm.kem) == (bundle.one_time.id, bundle.kem_prekey.id)
    before = _pool_ids(bob)
    assert bob.decrypt(first).plaintext == b"one"
    after = _pool_ids(bob)
    assert after == (before[0] - {pm.opk}, before[1] - {pm.kem})
    # A second prekey message of the same session goes to it and consumes nothing more.
    assert bob.decrypt(second).plaintext == b"two"
    assert _pool_ids(bob) == after
    # Another initiator served the same (spent) bundle is refused and consumes nothing.
    carol = domain.device("carol", bob.keyring)
    carol.start_session(bundle)
    with pytest.raises(DecryptionFailed):
        bob.decrypt(carol.encrypt(bob.address, 1, b"reuse"))
    assert _pool_ids(bob) == after
    assert not bob.has_session(carol.address, 1)
    # Control: the next bundle works for Carol and consumes its own keys.
    carol.start_session(bob.pool.bundle(bob.address, 1))
    assert bob.decrypt(carol.encrypt(bob.address, 1, b"fresh")).plaintext == b"fresh"
    assert len(_pool_ids(bob)[0]) == len(after[0]) - 1
