"""The node-boundary corpus: every case sent to a real node over a real socket is refused
with its stable code, the node stays up (and the connection, where the protocol keeps it),
and its store and envelope counters are exactly as before. A federation request refused
before its signature was accepted leaves its nonce unspent; a transaction whose items are
refused may add only the record of its answer (``fed_txns``, its de-duplication)."""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from node.fed import HELLO_PATH
from node.rootkeys import load_root
from tests.hostile import documents, node_fed, node_frames
from tests.hostile.documents import DocCase, DocWorld, make_doc_world
from tests.hostile.node_fed import FedCase, FedInput, Signing
from tests.hostile.node_frames import FrameCase, FrameInput
from tests.hostile.nodeworld import (
    ALPHA,
    BRAVO,
    DELTA,
    ONE_TIME_KEYS,
    XRAY,
    NodeState,
    NodeWorld,
    declare,
    healthy,
    metrics_text,
    node_state,
    register,
    start_world,
)
from tests.hostile.table import ITEM_CODES
from tests.integration.fedharness import SignedRequest, metric
from tests.integration.rawclient import Conn, connect
from wire import decode
from wire.federation import TransactionResult
from wire.relay import Error, GetPrekeyStatus, Ping, Pong, PrekeyStatus

REJECTED = "sealrelay_frames_rejected_total"
FED_REFUSED = "sealrelay_federation_refused_total"
TXN_RECORD = "fed_txns"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeWorld]:
    yield from start_world(tmp_path_factory.mktemp("hostile"))


# --- client frames ------------------------------------------------------------------------------


async def _attempt(conn: Conn, given: FrameInput) -> object:
    if given.login is not None:
        await conn.login(given.login.account)
    for make in given.before:
        await conn.send_raw(make(conn.hello))
        await conn.reply()
    await conn.send_raw(given.make(conn.hello))
    return await conn.reply()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=15) as client:
        yield client


@pytest.mark.parametrize("case", node_frames.CASES, ids=str)
async def test_client_frame_is_refused(
    world: NodeWorld, http: httpx.AsyncClient, case: FrameCase
) -> None:
    given = case.build(world)
    target = world.target(given.domain)
    before = await node_state(http, target)
    rejected = metric(await metrics_text(http, target.url), REJECTED, code=case.code)
    async with connect(target.url) as conn:
        answer = await _attempt(conn, given)
        assert isinstance(answer, Error), f"{case.name}: taken: {answer}"
        assert answer.code == case.code, f"{case.name}: {answer}"
        assert isinstance(await conn.call(Ping(77)), Pong)  # the connection lives on
    assert await healthy(http, target.url)
    assert await node_state(http, target) == before, case.name
    assert metric(await metrics_text(http, target.url), REJECTED, code=case.code) > rejected


# --- federation requests --------------------------------------------------------------------------


async def _send(http: httpx.AsyncClient, url: str, given: FedInput) -> tuple[int, bytes]:
    r = given.request
    if given.declared is not None:
        return await declare(url, r, given.declared)
    response = await http.request(r.method, url + r.path, content=r.body, headers=r.headers)
    return response.status_code, response.content


def _code(status: int, content: bytes) -> str:
    """The refusal's code: the problem's, or the one code of every item of a transaction."""
    if status != 200:
        return str(json.loads(content)["code"])
    results = decode(content, TransactionResult).results
    codes = {ITEM_CODES[r] for r in results}
    assert len(codes) == 1, codes
    return codes.pop()


def _changed(before: NodeState, after: NodeState) -> set[str]:
    changed = {t for t in before.tables if before.tables[t] != after.tables[t]}
    if before.counters != after.counters:
        changed.add("counters")
    return changed


