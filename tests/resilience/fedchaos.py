"""Faults between two agencies (issue 19): two domains, each a real node process, with
the fault proxy (``tests.resilience.faultproxy``) on the federation link between them.

Each domain's configuration points its peer's endpoint at a proxy: ``ab`` carries alpha's
requests to bravo (and their answers), ``ba`` bravo's to alpha. A sender on each domain
streams envelopes to two receivers on the other (``Forward`` frames with a routing layer
sealed to the destination's KEM key; the home node acknowledges once it queued it
durably). Receivers report every push to the delivery checker (``tests.resilience.checker``).

While the senders send, the schedule sets one fault at a time, holds it, heals the link,
and measures, per direction, the time from the heal to the first delivery after it (the
*resume* time; the requirement is at most ``RESUME_LIMIT`` s). At the end the senders stop
and the receivers get a bounded time to catch up. The run is valid when the checker is
(nothing lost, duplicated, unexpected, misrouted or corrupt) and every fault resumed in
time. The short round is ``tests/resilience/test_federation_faults.py``; the soak is

    python -m tests.resilience.fedchaos [--seconds N] [--replicas N] [--json FILE]
                                        [--keep DIR]

(``make chaos-fed``; ``CHAOS_SECONDS`` is the default of ``--seconds``), which repeats
``SOAK_FAULTS`` (a 60 s partition among them) for as long as asked, prints the checker's
table and the resume times, and exits 1 if the run is invalid. ``--replicas 2`` runs
each domain as two node processes on a Redis of its own, reached through a proxy too, and
adds a cut between each domain and its Redis to the faults.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import httpx
import trio

from federation.documents import kem_key
from federation.routing import seal_layer
from tests.integration import rawclient
from tests.integration.fedharness import DOCUMENT_PATH, LocalFederation, metric
from tests.integration.nodeproc import invite
from tests.resilience.chaos import NODE_ENV, TTL, Ledger, Sender, receive, wait_caught_up
from tests.resilience.faultproxy import DOWN, LOOPBACK, UP, TcpProxy
from wire import decode
from wire.federation import RoutingLayer, RoutingRecipient
from wire.relay import Forward
from wire.server import ServerKemKey, ServerKeyDocument

A: Final = "alpha.test"
B: Final = "bravo.test"
SUITE: Final = "xwing"
LINKS: Final = (f"{A}>{B}", f"{B}>{A}")
ACCEPTED: Final = "sealrelay_envelopes_accepted_total"
RESUME_LIMIT: Final = 10.0  # seconds from a heal to the first delivery over each link
RESUME_WAIT: Final = 40.0  # how long a run waits for it before giving up on that fault
RESET_UP: Final = 3000  # bytes of a request before the proxy resets it (mid-transaction)
RESET_DOWN: Final = 100  # bytes of an answer before the proxy resets it
FED_ENV: Final = {k: v for k, v in NODE_ENV.items() if not k.startswith("SEALRELAY_STORE")}
SHORT_FAULTS: Final = (
    ("partition", 4.0),
    ("black hole", 4.0),
    ("delay 2 s", 4.0),
    ("reset mid-transaction", 4.0),
    (f"one-way {A}>{B}", 4.0),
    (f"one-way {B}>{A}", 4.0),
)
SOAK_FAULTS: Final = (
    ("partition", 60.0),
    ("black hole", 30.0),
    ("delay 2 s", 20.0),
    ("reset mid-transaction", 20.0),
    (f"one-way {A}>{B}", 30.0),
    (f"one-way {B}>{A}", 30.0),
)


@dataclass
class Net:
    """The proxies of the federation link (one per endpoint of the peer), and of each
    domain's link to its Redis when it runs on one."""

    ab: list[TcpProxy]  # alpha's requests to bravo's endpoints
    ba: list[TcpProxy]  # bravo's requests to alpha's endpoints
    redis: dict[str, TcpProxy] = field(default_factory=dict)

    def heal(self) -> None:
        for proxy in (*self.ab, *self.ba, *self.redis.values()):
            proxy.heal()

    def apply(self, fault: str) -> None:
        if fault.startswith("redis cut "):
            self.redis[fault.removeprefix("redis cut ")].cut()
            return
        up, down = _FAULTS[fault]
        for proxy in self.ab:
            up(proxy)
        for proxy in self.ba:
            down(proxy)


