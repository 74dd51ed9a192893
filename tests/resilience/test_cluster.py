"""Cluster mode under faults (DESIGN section 7): real ``sealrelay node serve`` replicas of
one domain on a real ``redis-server`` (a real Sentinel set for the failover tests), clients
speaking the client protocol over loopback (``tests.resilience.chaos``: senders that send
an unacknowledged envelope again with the same eid, receivers that check and ack every
push, and a ledger of what was acknowledged, delivered, lost and duplicated).

- three replicas, clients spread over them: every envelope crosses replicas, exactly once;
- ``kill -9`` of the replica holding a busy recipient: everything acknowledged reaches it
  exactly once after it reconnects to another replica;
- ``kill -9`` of the replica that queued federation work for a domain that is down: another
  replica sends it when the domain is back, exactly once;
- ``kill -9`` of the Redis primary under load: with ``durability = "replicated"`` nothing
  acknowledged is lost and sends resume within 10 s; with ``"primary"`` the loss is
  measured and reported (Redis replication is asynchronous), not asserted to be zero.
"""

from __future__ import annotations

import functools
import json
import time
from pathlib import Path
from typing import Any, Final

import pytest
import trio

from client.enroll import enroll as client_enroll
from client.store.memory import MemoryStore
from node.devfed import prepare
from tests.integration.fedharness import Person, converse, free_ports, texts, wait_until
from tests.integration.nodeproc import NodeProcess, invite
from tests.redisproc import RedisServer, SentinelSet
from tests.resilience.chaos import (
    NODE_ENV,
    SUITE,
    Cluster,
    Ledger,
    Sender,
    enroll,
    invite_codes,
    open_store,
    receive,
    redis_env,
    wait_caught_up,
)

pytestmark = pytest.mark.slow

COREDIS_FAILED_CONNECT = pytest.mark.filterwarnings(
    "ignore:Unclosed <MemoryObject(Send|Receive)Stream:ResourceWarning"
)
RESUME_WITHIN: Final = 10.0
A: Final = "alpha.test"
B: Final = "bravo.test"


def _report(capsys: pytest.CaptureFixture[str], name: str, summary: dict[str, Any]) -> None:
    """Print a measurement on the terminal even when output is captured (the test log
    shows it under ``make test``); the tests also keep it as a junit property."""
    with capsys.disabled():
        print(f"\n{name}: {json.dumps(summary)}")


def _exactly_once(ledger: Ledger, expected: int) -> dict[str, int]:
    summary = ledger.summary()
    assert summary["acknowledged"] == expected, summary
    assert summary["lost"] == 0, f"acknowledged, never delivered: {summary}"
    assert summary["duplicated"] == 0, f"pushed again after a confirmed ack: {summary}"
    assert summary["bad"] == summary["misrouted"] == summary["unknown"] == 0, summary
    assert summary["delivered"] == expected, summary
    return summary


