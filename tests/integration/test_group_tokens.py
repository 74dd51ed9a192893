"""First contact at group scale and group delivery tokens on three real nodes with their
default limits (issue 20; docs/security.md "Groups: tokens and first contact").

The members speak the client protocol directly (``rawclient``: bodies are opaque to the
nodes, so random bytes stand in for sealed envelopes, and many members share this
process). One admin on alpha, who has written to none of them, forms a group of members
spread over alpha, bravo and charlie:

- the welcomes go as introductions: one ``IntroduceMany`` upload per frame's worth of
  alpha members (each upload is one of the admin's ``introductions_per_minute``), and one
  routing layer per member of the other domains (``Forward``; the destination checks
  the member's consent and its per-recipient limit);
- each welcome carries the member's group token (chosen by the admin, as the group state
  carries it); the member registers it with its own node (``SetGroupToken``);
- then a member of bravo sends one group message with the members' group tokens: one
  ``SendShared`` for its home domain and one fan-out routing layer per other domain. Every
  other member must hold it within :data:`WITHIN` seconds of the first welcome's upload.

No limit is raised. Then a member is removed: every remaining member rotates its group
token (registers a new one and revokes the old one in one ``SetGroupToken``). The removed
member's copies of the old tokens are refused with ``send.bad_token``: at once on its own
node, and at the destination node for a routing layer (counted in
``sealrelay_federation_refused_total{code="send.bad_token"}``), and nothing reaches the
members; the remaining members still reach each other with the new tokens.

``make test`` runs :data:`MEMBERS` members (about 20 s, most of it enrolling them);
``SEALRELAY_GROUPS_FULL=1`` (``make groups-full``) the issue's 200 (about 30 s; the group
was usable 3.4 s after the first welcome on a loaded two-core machine).

Here the test plays the clients' part on the wire; ``test_group_tokens_client.py`` does
the same with the client library (``client/groupnet``).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Final

import pytest
import trio

from client.routing import seal_for_domain
from node import accounts as node_accounts
from node.store import open_store
from suites import labels
from tests.integration import rawclient
from tests.integration.fedharness import LocalFederation, metric
from tests.integration.rawclient import Account, Conn, connect
from wire.relay import (
    MAX_INTRODUCTIONS,
    Envelope,
    Error,
    Forward,
    Introduce,
    IntroduceMany,
    Ok,
    Send,
    SendShared,
    Sent,
    SentBatch,
    SentShared,
    SetGroupToken,
    SetIntroductions,
    SharedRecipient,
)
from wire.server import ServerKeyDocument

A: Final = "alpha.test"
B: Final = "bravo.test"
C: Final = "charlie.test"
DOMAINS: Final = (A, B, C)
FULL: Final = os.environ.get("SEALRELAY_GROUPS_FULL") == "1"
MEMBERS: Final = 200 if FULL else 30
"""Members besides the admin, spread over the three domains."""
WITHIN: Final = 60.0
WELCOME_BYTES: Final = 16 * 1024
"""A welcome's sealed size (a 200-member welcome's group state is tens of kilobytes; its
padded envelope is what the node stores)."""
FRAME_BUDGET: Final = 1_000_000
"""Bytes of introductions per IntroduceMany (under the default max_frame_bytes)."""
TOKEN_BYTES: Final = 16
TTL: Final = 3600
REFUSED: Final = "sealrelay_federation_refused_total"
POLL: Final = 0.2


def verifier(token: bytes) -> bytes:
    return hashlib.sha256(labels.DELIVERY_TOKEN_HASH_INFO + token).digest()


@dataclass
class Member:
    account: Account
    conn: Conn
    token: bytes = b""
    """The group token it registered (what the group state carries for it)."""
    got: list[Envelope] = field(default_factory=list)

    @property
    def domain(self) -> str:
        return self.account.address.rpartition("@")[2]


@dataclass
class World:
    fed: LocalFederation
    accounts: list[Account]  # the admin first


async def _invites(fed: LocalFederation, names: list[tuple[str, str]]) -> dict[str, str]:
    """Enrollment codes written straight into each node's store (the node runs; WAL)."""
    codes: dict[str, str] = {}
    for domain in DOMAINS:
        store = await open_store("sqlite", str(fed.setups[domain].data_dir))
        try:
            for name, d in names:
                if d == domain:
                    raw = secrets.token_bytes(node_accounts.CODE_BYTES)
                    expires = int(time.time() * 1000) + 3_600_000
                    await store.add_invite(node_accounts.code_hash(raw), name, expires)
                    codes[name] = node_accounts.format_code(raw)
        finally:
            await store.aclose()
    return codes