@pytest.mark.parametrize("case", node_fed.CASES, ids=str)
async def test_federation_request_is_refused(
    world: NodeWorld, http: httpx.AsyncClient, case: FedCase
) -> None:
    given: FedInput = case.build(world)
    target = world.target(ALPHA)
    for request in given.before:
        assert (await _send(http, target.url, FedInput(request)))[0] == 200
    before = await node_state(http, target)
    refused = metric(await metrics_text(http, target.url), FED_REFUSED, origin=BRAVO)
    status, content = await _send(http, target.url, given)
    assert _code(status, content) == case.code, f"{case.name}: {content[:200]!r}"
    assert await healthy(http, target.url)
    after = await node_state(http, target)
    if case.code.startswith("item."):
        assert _changed(before, after) <= {TXN_RECORD}, case.name
    else:
        assert _changed(before, after) == set(), case.name
    if given.counted:  # logged and counted, by origin
        count = metric(await metrics_text(http, target.url), FED_REFUSED, origin=BRAVO)
        assert count == refused + 1, case.name
    if given.unspent is not None:
        check = FedInput(node_fed.hello(world, given.unspent))
        assert (await _send(http, target.url, check))[0] == 200, "the nonce was spent"


# --- key documents -------------------------------------------------------------------------------

KEY_REFUSALS = "sealrelay_federation_key_refusals_total"
NOT_AT_A_NODE = frozenset({"document-rolled-back"})
"""Needs a newer document cached first, and a refresh the keyring allows once per 10 s:
covered by the keyring's own run of the table (test_documents.py)."""


@pytest.fixture(scope="module")
def delta_docs(world: NodeWorld) -> DocWorld:
    fed = world.fed
    root = load_root(fed.root_dir(DELTA))
    return make_doc_world(fed.suite, fed.keys(DELTA), root, DELTA, node_fed.now_ms())


def _delta_hello(delta_docs: DocWorld) -> SignedRequest:
    signing = Signing(delta_docs.keys, origin=DELTA)
    return node_fed.sign(signing, "POST", HELLO_PATH, b"", secrets.token_bytes(16))


@pytest.mark.parametrize(
    "case", [c for c in documents.NODE_CASES if c.name not in NOT_AT_A_NODE], ids=str
)
async def test_key_document_is_refused_by_a_node(
    world: NodeWorld, delta_docs: DocWorld, http: httpx.AsyncClient, case: DocCase
) -> None:
    """alpha fetches delta's document to check a request signed by delta: the hostile
    document is refused (and so the request), counted, and nothing of it is kept."""
    target = world.target(ALPHA)
    world.delta.document = case.build(delta_docs)
    before = await node_state(http, target)
    refusals = metric(await metrics_text(http, target.url), KEY_REFUSALS, domain=DELTA)
    request = _delta_hello(delta_docs)
    status, content = await _send(http, target.url, FedInput(request))
    assert (status, _code(status, content)) == (401, case.code), case.name
    assert await node_state(http, target) == before, case.name
    assert metric(await metrics_text(http, target.url), KEY_REFUSALS, domain=DELTA) == refusals + 1


async def test_after_the_hostile_documents_the_genuine_one_is_taken(
    world: NodeWorld, delta_docs: DocWorld, http: httpx.AsyncClient
) -> None:
    world.delta.document = delta_docs.genuine
    request = _delta_hello(delta_docs)
    status, _ = await _send(http, world.target(ALPHA).url, FedInput(request))
    assert status == 200


# --- the state the refusals left ------------------------------------------------------------------


@pytest.mark.parametrize("domain", [ALPHA, XRAY])
async def test_every_refused_registration_left_the_code_unspent(
    world: NodeWorld, domain: str
) -> None:
    """Runs after the cases (pytest keeps the file's order): the code they all tried to
    register ``newcomer`` with still enrolls it once."""
    target = world.target(domain)
    member = await register(target.url, "newcomer", target.newcomer)
    assert member.account.address == f"newcomer@{domain}"


@pytest.mark.parametrize("domain", [ALPHA, XRAY])
async def test_the_victim_holds_what_it_had_before_the_cases(world: NodeWorld, domain: str) -> None:
    """As its own device sees it over the protocol: no envelope waiting, and the one-time
    prekeys it published at registration, none consumed and none added."""
    target = world.target(domain)
    async with connect(target.url) as conn:
        answer = await conn.login(target.victim.account)
        status = await conn.call(GetPrekeyStatus(5))
    assert answer.pending == 0
    assert isinstance(status, PrekeyStatus)
    assert (status.one_time, status.kem_one_time) == (ONE_TIME_KEYS, ONE_TIME_KEYS)