async def test_three_replicas_exchange_messages_exactly_once(
    tmp_path: Path, record_property: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    with RedisServer(tmp_path / "redis") as server:
        env = redis_env(url=server.url)
        cluster = Cluster(tmp_path / "nodes", 3, env)
        try:
            await cluster.start()
            urls = cluster.urls
            # r_i receives on replica i; s_i sends from replica i % 3 to the two receivers
            # of the other replicas (a device has one connection: senders and receivers
            # are different accounts)
            names = [f"r{i}" for i in range(3)] + [f"s{i}" for i in range(6)]
            accts = await enroll(env, urls, names)
            receivers, ledger = accts[:3], Ledger()
            senders = [
                Sender(a, [r for j, r in enumerate(receivers) if j != i % 3], [urls[i % 3]],
                       ledger, count=120, rate=100.0)
                for i, a in enumerate(accts[3:])
            ]  # fmt: skip
            connected: list[list[int]] = [[] for _ in receivers]
            with trio.fail_after(60):
                async with trio.open_nursery() as nursery:
                    for i, acct in enumerate(receivers):
                        nursery.start_soon(
                            functools.partial(
                                receive, acct, urls, ledger, first_url=i, connected=connected[i]
                            )
                        )
                    async with trio.open_nursery() as load:
                        for sender in senders:
                            load.start_soon(sender.run)
                    await wait_caught_up(ledger, 20)
                    nursery.cancel_scope.cancel()
            summary = _exactly_once(ledger, 6 * 120)
            # nobody moved: every push crossed from the sender's replica to another one
            assert connected == [[0], [1], [2]]
            assert summary["reconnects"] == summary["redelivered"] == 0, summary
            _report(capsys, "three replicas", summary)
            record_property("summary", summary)
            assert cluster.errors() == []
        finally:
            cluster.close()


async def test_kill_9_of_the_recipients_replica_loses_no_acknowledged_envelope(
    tmp_path: Path, record_property: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    with RedisServer(tmp_path / "redis") as server:
        env = redis_env(url=server.url)
        cluster = Cluster(tmp_path / "nodes", 3, env)
        try:
            await cluster.start()
            urls = cluster.urls
            # the recipient and one sender on replica 0, the other senders on 1 and 2
            recipient, *rest = await enroll(env, urls, ["busy", "s0", "s1", "s2"])
            ledger = Ledger()
            senders = [
                Sender(a, [recipient], urls, ledger, count=500, rate=100.0, first_url=i)
                for i, a in enumerate(rest)
            ]
            connected: list[int] = []
            with trio.fail_after(60):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(
                        functools.partial(receive, recipient, urls, ledger, connected=connected)
                    )
                    async with trio.open_nursery() as load:
                        for sender in senders:
                            load.start_soon(sender.run)
                        await wait_until(lambda: len(ledger.acked_at) >= 400, 30, "400 acks")
                        await cluster.kill(0)
                        acked_before_kill = len(ledger.acked_at)
                    await wait_caught_up(ledger, 20)
                    nursery.cancel_scope.cancel()
            summary = _exactly_once(ledger, 3 * 500)
            assert acked_before_kill < 3 * 500, "the kill did not land mid-stream"
            assert connected[0] == 0
            assert len(connected) >= 2
            assert 0 not in connected[1:], connected  # it went on on another replica
            summary["acked_before_kill"] = acked_before_kill
            _report(capsys, "recipient's replica killed", summary)
            record_property("summary", summary)
            assert cluster.errors() == []
        finally:
            cluster.close()


# --- federation work of a dead replica ------------------------------------------------------


def _federation(base: Path, redis_url: str) -> tuple[Cluster, NodeProcess, list[str]]:
    """A: three replicas on Redis (one set of keys, pinned by B); B: one node on SQLite.
    B's configuration lists every replica of A as an endpoint."""
    ports = free_ports(4)
    setups = {s.domain: s for s in prepare(base, [A, B], ports[:2], suite=SUITE)}
    a_urls = [f"http://127.0.0.1:{p}" for p in (ports[0], ports[2], ports[3])]
    b_conf = setups[B].config
    text = b_conf.read_text()
    one = f"endpoints = {json.dumps([a_urls[0]])}"
    assert one in text, text
    b_conf.write_text(text.replace(one, f"endpoints = {json.dumps(a_urls)}"))
    # B's hello (to the first of A's endpoints that answers) ends A's backoff; the cap only
    # bounds the test if the hello is lost
    env = {**redis_env(url=redis_url), "SEALRELAY_FEDERATION_BACKOFF_CAP": "10"}
    cluster = Cluster(base / "a", 3, env, domain=A, config=setups[A].config,
                      keys_from=setups[A].data_dir)  # fmt: skip
    for node, port in zip(cluster.nodes, (ports[0], ports[2], ports[3]), strict=True):
        node.port = port
    b_env = {k: v for k, v in NODE_ENV.items() if k != "SEALRELAY_STORE"}
    b = NodeProcess(setups[B].data_dir, domain=B, config=b_conf, port=ports[1], env=b_env)
    return cluster, b, a_urls


async def _person(domain: str, url: str, name: str, code: str, home: Path) -> Person:
    store = MemoryStore()
    await client_enroll(store, f"{name}@{domain}", url, code, SUITE)
    return Person(f"{name}@{domain}", store, home)


async def test_kill_9_of_the_replica_holding_federation_work(
    tmp_path: Path, record_property: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    count = 60
    with RedisServer(tmp_path / "redis") as server:
        cluster, b, a_urls = _federation(tmp_path / "fed", server.url)
        try:
            await cluster.start()
            await trio.to_thread.run_sync(b.start)
            (code,) = await invite_codes(cluster.env, ["alice"])
            alice_p = await _person(A, a_urls[0], "alice", code, tmp_path / "alice")
            b_code = await trio.to_thread.run_sync(invite, b.data_dir, "bob")
            bob_p = await _person(B, b.url or "", "bob", b_code, tmp_path / "bob")
            alice, bob = alice_p.load(), bob_p.load()
            async with alice.online(), bob.online():
                await converse(alice, bob)  # both hold each other's delivery tokens
                await trio.to_thread.run_sync(b.stop)
                tag = f"{time.monotonic_ns():x}"
                plan = [f"{tag} #{n}" for n in range(count)]
                for text in plan:  # each acknowledged by replica 0 into the shared queue
                    result = await alice.send(bob.device.address, text)
                    assert not result.failed, result.failed
            store = await open_store(cluster.env)
            try:
                depths = await store.outbound_depths(int(time.time() * 1000))
                assert depths.get(B) == count, depths
                await cluster.kill(0)  # the replica that queued it all
                await trio.to_thread.run_sync(b.start)
                async with bob.online():
                    took = await wait_until(
                        lambda: len([t for t in texts(bob) if t.startswith(tag)]) >= count,
                        40, "bob got everything A queued",
                    )  # fmt: skip
                    await trio.sleep(1.0)  # anything more (another copy, under any eid) arrives now
                    got = [t for t in texts(bob) if t.startswith(tag)]
                await _queue_empty(store)
            finally:
                await store.aclose()
            assert sorted(got) == sorted(plan), "lost or duplicated"
            summary = {"queued": count, "delivered": len(got), "after_b_up_s": round(took, 2)}
            _report(capsys, "federation work of a dead replica", summary)
            record_property("summary", summary)
            assert cluster.errors() == []
        finally:
            cluster.close()
            b.close()


async def _queue_empty(store: Any) -> None:
    for _ in range(50):
        if not (await store.outbound_depths(int(time.time() * 1000))).get(B):
            return
        await trio.sleep(0.2)
    raise AssertionError("A's queue for B did not empty")


# --- the Redis primary killed under load ----------------------------------------------------


async def _primary_killed_under_load(
    tmp_path: Path, durability: str
) -> tuple[dict[str, Any], Ledger]:
    with SentinelSet(tmp_path / "ha") as ha:
        env = redis_env(sentinels=ha.sentinels, durability=durability)
        cluster = Cluster(tmp_path / "nodes", 2, env)
        try:
            await cluster.start()
            urls = cluster.urls
            accts = await enroll(env, urls, ["s0", "s1", "s2", "r0", "r1"])
            ledger = Ledger()
            senders = [
                Sender(a, accts[3:], urls, ledger, count=600, rate=60.0, first_url=i)
                for i, a in enumerate(accts[:3])
            ]
            times: dict[str, float] = {}
            with trio.fail_after(75):
                async with trio.open_nursery() as nursery:
                    for i, acct in enumerate(accts[3:]):
                        nursery.start_soon(
                            functools.partial(receive, acct, urls, ledger, first_url=i)
                        )
                    async with trio.open_nursery() as load:
                        for sender in senders:
                            load.start_soon(sender.run)
                        await wait_until(lambda: len(ledger.acked_at) >= 300, 30, "300 acks")
                        times["acked_before_kill"] = len(ledger.acked_at)
                        old = await trio.to_thread.run_sync(ha.kill_primary)
                        times["kill"] = time.monotonic()
                        new = await trio.to_thread.run_sync(ha.wait_for_new_primary, old.port)
                        times["promoted"] = time.monotonic()
                        old.replica_of = new  # back as the new primary's replica
                        await trio.to_thread.run_sync(old.start)
                        times["replica_back"] = time.monotonic()
                    times["end"] = time.monotonic()
                    caught = await wait_caught_up(ledger, 20, idle=8)
                    nursery.cancel_scope.cancel()
            summary: dict[str, Any] = ledger.summary()
            summary["durability"] = durability
            summary["acked_before_kill"] = times["acked_before_kill"]
            kill = times["kill"]
            summary["acked_in_100ms_before_kill"] = sum(
                kill - 0.1 <= t <= kill for t in ledger.acked_at.values()
            )  # writes the replica may not have had yet: what "primary" can lose
            summary["promoted_after_s"] = round(times["promoted"] - times["kill"], 2)
            summary["replica_back_after_s"] = round(times["replica_back"] - times["kill"], 2)
            summary["longest_ack_gap_s"] = round(ledger.longest_gap(times["kill"], times["end"]), 2)
            summary["catch_up_s"] = round(caught, 2)
            summary["lost_examples"] = [e.hex() for e in sorted(ledger.lost())[:3]]
            return summary, ledger
        finally:
            cluster.close()


@COREDIS_FAILED_CONNECT
async def test_redis_primary_killed_with_replicated_durability_loses_nothing(
    tmp_path: Path, record_property: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    summary, ledger = await _primary_killed_under_load(tmp_path, "replicated")
    _report(capsys, "redis primary killed, durability=replicated", summary)
    record_property("summary", summary)
    assert summary["acked_before_kill"] < summary["acknowledged"]
    _exactly_once(ledger, 3 * 600)
    assert summary["longest_ack_gap_s"] < RESUME_WITHIN, summary


@COREDIS_FAILED_CONNECT
async def test_redis_primary_killed_with_primary_durability_loss_is_measured(
    tmp_path: Path, record_property: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """Not zero by design (asynchronous replication): this test measures and reports."""
    summary, ledger = await _primary_killed_under_load(tmp_path, "primary")
    _report(capsys, "redis primary killed, durability=primary", summary)
    record_property("summary", summary)
    record_property("lost_acknowledged", summary["lost"])
    # the measurement ran: the kill landed under load and the ledger saw both sides
    assert summary["acked_before_kill"] < summary["acknowledged"] == 3 * 600
    assert summary["delivered"] + summary["lost"] >= summary["acknowledged"]
    assert summary["bad"] == summary["misrouted"] == summary["unknown"] == 0
    assert summary["lost"] == len(ledger.lost())