async def _register_all(fed: LocalFederation) -> list[Account]:
    names = [("admin", A)] + [(f"g{i:03d}", DOMAINS[i % 3]) for i in range(MEMBERS)]
    codes = await _invites(fed, names)
    found: dict[str, Account] = {}
    limit = trio.CapacityLimiter(8)

    async def one(name: str, domain: str) -> None:
        async with limit:
            found[name] = await rawclient.register(fed.url(domain), name, codes[name])

    async with trio.open_nursery() as nursery:
        for name, domain in names:
            nursery.start_soon(one, name, domain)
    return [found[name] for name, _ in names]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    fed = LocalFederation(tmp_path_factory.mktemp("grouptokens") / "fed", list(DOMAINS))
    try:
        fed.start()
        yield World(fed, trio.run(_register_all, fed))
        for domain in DOMAINS:
            assert fed.nodes[domain].running(), f"{domain}'s node died"
    finally:
        fed.close()


@asynccontextmanager
async def online(world: World) -> AsyncIterator[list[Member]]:
    """Every account logged in on its own connection, introductions turned on."""
    async with AsyncExitStack() as stack:
        members = []
        for account in world.accounts:
            domain = account.address.rpartition("@")[2]
            conn = await stack.enter_async_context(connect(world.fed.url(domain)))
            await conn.login(account)
            assert await conn.call(SetIntroductions(conn.new_id(), True)) == Ok(conn.next_id)
            await conn.backlog()
            members.append(Member(account, conn))
        yield members


def _chunks(intros: list[Introduce]) -> list[tuple[Introduce, ...]]:
    """``intros`` cut into IntroduceMany-sized pieces (count and frame bytes)."""
    out: list[tuple[Introduce, ...]] = []
    piece: list[Introduce] = []
    size = 0
    for intro in intros:
        if piece and (len(piece) == MAX_INTRODUCTIONS or size + len(intro.body) > FRAME_BUDGET):
            out.append(tuple(piece))
            piece, size = [], 0
        piece.append(intro)
        size += len(intro.body) + 64
    return [*out, tuple(piece)] if piece else out


def _welcome(token: bytes) -> bytes:
    """A stand-in for a sealed welcome carrying the member's group token (the node never
    opens bodies; the member reads its token from the first bytes)."""
    return token + os.urandom(WELCOME_BYTES - len(token))


async def _create(admin: Member, members: list[Member], docs: dict[str, ServerKeyDocument]) -> None:
    """The admin's welcomes: IntroduceMany at home, a routing layer per remote member."""
    conn = admin.conn
    home = [m for m in members if m.domain == admin.domain]
    intros = [
        Introduce(conn.new_id(), m.account.mailbox, os.urandom(16), TTL, _welcome(m.token))
        for m in home
    ]
    for piece in _chunks(intros):
        answer = await conn.call(IntroduceMany(conn.new_id(), piece))
        assert isinstance(answer, SentBatch), answer
        assert all(isinstance(r, Sent) for r in answer.results), answer.results
    now = int(time.time() * 1000)
    for m in members:
        if m.domain == admin.domain:
            continue
        eid = os.urandom(16)
        layer = seal_for_domain(
            docs[m.domain], now, mailbox=m.account.mailbox, eid=eid, ttl=TTL,
            body=_welcome(m.token),
        )  # fmt: skip
        sent = await conn.call(Forward(conn.new_id(), m.domain, eid, TTL, layer))
        assert isinstance(sent, Sent), sent


async def _join(member: Member) -> None:
    """Wait for the welcome, take the group token from it and register it."""
    (welcome,) = await member.conn.wait_delivered(1, WITHIN)
    assert welcome.sender is None or welcome.sender.startswith("admin@")
    assert welcome.body[:TOKEN_BYTES] == member.token
    await member.conn.ack([welcome])
    conn = member.conn
    answer = await conn.call(SetGroupToken(conn.new_id(), verifier(member.token), None))
    assert answer == Ok(conn.next_id), answer


async def _group_send(
    sender: Member, members: list[Member], docs: dict[str, ServerKeyDocument], body: bytes
) -> None:
    """One group message with the members' group tokens: one upload per domain."""
    conn = sender.conn
    eid = os.urandom(16)
    for domain in DOMAINS:
        targets = [m for m in members if m.domain == domain and m is not sender]
        if not targets:
            continue
        if domain == sender.domain:
            recipients = tuple(SharedRecipient(m.account.mailbox, m.token) for m in targets)
            answer = await conn.call(SendShared(conn.new_id(), eid, TTL, recipients, body))
            assert isinstance(answer, SentShared), answer
            assert set(answer.results) == {""}, answer.results
            continue
        layer = seal_for_domain(
            docs[domain], int(time.time() * 1000),
            recipients=[(m.account.mailbox, m.token) for m in targets], eid=eid, ttl=TTL,
            body=body,
        )  # fmt: skip
        sent = await conn.call(Forward(conn.new_id(), domain, eid, TTL, layer))
        assert isinstance(sent, Sent), sent


