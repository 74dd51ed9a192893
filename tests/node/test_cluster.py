"""Cross-replica push (``node.cluster``) between "replicas" that each have their own
RedisStore (own connections, own replica id), Hub and ClusterPush, on a real redis-server.

The first tests attach recording receivers to the hubs; the last one runs the node's
Relay and Session objects (no sockets) on two replicas."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trio

from node.cluster import ClusterPush
from node.hub import Hub
from node.relay import Relay
from node.store import RedisStore, StoredEnvelope, StoreError
from tests.integration.nodeproc import NodeProcess, invite, json_lines, run_cli
from tests.node.harness import Device, call, enroll, login, make_config, server_keys, token_for
from tests.node.store.contract import (
    MAILBOX,
    NOW,
    OTHER_MAILBOX,
    eid,
    envelope,
    fresh_prefix,
    redis_server,
)
from tests.node.test_session import delivered_eids, pushes, send
from tests.redisproc import RedisServer, SentinelSet
from wire.relay import Drained, Ok, Sent, SetDeliveryToken

__all__ = ["redis_server"]

CLIENT_ENV = {"SEALRELAY_PASSPHRASE": "cluster-test", "SEALRELAY_TIMEOUT": "60"}
COREDIS_FAILED_CONNECT = pytest.mark.filterwarnings(
    "ignore:Unclosed <MemoryObject(Send|Receive)Stream:ResourceWarning"
)


@dataclass
class Recorder:
    offered: list[StoredEnvelope] = field(default_factory=list)
    superseded: int = 0

    def offer(self, envelope: StoredEnvelope) -> None:
        self.offered.append(envelope)

    def supersede(self) -> None:
        self.superseded += 1


@dataclass
class Replica:
    store: RedisStore
    hub: Hub
    push: ClusterPush


@asynccontextmanager
async def replicas(url: str, n: int, prefix: str) -> AsyncIterator[list[Replica]]:
    out: list[Replica] = []
    async with trio.open_nursery() as nursery:
        for _ in range(n):
            store = await RedisStore.open(url, prefix=prefix, retry_for=1.0)
            hub = Hub()
            push = ClusterPush(hub, store, now_ms=lambda: NOW)
            await nursery.start(push.run)
            out.append(Replica(store, hub, push))
        yield out
        nursery.cancel_scope.cancel()
    for r in out:
        await r.store.aclose()


async def eventually(check: Callable[[], bool], within: float = 5.0) -> None:
    """Poll ``check`` (state other tasks change) until true; TooSlowError after ``within``."""
    with trio.fail_after(within):
        while True:
            if check():
                return
            await trio.sleep(0.01)


async def test_an_envelope_stored_on_one_replica_reaches_the_connection_on_another(
    redis_server: RedisServer,
) -> None:
    async with replicas(redis_server.url, 2, fresh_prefix()) as (x, y):
        on_y = Recorder()
        y.hub.attach(MAILBOX, on_y)
        stored, seq = await x.store.enqueue(envelope(eid(1), body=b"for y"))
        assert stored
        await eventually(lambda: len(on_y.offered) == 1)
        (got,) = on_y.offered
        assert (got.eid, got.seq, got.body) == (eid(1), seq, b"for y")
        assert y.push.delivered == 1
        # a duplicate send stores nothing and announces nothing
        assert (await x.store.enqueue(envelope(eid(1)))) == (False, seq)
        await x.store.enqueue(envelope(eid(2), body=b"second"))
        await eventually(lambda: len(on_y.offered) == 2)
        assert [e.eid for e in on_y.offered] == [eid(1), eid(2)]


async def test_a_fan_out_on_one_replica_reaches_every_connection_on_another(
    redis_server: RedisServer,
) -> None:
    async with replicas(redis_server.url, 2, fresh_prefix()) as (x, y):
        on_y = {MAILBOX: Recorder(), OTHER_MAILBOX: Recorder()}
        for mailbox, recorder in on_y.items():
            y.hub.attach(mailbox, recorder)
        records = [envelope(eid(5), mailbox=m, body=b"") for m in on_y]
        results = await x.store.enqueue_shared(b"one body", records)
        assert [stored for stored, _ in results] == [True, True]
        await eventually(lambda: all(len(r.offered) == 1 for r in on_y.values()))
        for (_, seq), recorder in zip(results, on_y.values(), strict=True):
            (got,) = recorder.offered
            assert (got.eid, got.seq, got.body) == (eid(5), seq, b"one body")


async def test_a_replica_ignores_its_own_notices_and_unattached_mailboxes(
    redis_server: RedisServer,
) -> None:
    async with replicas(redis_server.url, 3, fresh_prefix()) as (x, y, z):
        on_x, on_y = Recorder(), Recorder()
        x.hub.attach(MAILBOX, on_x)
        y.hub.attach(OTHER_MAILBOX, on_y)
        await x.store.enqueue(envelope(eid(1)))  # x's own: its relay delivers it locally
        await z.store.enqueue(envelope(eid(2), mailbox=b"\x07" * 16))  # nobody's
        # Notices arrive in publish order: once this one is delivered, the two above were
        # seen by every replica.
        await z.store.enqueue(envelope(eid(3), mailbox=OTHER_MAILBOX))
        await z.store.enqueue(envelope(eid(4), mailbox=MAILBOX))
        await eventually(lambda: len(on_y.offered) == 1 and len(on_x.offered) == 1)
        assert [e.eid for e in on_x.offered] == [eid(4)]
        assert [e.eid for e in on_y.offered] == [eid(3)]
        assert x.push.delivered + y.push.delivered + z.push.delivered == 2


async def test_an_acked_envelope_is_not_pushed(redis_server: RedisServer) -> None:
    async with replicas(redis_server.url, 2, fresh_prefix()) as (x, y):
        on_y = Recorder()
        y.hub.attach(MAILBOX, on_y)
        async with trio.open_nursery():
            # y's fetch happens after this ack or before it; either way no envelope that
            # is not in the store is invented, and the later one arrives.
            await x.store.enqueue(envelope(eid(1)))
            await x.store.ack(MAILBOX, [eid(1)])
        await x.store.enqueue(envelope(eid(2)))
        await eventually(lambda: any(e.eid == eid(2) for e in on_y.offered))
        assert set(e.eid for e in on_y.offered) <= {eid(1), eid(2)}
        assert await y.store.pending(MAILBOX, 0, 10, NOW) == [on_y.offered[-1]]


async def test_attaching_on_another_replica_supersedes_the_older_connection(
    redis_server: RedisServer,
) -> None:
    async with replicas(redis_server.url, 2, fresh_prefix()) as (x, y):
        old, new = Recorder(), Recorder()
        x.hub.attach(MAILBOX, old)
        await trio.sleep(0.2)  # x's own claim went by (x ignores it)
        assert old.superseded == 0
        y.hub.attach(MAILBOX, new)
        await eventually(lambda: old.superseded == 1)
        await trio.sleep(0.2)
        assert new.superseded == 0


@COREDIS_FAILED_CONNECT
async def test_a_lost_subscription_supersedes_local_connections_and_pushes_resume(
    tmp_path: Path,
) -> None:
    server = RedisServer(tmp_path / "redis").start()
    try:
        prefix = fresh_prefix()
        async with replicas(server.url, 2, prefix) as (x, y):
            on_y = Recorder()
            y.hub.attach(MAILBOX, on_y)
            server.kill()  # notices published now would be lost: nobody is subscribed
            server.start()  # same port, empty
            await eventually(lambda: on_y.superseded >= 1, within=15)
            assert y.push.resubscribed >= 1
            stored, _ = await x.store.enqueue(envelope(eid(1)))
            assert stored
            await eventually(lambda: len(on_y.offered) == 1)
    finally:
        server.kill()
    gc.collect()


@pytest.mark.slow
@COREDIS_FAILED_CONNECT
async def test_pushes_follow_a_sentinel_failover(tmp_path: Path) -> None:
    with SentinelSet(tmp_path / "ha") as ha:
        prefix = fresh_prefix()
        async with trio.open_nursery() as nursery:
            pairs: list[tuple[RedisStore, Hub, ClusterPush]] = []
            for _ in range(2):
                store = await RedisStore.open_sentinel(
                    ha.sentinels, ha.master, prefix=prefix, retry_for=20.0
                )
                hub = Hub()
                push = ClusterPush(hub, store, now_ms=lambda: NOW)
                await nursery.start(push.run)
                pairs.append((store, hub, push))
            (x, _, _), (_, y_hub, y_push) = pairs
            on_y = Recorder()
            y_hub.attach(MAILBOX, on_y)
            await x.enqueue(envelope(eid(1)))
            await eventually(lambda: len(on_y.offered) == 1)
            ha.kill_primary()
            await x.enqueue(envelope(eid(2)))  # retried until a replica is promoted
            # the subscription moved to the new primary: y's connection was asked to
            # reconnect (it may have missed eid 2's notice), and later pushes arrive
            await eventually(lambda: on_y.superseded >= 1, within=15)
            assert y_push.resubscribed >= 1
            await x.enqueue(envelope(eid(3)))
            await eventually(lambda: any(e.eid == eid(3) for e in on_y.offered))
            nursery.cancel_scope.cancel()
        for store, _, _ in pairs:
            await store.aclose()
    gc.collect()


@COREDIS_FAILED_CONNECT
async def test_run_refuses_to_start_without_a_subscription(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis").start()
    store = await RedisStore.open(server.url, prefix=fresh_prefix(), retry_for=1.0)
    server.kill()
    try:
        start = trio.current_time()
        with trio.fail_after(10), pytest.raises(StoreError, match="cluster push"):
            await ClusterPush(Hub(), store).run()
        assert trio.current_time() - start < 5
    finally:
        await store.aclose()
    gc.collect()


# --- through the node's own Relay and Session objects -----------------------------------


async def test_a_send_on_one_relay_is_pushed_by_a_session_on_another(
    redis_server: RedisServer,
) -> None:
    prefix = fresh_prefix()
    async with trio.open_nursery() as nursery:
        relays: list[Relay] = []
        for _ in range(2):
            store = await RedisStore.open(redis_server.url, prefix=prefix)
            relay = Relay(
                config=make_config(store="redis", redis_url=redis_server.url),
                store=store,
                keys=server_keys("xwing"),
            )
            await nursery.start(ClusterPush(relay.hub, store).run)
            relays.append(relay)
        x, y = relays
        alice, bob = Device.create("alice"), Device.create("bob")
        a_session = await enroll(x, alice)  # alice connected to replica x
        b_session = await enroll(y, bob)  # bob connected to replica y
        token, verifier = token_for(bob)
        assert await call(b_session, SetDeliveryToken(7, verifier)) == [Ok(7)]
        assert [f for f in await pushes(b_session) if not isinstance(f, Drained)] == []
        for n in (1, 2, 3):
            assert await send(a_session, bob, n, token) == Sent(n, eid(n), False)
        frames: list[object] = []
        with trio.fail_after(5):
            while len(delivered_eids(frames)) < 3:
                frames += await pushes(b_session)
                await trio.sleep(0.01)
        assert sorted(delivered_eids(frames)) == [eid(1), eid(2), eid(3)]
        # alice reconnecting on y supersedes her connection on x
        a_again, _ = await login(y, alice)
        await eventually(lambda: a_session.close_code is not None)
        assert a_again.close_code is None
        nursery.cancel_scope.cancel()
    for relay in relays:
        await relay.store.aclose()


# --- two real node processes on one Redis (integration) ---------------------------------


@pytest.mark.slow
def test_two_node_processes_share_accounts_and_mailboxes_on_redis(tmp_path: Path) -> None:
    """`sealrelay node serve` twice with ``SEALRELAY_STORE=redis`` (the keys directory
    shared, as the Secret is in Kubernetes); invites go to Redis; alice uses one node, bob
    the other, and each receives what the other sent (at the next connection: the node
    does not start ``ClusterPush`` yet)."""
    with RedisServer(tmp_path / "redis") as server:
        env = {"SEALRELAY_STORE": "redis", "SEALRELAY_REDIS_URL": server.url}
        keys = tmp_path / "keys"
        with (
            NodeProcess(keys, domain="cluster.test", env=env) as x,
            NodeProcess(keys, domain="cluster.test", env=env) as y,
        ):
            urls = [x.start(), y.start()]
            homes = {}
            for name, url in zip(("alice", "bob"), urls, strict=True):
                homes[name] = tmp_path / name
                code = invite(keys, name, env=env)
                run_cli(
                    "client", "register", f"{name}@cluster.test", "--node", url,
                    "--code", code, "--home", str(homes[name]), env=CLIENT_ENV,
                )  # fmt: skip
            assert not (keys / "node.sqlite3").exists()  # everything went to Redis

            def cli(name: str, *args: str) -> list[dict[str, Any]]:
                out = run_cli("client", args[0], "--home", str(homes[name]), *args[1:],
                              env=CLIENT_ENV)  # fmt: skip
                return json_lines(out.stdout)

            (sent,) = cli("alice", "send", "bob@cluster.test", "via x")
            got = {m["eid"]: m["text"] for m in cli("bob", "receive")}
            assert got[sent["eids"][0]] == "via x"
            (reply,) = cli("bob", "send", "alice@cluster.test", "via y")
            back = {m["eid"]: m["text"] for m in cli("alice", "receive")}
            assert back[reply["eids"][0]] == "via y"
