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

    python -m tests.resilience.fedchaos [--seconds N] [--json FILE] [--keep DIR]

(``make chaos-fed``; ``CHAOS_SECONDS`` is the default of ``--seconds``), which repeats
``SOAK_FAULTS`` (a 60 s partition among them) for as long as asked, prints the checker's
table and the resume times, and exits 1 if the run is invalid.
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

import trio

from federation.documents import kem_key
from federation.routing import seal_layer
from tests.integration import rawclient
from tests.integration.fedharness import LocalFederation, metric
from tests.integration.nodeproc import invite
from tests.resilience.chaos import NODE_ENV, TTL, Ledger, Sender, receive, wait_caught_up
from tests.resilience.faultproxy import DOWN, LOOPBACK, UP, TcpProxy
from wire.federation import RoutingLayer, RoutingRecipient
from wire.relay import Forward
from wire.server import ServerKemKey

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
    """The two proxies of the federation link."""

    ab: TcpProxy  # alpha's requests to bravo
    ba: TcpProxy  # bravo's requests to alpha

    def heal(self) -> None:
        self.ab.heal()
        self.ba.heal()

    def apply(self, fault: str) -> None:
        if fault == "partition":
            self.ab.cut()
            self.ba.cut()
        elif fault == "black hole":
            self.ab.black_hole()
            self.ba.black_hole()
        elif fault == "delay 2 s":
            self.ab.delay(2.0)
            self.ba.delay(2.0)
        elif fault == "reset mid-transaction":
            self.ab.reset_after(RESET_UP, UP)  # alpha's transactions cut mid-request
            self.ba.reset_after(RESET_DOWN, DOWN)  # bravo's answered, the answer cut
        elif fault == f"one-way {A}>{B}":  # packets from alpha to bravo pass, not back
            self.ab.one_way(UP)
            self.ba.one_way(DOWN)
        elif fault == f"one-way {B}>{A}":
            self.ab.one_way(DOWN)
            self.ba.one_way(UP)
        else:
            raise ValueError(f"no fault {fault!r}")


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
    fed: LocalFederation
    net: Net


def _point(config: Path, url: str, port: int) -> None:
    """Make ``config``'s peer endpoint ``url`` the proxy on ``port``."""
    text = config.read_text()
    old = f"endpoints = [{json.dumps(url)}]"
    assert old in text, f"no endpoint {url} in {config.name}"
    config.write_text(text.replace(old, f'endpoints = ["http://{LOOPBACK}:{port}"]'))


@contextlib.asynccontextmanager
async def two_domains(base: Path) -> AsyncIterator[World]:
    """alpha and bravo, real node processes, each reaching the other through a proxy."""
    fed = LocalFederation(base / "fed", [A, B], suite=SUITE, env=FED_ENV)
    try:
        async with trio.open_nursery() as nursery:
            ab = await nursery.start(TcpProxy(LOOPBACK, fed.setups[B].port).run)
            ba = await nursery.start(TcpProxy(LOOPBACK, fed.setups[A].port).run)
            _point(fed.setups[A].config, fed.url(B), ab.port)
            _point(fed.setups[B].config, fed.url(A), ba.port)
            async with trio.open_nursery() as starting:
                for domain in (A, B):
                    starting.start_soon(
                        functools.partial(trio.to_thread.run_sync, fed.start, domain)
                    )
            yield World(fed, Net(ab, ba))
            nursery.cancel_scope.cancel()
    finally:
        await trio.to_thread.run_sync(fed.close)


async def _accounts(
    fed: LocalFederation, domain: str, names: Sequence[str]
) -> list[rawclient.Account]:
    accounts = []
    for name in names:
        code = await trio.to_thread.run_sync(invite, fed.setups[domain].data_dir, name)
        accounts.append(await rawclient.register(fed.url(domain), name, code))
    return accounts


async def _kem(fed: LocalFederation, domain: str) -> ServerKemKey:
    return kem_key(await fed.document(domain), int(time.time() * 1000))


async def senders(
    world: World, ledger: Ledger, rate: float
) -> tuple[list[Sender], list[Callable[[], Awaitable[None]]]]:
    """One sender per domain (to two receivers on the other) and the receivers' tasks."""
    fed = world.fed
    people: dict[str, list[rawclient.Account]] = {}

    async def enroll(domain: str, tag: str) -> None:
        people[domain] = await _accounts(fed, domain, [f"{tag}s", f"{tag}r0", f"{tag}r1"])

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
                [fed.url(here)],
                ledger,
                rate=rate,
                link=f"{here}>{there}",
                destination=there,
                kem=await _kem(fed, there),
            )
        )
        for acct in people[here][1:]:
            tasks.append(functools.partial(receive, acct, [fed.url(here)], ledger))
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
    stored = {d: int(metric(await world.fed.metrics(d), ACCEPTED)) for d in (A, B)}
    return Report(ledger, faults, caught, seconds, stored)


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


async def soak(base: Path, seconds: float) -> Report:
    async with two_domains(base) as world:
        return await run(world, for_seconds(seconds, SOAK_FAULTS))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.resilience.fedchaos", description=__doc__
    )
    parser.add_argument(
        "--seconds", type=float, default=float(os.environ.get("CHAOS_SECONDS") or 300)
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
        report = trio.run(soak, base, args.seconds)
    print(report.table(), flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(report.summary(), indent=2) + "\n")
    for problem in report.problems():
        print("INVALID:", problem, flush=True)
    return 1 if report.problems() else 0


if __name__ == "__main__":
    sys.exit(main())