def _one_way(passing: str) -> Callable[[TcpProxy], None]:
    return lambda proxy: proxy.one_way(passing)


_FAULTS: Final[dict[str, tuple[Callable[[TcpProxy], None], Callable[[TcpProxy], None]]]] = {
    # fault: (what the proxies of alpha's requests do, what those of bravo's do)
    "partition": (TcpProxy.cut, TcpProxy.cut),
    "black hole": (TcpProxy.black_hole, TcpProxy.black_hole),
    "delay 2 s": (lambda p: p.delay(2.0), lambda p: p.delay(2.0)),
    # alpha's transactions cut mid-request; bravo's answered, and the answer cut
    "reset mid-transaction": (
        lambda p: p.reset_after(RESET_UP, UP),
        lambda p: p.reset_after(RESET_DOWN, DOWN),
    ),
    # packets from alpha to bravo pass, not those back (and the other way round)
    f"one-way {A}>{B}": (_one_way(UP), _one_way(DOWN)),
    f"one-way {B}>{A}": (_one_way(DOWN), _one_way(UP)),
}


@dataclass
class ForwardSender(Sender):
    """A :class:`~tests.resilience.chaos.Sender` whose envelopes go to another domain."""

    destination: str = ""
    kem: ServerKemKey | None = None

    def frame(self, rid: int, eid: bytes, mailbox: bytes, token: bytes) -> object:
        assert self.kem is not None
        layer = RoutingLayer(
            destination=self.destination,
            eid=eid,
            ttl=TTL,
            recipients=(RoutingRecipient(mailbox=mailbox, token=token),),
            body=rawclient.stream_body(eid),
        )
        sealed = seal_layer(self.kem.suite, self.kem.id, self.kem.public, layer)
        return Forward(rid, self.destination, eid, TTL, sealed)


@dataclass
class Fault:
    name: str
    seconds: float
    resume: dict[str, float | None] = field(default_factory=dict)  # link -> s after heal

    def in_time(self) -> bool:
        return all(t is not None and t <= RESUME_LIMIT for t in self.resume.values())


@dataclass
class Report:
    ledger: Ledger
    faults: list[Fault]
    catch_up_s: float
    seconds: float
    stored: dict[str, int] = field(default_factory=dict)  # domain -> envelopes it stored

    def problems(self) -> list[str]:
        late = [f"{f.name}: resume {f.resume}" for f in self.faults if not f.in_time()]
        return self.ledger.problems() + late + self.stored_twice()

    def stored_twice(self) -> list[str]:
        """A node that stored an envelope twice (its clients would drop the second copy by
        eid, so the checker cannot see it): every envelope a domain stored came from the
        other, so its count is what its receivers got."""
        got = Counter(self.ledger.link[e].split(">")[1] for e in self.ledger.delivered_at)
        return [
            f"{domain} stored {n} envelopes, its receivers got {got[domain]}"
            for domain, n in self.stored.items()
            if n != got[domain]
        ]

    def table(self) -> str:
        lines = [self.ledger.table("federation faults checker"), ""]
        lines.append(f"{'fault':<28}{'held s':>8}" + "".join(f"{k:>26}" for k in LINKS))
        for f in self.faults:
            cells = "".join(f"{_resume_cell(f.resume.get(k)):>26}" for k in LINKS)
            lines.append(f"{f.name:<28}{f.seconds:>8.0f}{cells}")
        lines.append(
            f"resume: seconds from the heal to the next delivery (limit {RESUME_LIMIT:.0f} s)"
        )
        lines.append(f"sent for {self.seconds:.0f} s; caught up {self.catch_up_s:.1f} s after")
        lines.append(f"stored by each node (sealrelay_envelopes_accepted_total): {self.stored}")
        return "\n".join(lines)

    def summary(self) -> dict[str, Any]:
        return {
            **self.ledger.summary(),
            "seconds": round(self.seconds, 1),
            "catch_up_s": round(self.catch_up_s, 2),
            "stored": self.stored,
            "resume_s": {f.name: f.resume for f in self.faults},
            "valid": not self.problems(),
        }


def _resume_cell(value: float | None) -> str:
    return "never" if value is None else f"{value:.2f}"


# --- the two domains ---------------------------------------------------------------------


@dataclass
class World:
    """Two domains as the run sees them: each one's client URLs (one per replica), a way
    to invite accounts on it, and the proxies."""

    urls: dict[str, list[str]]
    invite: Callable[[str, Sequence[str]], Awaitable[list[str]]]  # domain, names -> codes
    net: Net


