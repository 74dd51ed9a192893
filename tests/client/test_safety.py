"""Safety numbers (client/safety.py): symmetry, sensitivity, format, and pinned values."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest

from client.safety import format_safety_number, identity_fingerprint, safety_number
from suites import SUITE_NAMES, get_suite, labels
from wire import encode
from wire.e2e import IdentityKey, SafetyNumberInput

ALICE = "alice@example.org"
BOB = "bob@example.net"


def fixed_identity(suite_name: str, seed: int) -> IdentityKey:
    """An identity key from fixed seeds. ``dh_sig`` is a placeholder of the right length:
    the hybrid signatures are randomised, and a safety number never checks it (callers
    verify identities before they get this far), it only hashes its encoding."""
    suite = get_suite(suite_name)
    sig_key = suite.sig.private_key_from_bytes(bytes([seed]) * suite.sig.private_len)
    dh_key = suite.dh.private_key_from_bytes(bytes([seed]) * suite.dh.private_len)
    return IdentityKey(
        suite=suite.suite_id,
        sig=suite.sig.public_key_bytes(sig_key),
        dh=suite.dh.public_key_bytes(dh_key),
        dh_sig=bytes([seed]) * suite.sig.signature_len,
    )


def reference_half(identity: IdentityKey, address: str) -> str:
    """docs/protocol.md section 7, written out again independently of client/safety.py."""
    version = int.from_bytes(labels.SAFETY_NUMBER_VERSION, "big")
    h = encode(SafetyNumberInput(version=version, identity=identity, address=address))
    for _ in range(5200):
        h = hashlib.sha512(h + encode(identity)).digest()
    chunks = (int.from_bytes(h[i : i + 5], "big") % 100000 for i in range(0, 30, 5))
    return "".join(f"{c:05d}" for c in chunks)


def suite_name_of(identity: IdentityKey) -> str:
    return next(n for n in SUITE_NAMES if get_suite(n).suite_id == identity.suite)


@pytest.fixture(params=SUITE_NAMES)
def keys(request: pytest.FixtureRequest) -> tuple[IdentityKey, IdentityKey]:
    return fixed_identity(request.param, 1), fixed_identity(request.param, 2)


def test_same_on_both_sides_and_60_digits(keys: tuple[IdentityKey, IdentityKey]) -> None:
    a, b = keys
    number = safety_number(a, ALICE, b, BOB)
    assert number == safety_number(b, BOB, a, ALICE)
    assert len(number) == 60
    assert number.isdigit()


def test_matches_the_documented_construction(keys: tuple[IdentityKey, IdentityKey]) -> None:
    a, b = keys
    halves = sorted([reference_half(a, ALICE), reference_half(b, BOB)])
    assert safety_number(a, ALICE, b, BOB) == "".join(halves)


def test_changes_with_either_identity_or_address(keys: tuple[IdentityKey, IdentityKey]) -> None:
    a, b = keys
    base = safety_number(a, ALICE, b, BOB)
    other = fixed_identity(suite_name_of(a), 3)
    resigned = dataclasses.replace(b, dh_sig=bytes(len(b.dh_sig)))
    variants = [
        safety_number(other, ALICE, b, BOB),
        safety_number(a, ALICE, other, BOB),
        safety_number(a, ALICE, resigned, BOB),
        safety_number(a, "mallory@example.org", b, BOB),
        safety_number(a, ALICE, b, "bob@example.com"),
        safety_number(a, BOB, b, ALICE),  # the keys swapped between the addresses
    ]
    assert all(v != base for v in variants)
    assert len(set(variants)) == len(variants)


# Computed once with client/safety.py and recorded here: these pin the format (chain
# start, iteration count, chunking, ordering). If one changes, every user's safety numbers
# change, so a change here must be deliberate and versioned (SAFETY_NUMBER_VERSION).
PINNED = {
    "xwing": "335940524487177031106959856120540482289763095418451503659408",
    "cnsa2": "326866199286956818328417249507920647175516309045211822677091",
}


@pytest.mark.parametrize("suite_name", SUITE_NAMES)
def test_pinned_value(suite_name: str) -> None:
    a, b = fixed_identity(suite_name, 1), fixed_identity(suite_name, 2)
    assert safety_number(a, ALICE, b, BOB) == PINNED[suite_name]


def test_format() -> None:
    number = "".join(str(i % 10) for i in range(60))
    assert format_safety_number(number) == (
        "01234 56789 01234 56789\n01234 56789 01234 56789\n01234 56789 01234 56789"
    )


@pytest.mark.parametrize("bad", ["", "1" * 59, "1" * 61, "1" * 59 + "a", "\u0661" * 60])
def test_format_rejects_non_numbers(bad: str) -> None:
    with pytest.raises(ValueError, match="60 digits"):
        format_safety_number(bad)


def test_identity_fingerprint() -> None:
    a, b = fixed_identity("xwing", 1), fixed_identity("xwing", 2)
    assert identity_fingerprint(a) == hashlib.sha256(encode(a)).digest()
    assert len(identity_fingerprint(a)) == 32
    assert identity_fingerprint(a) != identity_fingerprint(b)
    assert identity_fingerprint(a) == identity_fingerprint(fixed_identity("xwing", 1))
