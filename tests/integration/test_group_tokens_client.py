"""A group of strangers formed by real clients (the client library, in-process) over three
real nodes with their DEFAULT configuration (issue 20; docs/groups.md section 9).

One admin on alpha, who has written to none of them, creates a group of members spread
over alpha, bravo and charlie. The client sends the welcomes to alpha members in
``IntroduceMany`` uploads (checked on the admin's outbox: no single ``Introduce``, fewer
uploads than the 10 introductions a minute) and to the others as routing layers; each
member registers a group token (``SetGroupToken``) and reports it to the admin; the admin
publishes the tokens to the members. Then a bravo member, who never wrote to anyone, sends a group
message: its sender-key distributions and uploads present group tokens, never an
introduction. Every other member must hold the message within :data:`WITHIN` seconds of
the start of the creation; no limit is raised.

Then a charlie member is removed: every remaining member rotates its token, and the
removed member's copies of the old tokens are refused with ``send.bad_token``: at once on
its own node, and at the destination for a routing layer to another domain (counted in
``sealrelay_federation_refused_total``); the remaining members still reach each other.

:data:`MEMBERS` members in ``make test``; ``SEALRELAY_GROUPS_FULL=1`` (``make
groups-full``) the issue's 200.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pytest
import trio

from client.app import Client
from client.enroll import enroll
from client.errors import Refused
from client.routing import seal_for_domain
from client.store.memory import MemoryStore
from node import accounts
from node.store import open_store
from tests.integration.fedharness import LocalFederation, Person, metric, wait_until
from wire.relay import Forward, Introduce, IntroduceMany, Send, Sent

A: Final = "alpha.test"
B: Final = "bravo.test"
C: Final = "charlie.test"
DOMAINS: Final = (A, B, C)
FULL: Final = os.environ.get("SEALRELAY_GROUPS_FULL") == "1"
MEMBERS: Final = 200 if FULL else 30
"""Members besides the admin, spread over the three domains."""
WITHIN: Final = 60.0
REFUSED: Final = "sealrelay_federation_refused_total"


@dataclass
class World:
    fed: LocalFederation
    people: list[Person]  # the admin first


async def _enroll_all(fed: LocalFederation, base: Path) -> list[Person]:
    names = [("admin", A)] + [(f"t{i:03d}", DOMAINS[i % 3]) for i in range(MEMBERS)]
    codes: dict[str, str] = {}
    for domain in DOMAINS:
        store = await open_store("sqlite", str(fed.setups[domain].data_dir))
        try:
            for name, d in names:
                if d == domain:
                    raw = secrets.token_bytes(accounts.CODE_BYTES)
                    expires = int(time.time() * 1000) + 3_600_000
                    await store.add_invite(accounts.code_hash(raw), name, expires)
                    codes[name] = accounts.format_code(raw)
        finally:
            await store.aclose()
    found: dict[str, Person] = {}
    limit = trio.CapacityLimiter(8)

    async def one(name: str, domain: str) -> None:
        async with limit:
            store = MemoryStore()
            address = f"{name}@{domain}"
            await enroll(store, address, fed.url(domain), codes[name], fed.suite)
            found[name] = Person(address, store, base / name)

    async with trio.open_nursery() as nursery:
        for name, domain in names:
            nursery.start_soon(one, name, domain)
    return [found[name] for name, _ in names]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    base = tmp_path_factory.mktemp("grouptokensclient")
    fed = LocalFederation(base / "fed", list(DOMAINS))  # default limits
    try:
        fed.start()
        yield World(fed, trio.run(_enroll_all, fed, base))
        for domain in DOMAINS:
            assert fed.nodes[domain].running(), f"{domain}'s node died"
    finally:
        fed.close()


@contextlib.asynccontextmanager
async def online(clients: list[Client]) -> AsyncIterator[None]:
    async with trio.open_nursery() as nursery:

        async def run(client: Client, task_status: trio.TaskStatus[None]) -> None:
            async with client.online():
                task_status.started()
                await trio.sleep_forever()

        for client in clients:
            await nursery.start(run, client)
        yield
        nursery.cancel_scope.cancel()


def _tokens_everywhere(clients: list[Client], gid: bytes, serial: int = 1) -> bool:
    """Every client is a member and holds a token of every other member device, its own
    registered and published at ``serial`` or later, no old one left to revoke."""
    for client in clients:
        ng = client.groups.get(gid)
        if ng is None or ng.group is None or not ng.group.is_member:
            return False
        held = ng.tokens
        if not held.registered or held.serial < serial or not held.confirmed or held.revoke:
            return False
        if any(dev not in held.members for dev in ng.member_devices()):
            return False
    return True


def _record_frames(client: Client) -> list[object]:
    """The frames ``client``'s outbox pump sends from now on."""
    frames: list[object] = []
    send = client.pump._request

    async def recording(frame: object) -> object:
        frames.append(frame)
        return await send(frame)

    client.pump._request = recording
    return frames


