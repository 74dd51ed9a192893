"""A real node process accepts a peer domain's media link (issue 17; node.calls.links in
``node.server``): bravo runs as a ``sealrelay node serve`` process with ``udp_listen``;
this test is alpha (its keys, certified by its agency root as ``node.devfed`` made them,
its key document served where bravo's configuration says alpha lives) and bridges a leg
over a QUIC link. Bravo checks alpha's link proof against alpha's pinned document, takes
the join (a leg it never allocated: ``call.no_leg``, the only join a test can make before
the client protocol allocates legs), and counts the link on ``/metrics``. A proof by a
key alpha's document does not list is refused (``fed.auth``)."""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Final

import httpx
import pytest
import trio

from federation.keyring import Keyring
from federation.policy import PeerPolicy
from node.calls import CallRelay
from node.calls.linkauth import LinkSigner
from node.calls.links import MediaLinks
from node.calls.shell import CallService
from node.errors import CALL_NO_LEG, CALL_UNREACHABLE, FED_AUTH, NodeError
from node.keys import ServerKeys, generate
from suites import get_suite
from tests.integration.fedharness import (
    DOCUMENT_PATH,
    LOOPBACK,
    DocumentServer,
    LocalFederation,
    metric,
)
from wire import encode
from wire.calls import LegRef

A: Final = "alpha.test"
B: Final = "bravo.test"
STEP_TIMEOUT: Final = 20.0
DOCUMENT_LIFETIME: Final = 86_400


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalFederation]:
    base = tmp_path_factory.mktemp("links") / "fed"
    fed = LocalFederation(base, [A, B], extra=f'udp_listen = "{LOOPBACK}:0"\n')
    try:
        fed.start(B)
        yield fed
    finally:
        fed.close()


def _keyring(fed: LocalFederation) -> Keyring:
    """Alpha's view of bravo: the document bravo's node serves (the trust mode on this
    side does not matter to what is tested: bravo's checks of alpha)."""

    async def fetch(domain: str, urls: tuple[str, ...]) -> bytes:
        async with httpx.AsyncClient(timeout=STEP_TIMEOUT) as http:
            response = await http.get(urls[0] + DOCUMENT_PATH)
        response.raise_for_status()
        return response.content

    policy = PeerPolicy(B, trust="tofu", endpoints=(fed.url(B),))
    return Keyring(A, {B: policy}, fetch, clock=time.time)


@asynccontextmanager
async def alpha(
    fed: LocalFederation, signer: LinkSigner | None = None
) -> AsyncIterator[MediaLinks]:
    """Alpha's call relay and media links, its document served at its endpoint."""
    keys: ServerKeys = fed.keys(A)
    service = CallService(CallRelay(secrets.token_bytes), keys.quic)
    async with trio.open_nursery() as nursery:
        _, port = await nursery.start(service.serve, LOOPBACK, 0)
        now = int(time.time() * 1000)
        document = keys.sign_document(A, (fed.url(A),), now, DOCUMENT_LIFETIME, port)
        server = DocumentServer(fed.setups[A].port)
        server.document = encode(document)
        links = MediaLinks(
            service, A, _keyring(fed), lambda: signer or keys, random=secrets.token_bytes
        )
        service.accept_links(links)
        await nursery.start(links.run)
        with server.running():
            yield links
        nursery.cancel_scope.cancel()


async def test_bravo_accepts_alphas_proved_link_and_answers_its_join(
    fed: LocalFederation,
) -> None:
    async with alpha(fed) as links:
        leg = links.core.allocate("alice", int(time.time() * 1000))
        with pytest.raises(NodeError) as refused, trio.fail_after(STEP_TIMEOUT):
            await links.bridge(leg.leg_id, LegRef(B, secrets.token_bytes(16)))
        assert refused.value.code == CALL_NO_LEG  # bravo's answer over the link
        assert links.links_up == 1
        assert links.counters.connects == {"outbound": 1}
        text = await fed.metrics(B)
        assert metric(text, "sealrelay_call_links") == 1
        assert metric(text, "sealrelay_call_link_connects_total", direction="inbound") == 1
        assert metric(text, "sealrelay_call_remote_legs") == 0
    with trio.fail_after(STEP_TIMEOUT):  # alpha went: bravo's end of the link closes
        while metric(await fed.metrics(B), "sealrelay_call_links") != 0:  # noqa: ASYNC110
            await trio.sleep(0.1)


async def test_bravo_refuses_a_proof_by_a_key_alphas_document_does_not_list(
    fed: LocalFederation,
) -> None:
    before = metric(await fed.metrics(B), "sealrelay_call_link_failures_total")
    async with alpha(fed, signer=generate(get_suite("cnsa2"))) as links:
        leg = links.core.allocate("alice", int(time.time() * 1000))
        with pytest.raises(NodeError) as refused, trio.fail_after(STEP_TIMEOUT):
            await links.bridge(leg.leg_id, LegRef(B, secrets.token_bytes(16)))
        assert refused.value.code == CALL_UNREACHABLE
        assert links.links_up == 0
    text = await fed.metrics(B)
    refusals = metric(text, "sealrelay_call_link_failures_total", reason=f"inbound_{FED_AUTH}")
    assert refusals == 1
    assert metric(text, "sealrelay_call_link_failures_total") == before + 1
