"""Key documents to a client and to a node: every case is refused with its stable code by
the client's document checks (``client.serverkeys``, as a refresh of a pinned document)
and by the node's federation keyring (``federation.keyring``, its fetch replaced by the
bytes of the case), and what each had pinned or cached is unchanged."""

from __future__ import annotations

import pytest
import trio

from client.errors import ClientError
from client.serverkeys import PinnedKeyring, accept_refresh, verify_document
from federation.errors import FederationError
from federation.keyring import Keyring
from federation.policy import PeerPolicy
from tests.hostile import documents
from tests.hostile.documents import DOMAIN, NOW_MS, DocCase, DocWorld, make_doc_world
from wire import encode

SUITES = ("cnsa2", "xwing")


@pytest.fixture(scope="module", params=SUITES)
def world(request: pytest.FixtureRequest) -> DocWorld:
    return make_doc_world(request.param)


@pytest.mark.parametrize("case", documents.CLIENT_CASES, ids=str)
def test_key_document_is_refused_by_a_client(world: DocWorld, case: DocCase) -> None:
    data = case.build(world)
    keyring = PinnedKeyring()
    pinned = verify_document(world.genuine, DOMAIN, NOW_MS)
    keyring.pin(pinned)
    with pytest.raises(ClientError) as refused:
        keyring.pin(accept_refresh(pinned, data, DOMAIN, NOW_MS))
    assert refused.value.code == case.code, f"{case.name}: {refused.value!r}"
    assert keyring.document(DOMAIN) is pinned
    keyring.pin(accept_refresh(pinned, world.genuine, DOMAIN, NOW_MS))  # still refreshes


class Served:
    """The node's fetch of a key document: whatever the test serves now."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.refusals: list[str] = []

    async def fetch(self, domain: str, urls: tuple[str, ...]) -> bytes:
        await trio.lowlevel.checkpoint()
        return self.data

    def refused(self, domain: str, code: str, message: str) -> None:
        self.refusals.append(code)


@pytest.mark.parametrize("case", documents.NODE_CASES, ids=str)
async def test_key_document_is_refused_by_a_node(world: DocWorld, case: DocCase) -> None:
    served = Served(world.genuine)
    policy = PeerPolicy(DOMAIN, pins=(world.pin,), min_suite=world.suite.name)
    keyring = Keyring(
        "alpha.example",
        {DOMAIN: policy},
        served.fetch,
        clock=lambda: NOW_MS / 1000,
        on_refusal=served.refused,
    )
    held = await keyring.document(DOMAIN)
    served.data = case.build(world)
    with pytest.raises(FederationError) as refused:
        await keyring.document(DOMAIN, refresh=True)
    assert refused.value.code == case.code, f"{case.name}: {refused.value!r}"
    assert served.refusals == [case.code]  # logged loudly and counted by the node
    assert await keyring.document(DOMAIN) is held
    assert encode(held.doc) == world.genuine
