"""Faults in cluster mode (DESIGN section 7): node replicas of one domain on a shared
Redis, a stream of acknowledged sends, and a ledger that says what was lost.

The pieces are used by ``tests/resilience/test_cluster.py`` (one fault each, bounded to
about a minute) and by the soak below (``make chaos``), which repeats the faults:

    python -m tests.resilience.chaos [--seconds N] [--durability replicated|primary]
                                     [--replicas 3] [--period 12] [--json FILE]

(``CHAOS_SECONDS`` is the default of ``--seconds``.) The soak runs a Sentinel set (one
primary, one replica, three Sentinels), ``--replicas`` real ``sealrelay node serve``
processes, and senders and receivers speaking the client protocol over loopback
(``tests.integration.rawclient``). Every ``--period`` seconds it injects the next fault in
turn: ``kill -9`` of a node replica (started again two seconds later on the same port),
or ``kill -9`` of the Redis primary (the old primary comes back as a replica once Sentinel
has promoted the other). At the end the senders stop, the receivers get a bounded time to
catch up, and it prints the counts: sent, acknowledged, delivered, lost (acknowledged,
never delivered), duplicated (pushed again after the recipient's ack was confirmed),
redelivered (pushed again before an ack was confirmed: at-least-once, dropped by the
application by eid). Exit status 1 if anything acknowledged was lost or duplicated
(under ``--durability primary`` losses are reported, not failed: Redis replication is
asynchronous).

The ledger is the delivery checker of ``tests.resilience.checker`` (the federation soak,
``tests.resilience.fedchaos``, counts with the same one), which also prints its table.
Its rules:

- An envelope counts as *acknowledged* when a node answered its ``Send`` with ``Sent``.
  A sender that loses its connection, or gets ``internal`` (the store was unreachable),
  sends the same eid and bytes again, to the next replica if its own is gone.
- A receiver checks every pushed body (derived from the eid), that it was meant for its
  own mailbox, acks each push, and records which eids the node confirmed as acked.
- *lost* = acknowledged and not delivered by the end; *duplicated* = a push of an eid
  whose ack the node had confirmed (that ack's delete did not stick).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import itertools
import json
import os
import secrets
import shutil
import sys
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import trio
import trio_websocket

from node.accounts import code_hash, format_code
from node.keys import load_or_create
from node.store import RedisStore
from tests.integration import rawclient
from tests.integration.nodeproc import NodeProcess
from tests.redisproc import SentinelSet
from tests.resilience.checker import Checker
from trust.errors import LIMIT_RATE, TRANSIENT
from wire.relay import Ack, Authenticated, Deliver, Error, Send, Sent

DOMAIN: Final = "cluster.test"
SUITE: Final = "xwing"
TTL: Final = 3600
RETRY_PAUSE: Final = 0.1  # seconds before a refused or failed send goes again
REPLY_WAIT: Final = 30.0  # a reply slower than this means the connection is dead
NODE_ENV: Final = {
    "SEALRELAY_SUITE": SUITE,
    "SEALRELAY_STORE": "redis",
    # These tests are about durability, not limits.
    "SEALRELAY_RATE_ACCOUNT_PER_S": "100000",
    "SEALRELAY_RATE_ACCOUNT_BURST": "100000",
    "SEALRELAY_RATE_IP_PER_S": "100000",
    "SEALRELAY_RATE_IP_BURST": "100000",
    "SEALRELAY_LOG_LEVEL": "warning",
}
RETRYABLE: Final = TRANSIENT
"""Error codes a sender answers by sending the same envelope again (the node's store
was unreachable for the retry time: a failover)."""


def redis_env(
    *, url: str = "", sentinels: Sequence[tuple[str, int]] = (), durability: str = "primary"
) -> dict[str, str]:
    """The ``SEALRELAY_*`` variables that point a node at a Redis (or a Sentinel set)."""
    env = {"SEALRELAY_DURABILITY": durability}
    if sentinels:
        env["SEALRELAY_REDIS_SENTINELS"] = ",".join(f"{h}:{p}" for h, p in sentinels)
    else:
        env["SEALRELAY_REDIS_URL"] = url
    return env


# --- the replicas ------------------------------------------------------------------------


class Cluster:
    """``count`` node processes of one domain sharing one Redis and one set of server keys
    (as the Kubernetes Secret shares them); replica ``i`` keeps its port across restarts."""

    def __init__(
        self,
        base: Path,
        count: int,
        env: Mapping[str, str],
        *,
        domain: str = DOMAIN,
        config: Path | None = None,
        keys_from: Path | None = None,
    ) -> None:
        keys = keys_from or base / "keys"
        if keys_from is None:
            load_or_create(keys, SUITE)
        self.env = {**NODE_ENV, **env}
        self.nodes: list[NodeProcess] = []
        for i in range(count):
            data = base / f"replica{i}"
            if not data.exists():
                shutil.copytree(keys, data)
            self.nodes.append(NodeProcess(data, domain=domain, config=config, env=self.env))

    @property
    def urls(self) -> list[str]:
        return [f"http://127.0.0.1:{node.port}" for node in self.nodes]

    async def start(self) -> None:
        """Start every replica (in parallel threads: each start waits for readiness)."""
        async with trio.open_nursery() as nursery:
            for i in range(len(self.nodes)):
                nursery.start_soon(self.restart, i)

    async def kill(self, i: int) -> None:
        await trio.to_thread.run_sync(self.nodes[i].kill)

    async def restart(self, i: int) -> None:
        await trio.to_thread.run_sync(self.nodes[i].start)

    def close(self) -> None:
        for node in self.nodes:
            with contextlib.suppress(Exception):
                node.close()

    def errors(self) -> list[str]:
        """Log lines at level error of every replica (crashes leave none by themselves)."""
        return [
            line
            for node in self.nodes
            for line in node.log_text().splitlines()
            if '"level": "error"' in line
        ]


async def open_store(env: Mapping[str, str]) -> RedisStore:
    """The shared store, opened from the test process as the nodes open it."""
    sentinels = env.get("SEALRELAY_REDIS_SENTINELS", "")
    if sentinels:
        pairs = [(h, int(p)) for h, p in (s.rsplit(":", 1) for s in sentinels.split(","))]
        return await RedisStore.open_sentinel(pairs, "sealrelay")
    return await RedisStore.open(env["SEALRELAY_REDIS_URL"])


async def invite_codes(env: Mapping[str, str], names: Sequence[str]) -> list[str]:
    """One-time enrollment codes for ``names``, written to the shared store."""
    store = await open_store(env)
    codes = []
    expires = int((time.time() + 3600) * 1000)
    try:
        for name in names:
            raw = os.urandom(16)
            await store.add_invite(code_hash(raw), name, expires)
            codes.append(format_code(raw))
    finally:
        await store.aclose()
    return codes


async def enroll(
    env: Mapping[str, str], urls: Sequence[str], names: Sequence[str]
) -> list[rawclient.Account]:
    """Invite ``names`` in the shared store and register name ``i`` on ``urls[i % len]``."""
    codes = await invite_codes(env, names)
    return [
        await rawclient.register(urls[i % len(urls)], name, code)
        for i, (name, code) in enumerate(zip(names, codes, strict=True))
    ]


# --- the ledger ------------------------------------------------------------------------------


@dataclass
class Ledger(Checker):
    """The delivery checker (``tests.resilience.checker``) with the soak's own counts:
    sends (including resends), retried errors and reconnections."""

    body_of: Callable[[bytes], bytes] | None = rawclient.stream_body
    sends: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    reconnects: int = 0

    def summary(self) -> dict[str, int]:
        counts = self.counts()
        return {
            "sent": counts["attempted"],
            "sends": self.sends,
            **counts,
            "bad": counts["corrupt"],  # the soak's older names
            "unknown": counts["unexpected"],
            "retried_errors": sum(self.errors.values()),
            "reconnects": self.reconnects,
        }

    def longest_gap(self, since: float, until: float) -> float:
        """The longest time without any acknowledgement in ``[since, until]``."""
        times = sorted(t for t in self.acked_at.values() if since <= t <= until)
        points = [since, *times, until]
        return max(b - a for a, b in itertools.pairwise(points))


class Retry(Exception):
    """The connection is unusable for now (a failover, a dead replica): use another."""


def _network_failure(exc: BaseException) -> bool:
    if isinstance(exc, BaseExceptionGroup):
        return all(_network_failure(e) for e in exc.exceptions)
    return isinstance(
        exc,
        OSError
        | Retry
        | trio.TooSlowError
        | trio_websocket.ConnectionClosed
        | trio_websocket.HandshakeError
        | trio.BrokenResourceError
        | trio.ClosedResourceError,
    )


async def _login(conn: rawclient.Conn, acct: rawclient.Account) -> None:
    answer = await conn.call(acct.sign_auth(conn.hello), REPLY_WAIT)
    if isinstance(answer, Error) and answer.code in RETRYABLE:
        raise Retry(answer.code)
    if not isinstance(answer, Authenticated):
        raise AssertionError(f"login {acct.address}: {answer}")


# --- senders -------------------------------------------------------------------------------


@dataclass
class Sender:
    """One account streaming envelopes to ``targets`` in turn, ``window`` unacknowledged,
    at most ``rate`` per second; ``count`` envelopes, or until :meth:`stop` (then only
    what was already sent is completed)."""

    acct: rawclient.Account
    targets: list[rawclient.Account]
    urls: list[str]
    ledger: Ledger
    count: int = 1 << 30
    rate: float = 50.0
    window: int = 16
    first_url: int = 0
    link: str = ""  # what the checker calls the way these envelopes take
    seed: bytes = field(default_factory=lambda: secrets.token_bytes(16))
    next_index: int = 0
    again: deque[bytes] = field(default_factory=deque)
    in_flight: dict[int, bytes] = field(default_factory=dict)
    stopped: bool = False

    def stop(self) -> None:
        self.stopped = True

    def done(self) -> bool:
        fresh = self.next_index < self.count and not self.stopped
        return not (fresh or self.again or self.in_flight)

    def _next(self) -> bytes | None:
        if self.again:
            return self.again.popleft()
        if self.stopped or self.next_index >= self.count:
            return None
        index, self.next_index = self.next_index, self.next_index + 1
        eid = hashlib.sha256(self.seed + index.to_bytes(4, "big")).digest()[:16]
        self.ledger.attempt(eid, self.targets[index % len(self.targets)].mailbox, self.link)
        return eid

    async def run(self) -> None:
        """Until :meth:`done`, moving to the next replica whenever one fails."""
        at = self.first_url
        while not self.done():
            try:
                await self._once(self.urls[at % len(self.urls)])
            except BaseException as exc:
                if not _network_failure(exc):
                    raise
                self.ledger.reconnects += 1
                at += 1
                await trio.sleep(RETRY_PAUSE)

    async def _once(self, url: str) -> None:
        async with rawclient.connect(url) as conn:
            await _login(conn, self.acct)
            self.again.extendleft(reversed(list(self.in_flight.values())))
            self.in_flight.clear()
            slots = trio.Semaphore(self.window)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._replies, conn, slots)
                while not self.done():
                    await slots.acquire()
                    eid = self._next()
                    if eid is None:
                        slots.release()
                        await trio.sleep(0.02)
                        continue
                    await self._send(conn, eid)
                nursery.cancel_scope.cancel()

    async def _send(self, conn: rawclient.Conn, eid: bytes) -> None:
        rid = conn.new_id()
        self.in_flight[rid] = eid
        self.ledger.sends += 1
        mailbox = self.ledger.target[eid]
        token = next(t.token for t in self.targets if t.mailbox == mailbox)
        await conn.send(self.frame(rid, eid, mailbox, token))
        await trio.sleep(1 / self.rate)

    def frame(self, rid: int, eid: bytes, mailbox: bytes, token: bytes) -> object:
        """The request that sends ``eid`` (a ``Send`` to a mailbox of the same domain)."""
        return Send(rid, mailbox, eid, token, TTL, rawclient.stream_body(eid))

    async def _replies(self, conn: rawclient.Conn, slots: trio.Semaphore) -> None:
        while True:
            frame = await conn.reply(REPLY_WAIT)
            eid = self.in_flight.pop(getattr(frame, "id", -1), None)
            if eid is None:
                raise AssertionError(f"a reply to no request in flight: {frame}")
            slots.release()
            if isinstance(frame, Sent) and frame.eid == eid:
                self.ledger.acknowledged(eid)
            elif isinstance(frame, Error) and frame.code in (*RETRYABLE, LIMIT_RATE):
                self.ledger.errors[frame.code] += 1
                self.again.append(eid)
                await trio.sleep(max(RETRY_PAUSE, frame.retry_after / 1000))
            else:
                raise AssertionError(f"send refused: {frame}")


# --- receivers ------------------------------------------------------------------------------


async def receive(
    acct: rawclient.Account,
    urls: Sequence[str],
    ledger: Ledger,
    *,
    first_url: int = 0,
    connected: list[int] | None = None,
) -> None:
    """Receive (and ack) until cancelled, on ``urls[first_url]``, moving to the next replica
    whenever the connection fails or is superseded. ``connected`` gets the index of the
    replica it is logged in on (last one last)."""
    at = first_url
    while True:
        try:
            async with rawclient.connect(urls[at % len(urls)]) as conn:
                await _login(conn, acct)
                if connected is not None:
                    connected.append(at % len(urls))
                await _receive_on(conn, acct, ledger)
        except BaseException as exc:
            if not _network_failure(exc):
                raise
        ledger.reconnects += 1
        at += 1
        await trio.sleep(RETRY_PAUSE)


async def _receive_on(conn: rawclient.Conn, acct: rawclient.Account, ledger: Ledger) -> None:
    while True:
        frame = conn.pushes.pop(0) if conn.pushes else await conn.next_frame(1e6)
        if not isinstance(frame, Deliver):
            continue
        for env in frame.envelopes:
            ledger.pushed(acct.mailbox, env.eid, env.body)
        eids = tuple(env.eid for env in frame.envelopes)
        answer = await conn.call(Ack(conn.new_id(), eids), REPLY_WAIT)
        if not isinstance(answer, Error):
            ledger.confirmed(eids)
        elif answer.code not in RETRYABLE:
            raise AssertionError(f"ack refused: {answer}")


async def wait_caught_up(ledger: Ledger, within: float, *, idle: float | None = None) -> float:
    """Wait until every acknowledged envelope was delivered: seconds it took. Gives up
    (returns) after ``within`` s, or after ``idle`` s without a new delivery."""
    start = last_change = time.monotonic()
    seen = len(ledger.pushes)
    while not ledger.caught_up():
        now = time.monotonic()
        if len(ledger.pushes) != seen:
            seen, last_change = len(ledger.pushes), now
        if now - start > within or (idle is not None and now - last_change > idle):
            break
        await trio.sleep(0.05)
    return time.monotonic() - start


# --- the soak ------------------------------------------------------------------------------


@dataclass
class Soak:
    ha: SentinelSet
    cluster: Cluster
    ledger: Ledger
    log: list[dict[str, Any]] = field(default_factory=list)
    start: float = field(default_factory=time.monotonic)

    def note(self, **event: Any) -> None:
        event["t"] = round(time.monotonic() - self.start, 2)
        self.log.append(event)
        print(json.dumps(event), flush=True)

    async def kill_replica(self, i: int) -> None:
        await self.cluster.kill(i)
        self.note(fault="kill -9 replica", replica=i)
        await trio.sleep(2.0)
        await self.cluster.restart(i)
        self.note(fault="replica restarted", replica=i)

    async def kill_primary(self) -> None:
        old = await trio.to_thread.run_sync(self.ha.kill_primary)
        killed = time.monotonic()
        self.note(fault="kill -9 redis primary", port=old.port)
        new = await trio.to_thread.run_sync(self.ha.wait_for_new_primary, old.port)
        self.note(fault="sentinel promoted", port=new, after_s=round(time.monotonic() - killed, 2))
        old.replica_of = new
        await trio.to_thread.run_sync(old.start)  # as a replica of the new primary, synced
        self.note(fault="old primary back as replica", port=old.port)


async def soak(
    base: Path, seconds: float, durability: str, replicas: int, period: float
) -> dict[str, Any]:
    ha = SentinelSet(base / "ha")
    with ha:
        env = redis_env(sentinels=ha.sentinels, durability=durability)
        cluster = Cluster(base / "nodes", replicas, env)
        try:
            await cluster.start()
            return await _soak_load(Soak(ha, cluster, Ledger()), seconds, period)
        finally:
            cluster.close()


async def _soak_load(s: Soak, seconds: float, period: float) -> dict[str, Any]:
    urls = s.cluster.urls
    names = [f"s{i}" for i in range(4)] + [f"r{i}" for i in range(4)]
    accts = await enroll(s.cluster.env, urls, names)
    senders = [
        Sender(a, accts[4:], urls, s.ledger, rate=40.0, first_url=i)
        for i, a in enumerate(accts[:4])
    ]
    start = time.monotonic()
    faults = 0
    async with trio.open_nursery() as receivers:
        for i, acct in enumerate(accts[4:]):
            receivers.start_soon(functools.partial(receive, acct, urls, s.ledger, first_url=i))
        async with trio.open_nursery() as load:
            for sender in senders:
                load.start_soon(sender.run)
            while time.monotonic() - start + period < seconds:
                await trio.sleep(period)
                if faults % 2 == 0:
                    await s.kill_replica((faults // 2) % len(urls))
                else:
                    await s.kill_primary()
                faults += 1
            await trio.sleep(max(0.0, seconds - (time.monotonic() - start)))
            for sender in senders:
                sender.stop()
        elapsed = time.monotonic() - start  # sending time (the last sends completed)
        caught = await wait_caught_up(s.ledger, 60.0, idle=15.0)
        receivers.cancel_scope.cancel()
    print(s.ledger.table("chaos checker"), flush=True)
    result: dict[str, Any] = {"seconds": round(elapsed, 1), "faults": faults}
    result.update(s.ledger.summary())
    result["catch_up_s"] = round(caught, 2)
    result["node_errors_logged"] = len(s.cluster.errors())
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.resilience.chaos", description=__doc__)
    default_s = float(os.environ.get("CHAOS_SECONDS") or 180)
    parser.add_argument("--seconds", type=float, default=default_s)
    parser.add_argument("--durability", choices=("replicated", "primary"), default="replicated")
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--period", type=float, default=12.0, help="seconds between faults")
    parser.add_argument("--json", type=Path, help="also write the result here")
    parser.add_argument("--keep", type=Path, help="work directory to keep (logs)")
    args = parser.parse_args(argv)
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
        base = args.keep
        result = trio.run(soak, base, args.seconds, args.durability, args.replicas, args.period)
    else:
        import tempfile

        with tempfile.TemporaryDirectory(prefix="sealrelay-chaos-") as tmp:
            result = trio.run(
                soak, Path(tmp), args.seconds, args.durability, args.replicas, args.period
            )
    result["durability"] = args.durability
    print(json.dumps(result), flush=True)
    print(_table(result), flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    failed = result["duplicated"] or result["bad"] or result["misrouted"] or result["unknown"]
    if args.durability == "replicated":
        failed = failed or result["lost"]
    return 1 if failed else 0


def _table(result: Mapping[str, Any]) -> str:
    keys = ("seconds", "faults", "acknowledged", "delivered", "lost", "duplicated", "redelivered")
    head = " ".join(f"{k:>12}" for k in keys)
    row = " ".join(f"{result[k]!s:>12}" for k in keys)
    return f"chaos ({result.get('durability')}):\n{head}\n{row}"


if __name__ == "__main__":
    sys.exit(main())
