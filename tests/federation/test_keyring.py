"""The keyring: policy, pins, cache, refresh on an unknown key, TOFU continuity."""

from __future__ import annotations

import dataclasses

import pytest

from federation.errors import KeyDocumentError, PeerUnavailable, PinMismatch, PolicyRefused
from federation.keyring import Keyring
from federation.policy import PeerPolicy
from tests.federation.conftest import DAY_MS, NOW, Agency, make_agency
from trust.limits import MAX_CACHE_MS


class Clock:
    def __init__(self) -> None:
        self.ms = NOW

    def __call__(self) -> float:
        return self.ms / 1000


class Peer:
    """A fetch function serving whatever document is set, counting fetches."""

    def __init__(self, document: bytes) -> None:
        self.document = document
        self.fetches = 0
        self.down = False

    async def __call__(self, domain: str, urls: tuple[str, ...]) -> bytes:
        self.fetches += 1
        if self.down:
            raise PeerUnavailable(f"{domain} is down")
        return self.document


def _policy(**kw: object) -> PeerPolicy:
    """A policy for a.example; the test agencies use the faster xwing suite."""
    return PeerPolicy("a.example", min_suite="xwing", **kw)  # type: ignore[arg-type]


def _keyring(peer: Peer, policy: PeerPolicy, clock: Clock, refusals: list[str]) -> Keyring:
    return Keyring(
        "b.example",
        {policy.domain: policy},
        peer,
        clock=clock,
        on_refusal=lambda domain, code, message: refusals.append(code),
    )


async def test_pinned_peer_is_fetched_once_and_cached(agency_a: Agency) -> None:
    peer, clock, refusals = Peer(agency_a.document()), Clock(), []
    keyring = _keyring(peer, _policy(pins=(agency_a.root_pin,)), clock, refusals)
    first = await keyring.document("a.example")
    assert first.trust == "root"
    await keyring.document("A.EXAMPLE")
    assert peer.fetches == 1
    key = await keyring.verify_key("a.example", agency_a.keys.sig_key_id)
    assert key.public == agency_a.keys.sig_public
    assert refusals == []


async def test_a_document_breaking_the_pin_is_refused_loudly(
    agency_a: Agency, agency_c: Agency
) -> None:
    from wire import encode

    forged = encode(agency_c.keys.sign_document("a.example", ("https://c.example",), NOW, 86400))
    peer, clock, refusals = Peer(forged), Clock(), []
    keyring = _keyring(peer, _policy(pins=(agency_a.root_pin,)), clock, refusals)
    with pytest.raises(PinMismatch):
        await keyring.document("a.example")
    assert refusals == ["fed.pin_mismatch"]
    # control: the genuine document is accepted by the same keyring
    peer.document = agency_a.document()
    assert (await keyring.document("a.example")).trust == "root"


async def test_a_weaker_suite_than_policy_requires_is_refused(agency_a: Agency) -> None:
    peer, clock, refusals = Peer(agency_a.document()), Clock(), []
    strict = PeerPolicy("a.example", pins=(agency_a.root_pin,), min_suite="cnsa2")
    keyring = _keyring(peer, strict, clock, refusals)
    with pytest.raises(PolicyRefused):
        await keyring.document("a.example")
    assert refusals == ["fed.policy"]


async def test_unknown_and_denied_domains_are_refused(agency_a: Agency) -> None:
    peer, clock, refusals = Peer(agency_a.document()), Clock(), []
    denied = _policy(pins=(agency_a.root_pin,), allow=False)
    keyring = _keyring(peer, denied, clock, refusals)
    with pytest.raises(PolicyRefused):
        await keyring.document("a.example")
    with pytest.raises(PolicyRefused):
        await keyring.document("z.example")
    assert peer.fetches == 0


async def test_an_unknown_key_id_refreshes_once_then_waits(agency_a: Agency) -> None:
    peer, clock, refusals = Peer(agency_a.document()), Clock(), []
    keyring = _keyring(peer, _policy(pins=(agency_a.root_pin,)), clock, refusals)
    await keyring.document("a.example")
    rotated = dataclasses.replace(agency_a, keys=agency_a.keys.rotated(NOW, 86400))
    clock.ms += 1000
    peer.document = rotated.document(clock.ms)
    key = await keyring.verify_key("a.example", rotated.keys.sig_key_id)
    assert key.public == rotated.keys.sig_public
    assert peer.fetches == 2
    with pytest.raises(KeyDocumentError):
        await keyring.verify_key("a.example", b"\x01" * 16)  # within the refresh interval
    assert peer.fetches == 2


async def test_the_cache_is_never_trusted_beyond_seven_days(agency_a: Agency) -> None:
    peer, clock, refusals = Peer(agency_a.document()), Clock(), []
    keyring = _keyring(peer, _policy(pins=(agency_a.root_pin,)), clock, refusals)
    await keyring.document("a.example")
    peer.down = True
    clock.ms += DAY_MS  # less than half the life: cached, no fetch
    await keyring.document("a.example")
    assert peer.fetches == 1
    clock.ms = NOW + 4 * DAY_MS  # past half its life: a refresh is tried; the peer is down,
    await keyring.document("a.example")  # so the still-valid cached document is used
    assert peer.fetches == 2
    clock.ms = NOW + MAX_CACHE_MS
    with pytest.raises(PeerUnavailable):
        await keyring.document("a.example")


async def test_tofu_accepts_the_first_document_then_needs_continuity() -> None:
    a = make_agency("a.example", 0)
    peer, clock, refusals = Peer(a.document()), Clock(), []
    keyring = _keyring(peer, _policy(trust="tofu"), clock, refusals)
    assert (await keyring.document("a.example")).trust == "tofu"
    impostor = make_agency("a.example", 1)
    peer.document = impostor.document(NOW + 1000)
    clock.ms += 1000
    with pytest.raises(PinMismatch):
        await keyring.document("a.example", refresh=True)
    rotated = dataclasses.replace(a, keys=a.keys.rotated(clock.ms, 86400))
    peer.document = rotated.document(clock.ms)
    assert (await keyring.document("a.example", refresh=True)).trust == "continuity"


@pytest.mark.parametrize(
    "name",
    [
        "localhost",
        "127.0.0.1",
        "localhost:6379",
        "example.com:8080",
        "10.0.0.1",
        "[::1]",
        "a..example",
        "-a.example",
        "a_b.example",
        "x" * 64 + ".example",
    ],
)
async def test_open_federation_reaches_only_host_names(name: str) -> None:
    """With ``open_federation`` any domain is a peer on first use, and the node fetches
    ``https://{domain}``: an address, a port or a single label must not be one."""
    peer = Peer(make_agency("a.example", 0).document())
    keyring = Keyring("b.example", {}, peer, clock=Clock(), open_federation=True)
    with pytest.raises(PolicyRefused):
        keyring.policy(name)
    with pytest.raises(PolicyRefused):
        await keyring.document(name)
    assert keyring.policy("peer.example").trust == "tofu"
    assert peer.fetches == 0