def _has(client: Client, text: str) -> bool:
    return any(m.text == text for m in client.inbox.messages())


@pytest.mark.slow
async def test_real_clients_form_a_group_of_strangers_within_a_minute(world: World) -> None:
    clients = [p.load() for p in world.people]
    admin, members = clients[0], clients[1:]
    frames = _record_frames(admin)
    async with online(clients):
        started = time.monotonic()
        gid = await admin.group_create("crisis", [c.device.address for c in members])
        welcomed = time.monotonic() - started
        uploads = [f for f in frames if isinstance(f, IntroduceMany)]
        assert 1 <= len(uploads) < 10  # the home welcomes, within one minute's limit
        assert sum(len(f.intros) for f in uploads) == sum(c.domain == A for c in members)
        assert not any(isinstance(f, Introduce) for f in frames)
        await wait_until(lambda: _tokens_everywhere(clients, gid), WITHIN, "tokens everywhere")
        formed = time.monotonic() - started

        sender = next(c for c in members if c.domain == B)
        result = await sender.group_send(gid, "the first message")
        sent = time.monotonic() - started
        assert not result.failed
        assert not result.partial
        others = [c for c in clients if c is not sender]
        left = WITHIN - (time.monotonic() - started)
        await wait_until(lambda: all(_has(c, "the first message") for c in others), left, "all")
        usable = time.monotonic() - started
        assert usable < WITHIN
        print(
            f"\n{MEMBERS + 1} members: welcomes taken {welcomed:.1f} s, tokens everywhere "
            f"{formed:.1f} s, first send taken {sent:.1f} s, the message at every other member "
            f"{usable:.1f} s"
        )

        # --- removal: every remaining member rotates; the removed one's copies fail ------
        victim = next(c for c in members if c.domain == C and c is not sender)
        neighbour = next(c for c in members if c.domain == C and c not in (victim, sender))
        vng = victim.groups.get(gid)
        assert vng is not None
        stale = vng.tokens.members[(neighbour.device.address, 1)]
        target = next(c for c in members if c.domain == A)
        far = vng.tokens.members[(target.device.address, 1)]
        assert not await admin.group_change(gid, remove=[victim.device.address])
        rest = [c for c in clients if c is not victim]
        await wait_until(lambda: _tokens_everywhere(rest, gid, 2), WITHIN, "rotated tokens")
        with pytest.raises(Refused) as refused:
            await victim.link.request(
                Send(0, stale.mailbox, os.urandom(16), stale.token, 0, os.urandom(1024))
            )
        assert refused.value.node_code == "send.bad_token"
        # ... and a routing layer to another domain is refused at the destination
        before = metric(await world.fed.metrics(A), REFUSED, origin=C, code="send.bad_token")
        eid = os.urandom(16)
        layer = seal_for_domain(
            await world.fed.document(A), int(time.time() * 1000), mailbox=far.mailbox,
            token=far.token, eid=eid, ttl=0, body=os.urandom(1024),
        )  # fmt: skip
        assert isinstance(await victim.link.request(Forward(0, A, eid, 0, layer)), Sent)

        async def refused_at_alpha() -> float:
            text = await world.fed.metrics(A)
            return metric(text, REFUSED, origin=C, code="send.bad_token") - before

        deadline = time.monotonic() + WITHIN
        while await refused_at_alpha() < 1:
            assert time.monotonic() < deadline, "alpha did not refuse the stale token"
            await trio.sleep(0.2)
        # the remaining members still reach each other with the new tokens
        result = await sender.group_send(gid, "after the removal")
        assert not result.failed
        assert not result.partial
        await wait_until(
            lambda: all(_has(c, "after the removal") for c in rest if c is not sender),
            WITHIN,
            "after the removal",
        )
        await trio.sleep(0.5)
        assert not _has(victim, "after the removal")