def point(config: Path, urls: Sequence[str], ports: Sequence[int]) -> None:
    """Make the peer endpoints ``urls`` in ``config`` the proxies on ``ports``."""
    text = config.read_text()
    old = f"endpoints = {json.dumps(list(urls))}"
    assert old in text, f"no endpoints {urls} in {config.name}"
    new = json.dumps([f"http://{LOOPBACK}:{port}" for port in ports])
    config.write_text(text.replace(old, f"endpoints = {new}"))


@contextlib.asynccontextmanager
async def two_domains(base: Path) -> AsyncIterator[World]:
    """alpha and bravo, one real node process each on SQLite, each reaching the other
    through a proxy."""
    fed = LocalFederation(base / "fed", [A, B], suite=SUITE, env=FED_ENV)

    async def invite_all(domain: str, names: Sequence[str]) -> list[str]:
        data = fed.setups[domain].data_dir
        return [await trio.to_thread.run_sync(invite, data, name) for name in names]

    try:
        async with trio.open_nursery() as nursery:
            ab = await nursery.start(TcpProxy(LOOPBACK, fed.setups[B].port).run)
            ba = await nursery.start(TcpProxy(LOOPBACK, fed.setups[A].port).run)
            point(fed.setups[A].config, [fed.url(B)], [ab.port])
            point(fed.setups[B].config, [fed.url(A)], [ba.port])
            async with trio.open_nursery() as starting:
                for domain in (A, B):
                    starting.start_soon(
                        functools.partial(trio.to_thread.run_sync, fed.start, domain)
                    )
            urls = {d: [fed.url(d)] for d in (A, B)}
            yield World(urls, invite_all, Net([ab], [ba]))
            nursery.cancel_scope.cancel()
    finally:
        await trio.to_thread.run_sync(fed.close)


async def _accounts(world: World, domain: str, names: Sequence[str]) -> list[rawclient.Account]:
    codes = await world.invite(domain, names)
    urls = world.urls[domain]
    return [
        await rawclient.register(urls[i % len(urls)], name, code)
        for i, (name, code) in enumerate(zip(names, codes, strict=True))
    ]


async def _get(url: str) -> bytes:
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(url)
    response.raise_for_status()
    return response.content


async def _kem(world: World, domain: str) -> ServerKemKey:
    raw = await _get(world.urls[domain][0] + DOCUMENT_PATH)
    return kem_key(decode(raw, ServerKeyDocument), int(time.time() * 1000))


async def stored(world: World, domain: str) -> int:
    """Envelopes the domain's nodes stored (``sealrelay_envelopes_accepted_total``)."""
    texts = [(await _get(url + "/metrics")).decode() for url in world.urls[domain]]
    return sum(int(metric(text, ACCEPTED)) for text in texts)


async def senders(
    world: World, ledger: Ledger, rate: float
) -> tuple[list[Sender], list[Callable[[], Awaitable[None]]]]:
    """One sender per domain (to two receivers on the other) and the receivers' tasks."""
    people: dict[str, list[rawclient.Account]] = {}

    async def enroll(domain: str, tag: str) -> None:
        people[domain] = await _accounts(world, domain, [f"{tag}s", f"{tag}r0", f"{tag}r1"])

    async with trio.open_nursery() as nursery:
        nursery.start_soon(enroll, A, "a")
        nursery.start_soon(enroll, B, "b")
    out: list[Sender] = []
    tasks: list[Callable[[], Awaitable[None]]] = []
    for here, there in ((A, B), (B, A)):
        sender, targets = people[here][0], people[there][1:]
        out.append(
            ForwardSender(
                sender,
                targets,
                world.urls[here],
                ledger,
                rate=rate,
                link=f"{here}>{there}",
                destination=there,
                kem=await _kem(world, there),
            )
        )
        for acct in people[here][1:]:
            tasks.append(functools.partial(receive, acct, world.urls[here], ledger))
    return out, tasks


# --- the schedule --------------------------------------------------------------------------


async def first_delivery(ledger: Ledger, after: float, within: float) -> dict[str, float | None]:
    """Per link, seconds from ``after`` to its first delivery after it (``None``: none
    within ``within`` s)."""
    found: dict[str, float | None] = dict.fromkeys(LINKS)
    with trio.move_on_after(within):
        while any(v is None for v in found.values()):
            for link in LINKS:
                at = ledger.resumed(link, after)
                if at is not None and found[link] is None:
                    found[link] = round(at - after, 2)
            await trio.sleep(0.05)
    return found