async def _receive(member: Member, body: bytes, seconds: float) -> None:
    got = await member.conn.wait_delivered(1, max(seconds, 0.1))
    assert [env.body for env in got] == [body]
    await member.conn.ack(got)


async def _all(
    function: Callable[..., Awaitable[None]], members: list[Member], *args: object
) -> None:
    async with trio.open_nursery() as nursery:
        for member in members:
            nursery.start_soon(function, member, *args)


async def _refused_at(fed: LocalFederation, domain: str, before: float) -> None:
    """Wait until ``domain``'s node has refused one more charlie item with a bad token."""
    for _ in range(int(WITHIN / POLL)):
        text = await fed.metrics(domain)
        if metric(text, REFUSED, origin=C, code="send.bad_token") > before:
            return
        await trio.sleep(POLL)
    raise AssertionError(f"{domain} did not refuse the stale token within {WITHIN} s")


@pytest.mark.slow
async def test_a_group_of_strangers_is_usable_within_a_minute_and_a_removal_locks_out(
    world: World,
) -> None:
    fed = world.fed
    docs = {d: await fed.document(d) for d in DOMAINS}
    async with online(world) as everyone:
        admin, members = everyone[0], everyone[1:]
        for m in members:
            m.token = secrets.token_bytes(TOKEN_BYTES)
        admin.token = secrets.token_bytes(TOKEN_BYTES)
        conn = admin.conn
        assert await conn.call(SetGroupToken(conn.new_id(), verifier(admin.token), None)) == Ok(
            conn.next_id
        )

        # --- creation: welcomes to strangers, default limits ---------------------------
        started = time.monotonic()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_all, _join, members)
            await _create(admin, members, docs)
        joined = time.monotonic() - started
        assert joined < WITHIN, f"the members registered their tokens after {joined:.1f} s"

        # --- the group is usable: one message from a bravo member reaches every other ---
        sender = next(m for m in members if m.domain == B)
        body = os.urandom(4096)
        group = [admin, *members]
        others = [m for m in group if m is not sender]
        async with trio.open_nursery() as nursery:
            left = WITHIN - (time.monotonic() - started)
            nursery.start_soon(_all, _receive, others, body, left)
            await _group_send(sender, group, docs, body)
        usable = time.monotonic() - started
        assert usable < WITHIN, f"every member had the message after {usable:.1f} s"
        print(f"\n{MEMBERS + 1} members: tokens in {joined:.1f} s, usable in {usable:.1f} s")

        # --- removal: every remaining member rotates; the removed one's copies fail ------
        victim = next(m for m in members if m.domain == C)
        rest = [m for m in group if m is not victim]
        stale = {id(m): m.token for m in rest}

        async def rotate(member: Member) -> None:
            old, member.token = member.token, secrets.token_bytes(TOKEN_BYTES)
            c = member.conn
            answer = await c.call(SetGroupToken(c.new_id(), verifier(member.token), verifier(old)))
            assert answer == Ok(c.next_id), answer

        await _all(rotate, rest)
        before = metric(await fed.metrics(A), REFUSED, origin=C, code="send.bad_token")
        vc = victim.conn
        neighbour = next(m for m in rest if m.domain == C)
        refused = await vc.call(
            Send(vc.new_id(), neighbour.account.mailbox, os.urandom(16), stale[id(neighbour)],
                 TTL, os.urandom(1024))
        )  # fmt: skip
        assert isinstance(refused, Error)
        assert refused.code == "send.bad_token"
        target = next(m for m in rest if m.domain == A and m is not admin)
        eid = os.urandom(16)
        layer = seal_for_domain(
            docs[A], int(time.time() * 1000), mailbox=target.account.mailbox,
            token=stale[id(target)], eid=eid, ttl=TTL, body=os.urandom(1024),
        )  # fmt: skip
        assert isinstance(await vc.call(Forward(vc.new_id(), A, eid, TTL, layer)), Sent)
        await _refused_at(fed, A, before)

        # the remaining members still reach each other, with the new tokens only
        after = os.urandom(2048)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_all, _receive, [m for m in rest if m is not sender], after, WITHIN)
            await _group_send(sender, rest, docs, after)
        for m in (neighbour, target):
            assert m.conn.delivered() == []
            with trio.move_on_after(1.0) as quiet:
                extra = await m.conn.next_frame(5.0)
            assert quiet.cancelled_caught, f"the removed member's envelope arrived: {extra}"