async def one_fault(net: Net, ledger: Ledger, name: str, seconds: float) -> Fault:
    net.apply(name)
    print(json.dumps({"fault": name, "for_s": seconds}), flush=True)
    await trio.sleep(seconds)
    net.heal()
    healed = time.monotonic()
    fault = Fault(name, seconds, await first_delivery(ledger, healed, RESUME_WAIT))
    print(json.dumps({"healed": name, "resume_s": fault.resume}), flush=True)
    return fault


async def run(
    world: World,
    schedule: Callable[[float], tuple[str, float] | None],
    *,
    rate: float = 10.0,
    settle: float = 1.0,
    catch_up: float = 60.0,
) -> Report:
    """Traffic both ways while ``schedule(elapsed)`` names the next fault (``None``: stop)."""
    ledger = Ledger()
    out, tasks = await senders(world, ledger, rate)
    faults: list[Fault] = []
    async with trio.open_nursery() as receivers:
        for task in tasks:
            receivers.start_soon(task)
        start = time.monotonic()
        async with trio.open_nursery() as load:
            for sender in out:
                load.start_soon(sender.run)
            warm = await first_delivery(ledger, start, RESUME_WAIT)
            assert all(v is not None for v in warm.values()), f"no traffic at all: {warm}"
            while (step := schedule(time.monotonic() - start)) is not None:
                faults.append(await one_fault(world.net, ledger, *step))
                await trio.sleep(settle)
            for sender in out:
                sender.stop()
        seconds = time.monotonic() - start
        caught = await wait_caught_up(ledger, catch_up, idle=catch_up / 2)
        receivers.cancel_scope.cancel()
    counts = {d: await stored(world, d) for d in (A, B)}
    return Report(ledger, faults, caught, seconds, counts)


def each_once(faults: Sequence[tuple[str, float]]) -> Callable[[float], tuple[str, float] | None]:
    steps = iter(faults)
    return lambda _elapsed: next(steps, None)


def for_seconds(
    total: float, faults: Sequence[tuple[str, float]]
) -> Callable[[float], tuple[str, float] | None]:
    """``faults`` in turn, again and again, while the next one ends within ``total`` s."""
    count = 0

    def step(elapsed: float) -> tuple[str, float] | None:
        nonlocal count
        name, seconds = faults[count % len(faults)]
        if elapsed + seconds + RESUME_LIMIT > total:
            return None
        count += 1
        return name, seconds

    return step


async def soak(base: Path, seconds: float, replicas: int) -> Report:
    """``SOAK_FAULTS`` in turn for ``seconds``: on SQLite, or with ``replicas`` > 1 node
    processes per domain on a Redis each (``tests.resilience.fedcluster``, which adds
    cuts between each domain and its Redis)."""
    if replicas <= 1:
        async with two_domains(base) as world:
            return await run(world, for_seconds(seconds, SOAK_FAULTS))
    from tests.resilience import fedcluster  # here: it imports this module

    async with fedcluster.two_clusters(base, replicas) as world:
        faults = SOAK_FAULTS + fedcluster.redis_faults()
        return await run(world, for_seconds(seconds, faults))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.resilience.fedchaos", description=__doc__
    )
    parser.add_argument(
        "--seconds", type=float, default=float(os.environ.get("CHAOS_SECONDS") or 300)
    )
    parser.add_argument(
        "--replicas", type=int, default=1, help="node processes per domain (> 1: on Redis)"
    )
    parser.add_argument("--json", type=Path, help="also write the result here")
    parser.add_argument("--keep", type=Path, help="work directory to keep (node logs)")
    args = parser.parse_args(argv)
    with contextlib.ExitStack() as stack:
        if args.keep is not None:
            args.keep.mkdir(parents=True, exist_ok=True)
        base = args.keep or Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="sealrelay-fed-"))
        )
        report = trio.run(soak, base, args.seconds, args.replicas)
    print(report.table(), flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(report.summary(), indent=2) + "\n")
    for problem in report.problems():
        print("INVALID:", problem, flush=True)
    return 1 if report.problems() else 0


if __name__ == "__main__":
    sys.exit(main())
