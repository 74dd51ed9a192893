"""1:1 calls across two domains, with real node processes on loopback UDP (issue 17, "Done
when"; DESIGN section 9; docs/calls.md).

alpha (A, the caller's domain) and bravo (B, the callee's) run as ``sealrelay node serve``
processes with ``udp_listen`` for the whole module (``callharness.CallWorld``). Each test
registers its own two accounts. Calls run through ``sealrelay client call`` and ``answer``
as separate processes, or, where the test must know the call secret or shape the media,
with the caller in this process through the Python API (``client.calls.control``).

1. a video call A -> B replaying the Opus + VP8 fixture (5 s, and 60 s marked slow): every
   frame that arrives decrypts and matches its digest; loss and lateness are reported;
2. UDP unavailable: forced ``--transport websocket``, and a client whose UDP is blocked
   falls back to the WebSocket by itself; the call completes;
3. a tampered datagram, a replayed one and one under another connection's sender id are
   each dropped and counted (the callee's ``decrypt_failures`` and ``replays``, node A's
   ``sealrelay_call_dropped_total{reason="stream_not_bound"}``) and the call goes on;
4. neither node's logs, stdout, metrics or files hold the other side's address, and the
   callee's node never sees the caller's IP (each client on a loopback address of its own);
5. while the call runs, neither node process's memory holds the call secret or any key
   derived from it, while the same scan finds the leg ids the nodes must hold;
6. a callee offline gives ``call.offline``, one not answering ``call.missed``, both within
   the ring timeout (the CLI's ``$SEALRELAY_RING_TIMEOUT`` knob); an unaccepted identity
   change refuses the call (``call.untrusted_identity``).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import pytest
import trio

from client import persist
from client.app import Client
from client.calls.control import QUIC_FALLBACK_AFTER, CallOutcome, MediaOptions, place_call
from client.calls.keys import CallSecret
from client.calls.signal_events import StartMedia
from client.records import DeviceRecord, TrustRecord
from client.store.base import NS_ACCOUNT, NS_IDENTITIES
from client.store.sqlite import SqliteStore
from tests.integration.callharness import (
    A,
    B,
    CallUser,
    CallWorld,
    Injection,
    Outcome,
    RecordingLegs,
    address_forms,
    check_media_keys,
    check_summary,
    distinct_loopback,
    finish,
    holders,
    ip_forms,
    leaks_in_text,
    media_keys,
    scan_memory,
    stop,
)
from tests.integration.fedharness import metric, wait_until
from wire import decode, encode

SHORT: Final = 5
FALLBACK_SECONDS: Final = 10
PRIVACY_SECONDS: Final = 8
MEMORY_SECONDS: Final = 12
"""Seconds of the call whose nodes are scanned: the scans must end while it runs."""
LONG: Final = 60
RING: Final = 6.0
"""Seconds: the ring timeout of the offline and missed calls."""
CALLEE_EXTRA: Final = 30
"""Seconds the callee would go on beyond the caller: the caller hangs up first."""
ANSWER_WAIT: Final = "90"
FALLBACK_LEAD: Final = QUIC_FALLBACK_AFTER + 1.5
"""Seconds of the peer's media a side that falls back to the WebSocket cannot receive: QUIC's
time to give up, then the WebSocket attach."""
LOSS_BOUND: Final = 0.10
"""Share of the frames sent that a receiver may fail to play (lost or late) on a loaded,
shared machine; on an idle one a 20 s call across domains plays every one of them."""
UNACCOUNTED_BOUND: Final = 0.05
"""Share of the frames sent that a receiver may leave out of received, lost and late (the
last frames before the hang-up, which no later frame shows missing)."""


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CallWorld]:
    world = CallWorld.started(tmp_path_factory.mktemp("fedcalls"))
    try:
        yield world
    finally:
        world.close()


def _pair(world: CallWorld, tag: str) -> tuple[CallUser, CallUser]:
    return world.pair(tag)


def _answer(callee: CallUser, seconds: float, **net: Any) -> Any:
    return callee.start(
        "answer", "--wait", ANSWER_WAIT, "--seconds", f"{seconds + CALLEE_EXTRA:g}", **net
    )


def _cli_call(
    caller: CallUser, callee: CallUser, seconds: float, *extra: str, **nets: Any
) -> tuple[Outcome, Outcome]:
    """A CLI call ``caller`` -> ``callee`` of ``seconds``: (caller's, callee's) outcome.
    ``nets``: ``caller_net`` / ``callee_net``, netshim keywords for either side."""
    answering = _answer(callee, seconds, **nets.get("callee_net", {}))
    calling = caller.start(
        "call", callee.address, "--seconds", f"{seconds:g}", *extra, **nets.get("caller_net", {})
    )
    try:
        return finish(calling), finish(answering)
    finally:
        stop(calling)
        stop(answering)


def _check_delivery(sent: dict[str, Any], received: dict[str, Any], *, lead: float = 0.0) -> None:
    """The receiver accounts for the sender's frames: every one it did not play is reported
    lost or late, and it played close to all of them but for the first ``lead`` seconds of
    the sender's media (sent before the receiver's own media connection was bound: a node
    forwards to a bound leg only)."""
    frames = sent["frames_sent"]
    assert frames > 0
    got = received["frames_received"]
    expected = frames * (1 - lead / float(sent["seconds"]))
    assert got >= expected * (1 - LOSS_BOUND), (sent, received)
    accounted = got + received["frames_lost"] + received["frames_late"]
    assert accounted >= frames * (1 - UNACCOUNTED_BOUND), (sent, received)
    assert received["frames_lost"] >= 0
    assert received["frames_late"] >= 0
    for key in ("replays", "malformed"):
        assert received.get(key) == 0, (key, received)


# --- 1. a video call across two domains -----------------------------------------------------------


def _video_call(world: CallWorld, tag: str, seconds: int) -> None:
    caller, callee = _pair(world, tag)
    started = time.monotonic()
    by_caller, by_callee = _cli_call(caller, callee, seconds, "--video")
    elapsed = time.monotonic() - started
    assert by_caller.events()[:2] == ["ringing", "answered"], by_caller.lines
    assert by_caller.lines[0]["to"] == callee.address
    assert by_callee.lines[0]["from"] == caller.address
    assert by_callee.lines[0]["video"] is True
    sent, received = check_summary(by_caller, "quic"), check_summary(by_callee, "quic")
    assert sent["seconds"] >= seconds
    _check_delivery(sent, received)  # caller -> callee
    _check_delivery(received, sent)  # and back: the callee's frames reach the caller
    assert received["latency_ms_p50"] is not None
    assert received["latency_ms_p99"] >= received["latency_ms_p50"]
    assert elapsed < seconds + 60


def test_a_short_video_call_across_domains(world: CallWorld) -> None:
    _video_call(world, "short", SHORT)


@pytest.mark.long  # `make resilience`; the 5 s call above runs in `make test`
def test_a_minute_long_video_call_across_domains(world: CallWorld) -> None:
    _video_call(world, "long", LONG)


# --- 2. UDP unavailable ---------------------------------------------------------------------------


def test_a_call_without_udp_goes_over_the_websocket(world: CallWorld) -> None:
    """The caller asks for the WebSocket; the callee's UDP is blocked and it falls back
    (and misses the caller's first seconds meanwhile: counted as lost)."""
    caller, callee = _pair(world, "noudp")
    by_caller, by_callee = _cli_call(
        caller,
        callee,
        FALLBACK_SECONDS,
        "--video",
        "--transport",
        "websocket",
        callee_net={"block_udp": True},
    )
    sent = check_summary(by_caller, "websocket")
    received = check_summary(by_callee, "websocket")
    _check_delivery(sent, received, lead=FALLBACK_LEAD)
    _check_delivery(received, sent)


def test_a_caller_whose_udp_is_blocked_falls_back_by_itself(world: CallWorld) -> None:
    caller, callee = _pair(world, "fallback")
    by_caller, by_callee = _cli_call(
        caller, callee, FALLBACK_SECONDS, "--video", caller_net={"block_udp": True}
    )
    sent = check_summary(by_caller, "websocket")
    received = check_summary(by_callee, "quic")
    _check_delivery(sent, received)
    _check_delivery(received, sent, lead=FALLBACK_LEAD)


# --- in-process caller ----------------------------------------------------------------------------


@dataclass
class InProcessCall:
    """A call placed by ``caller`` in this process, answered by ``callee``'s CLI."""

    legs: RecordingLegs | None = None
    secret: CallSecret | None = None
    callee_leg: bytes | None = None
    caller: CallOutcome | None = None
    callee: Outcome | None = None
    lines: list[dict[str, Any]] = field(default_factory=list)


During = Callable[[Client, InProcessCall], Awaitable[None]]


async def _in_process_call(
    caller: CallUser,
    callee: CallUser,
    seconds: float,
    *,
    injection: Injection | None = None,
    during: During | None = None,
    before: Callable[[Client], Awaitable[Injection | None]] | None = None,
) -> InProcessCall:
    """Call ``callee`` (a CLI ``answer``) from this process for ``seconds`` of video; run
    ``during`` once media flows. ``before`` may make the injection once online."""
    state = InProcessCall()
    answering = _answer(callee, seconds)
    try:
        with caller.client() as client, trio.fail_after(seconds + 120):
            async with client.online():
                if before is not None:
                    injection = await before(client)
                legs = RecordingLegs(client, injection)
                state.legs = legs
                events = client.calls.subscribe()
                options = MediaOptions(seconds=seconds)

                watching = trio.CancelScope()

                async def watch() -> None:
                    with watching, events:
                        async for event in events:
                            if isinstance(event, StartMedia):
                                state.secret, state.callee_leg = event.secret, event.leg.leg_id
                                return

                async def call() -> None:
                    state.caller = await place_call(
                        client.calls,
                        legs,
                        callee.address,
                        video=True,
                        options=options,
                        emit=state.lines.append,
                    )
                    watching.cancel()  # the call is over: no StartMedia is coming any more

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(watch)
                    nursery.start_soon(call)
                    if during is not None:
                        await _media_flowing(legs)
                        await during(client, state)
                with trio.move_on_after(5):
                    await client.calls.flush()
        state.callee = await trio.to_thread.run_sync(finish, answering)
    finally:
        stop(answering)
    return state


async def _media_flowing(legs: RecordingLegs, within: float = 60.0) -> None:
    await wait_until(
        lambda: bool(legs.transports) and legs.transports[-1].sent >= 100, within, "media"
    )


# --- 3. injected datagrams ------------------------------------------------------------------------


async def test_tampered_replayed_and_foreign_datagrams_are_dropped_and_counted(
    world: CallWorld,
) -> None:
    caller, callee = _pair(world, "inject")
    before_metrics = await world.fed.metrics(A)

    async def another_connection(client: Client) -> Injection:
        """A second leg of the caller's own, bound over its own QUIC connection: its sender
        id is another connection's stream id on node A."""
        grant = await client.leg_allocate()
        transport, sender = await client.media_quic(grant)
        del transport  # stays bound until the client goes offline
        return Injection(after=150, tamper=True, replay=True, foreign_sender=sender)

    state = await _in_process_call(caller, callee, 8, before=another_connection)
    after_metrics = await world.fed.metrics(A)

    assert state.legs is not None
    assert state.legs.injection is not None
    assert set(state.legs.injection.done) == {"tamper", "replay", "foreign"}
    assert state.caller is not None
    assert state.caller.ok, state.lines
    assert state.callee is not None
    received = state.callee.summary
    assert state.callee.reason == "call.hangup"
    assert received["decrypt_failures"] == 1, received  # the tampered frame
    assert received["replays"] == 1, received  # the frame sent again
    assert received["digest_mismatches"] == 0, received
    dropped = "sealrelay_call_dropped_total"
    grew = metric(after_metrics, dropped, reason="stream_not_bound") - metric(
        before_metrics, dropped, reason="stream_not_bound"
    )
    assert grew == 1, "node A did not drop the datagram under another connection's sender id"
    # The call went on: the callee kept receiving the caller's frames after the injections.
    sent = state.caller.summary
    assert sent is not None
    assert received["frames_received"] >= int(str(sent["frames_sent"])) * (1 - LOSS_BOUND) - 1


# --- 4. who sees what -----------------------------------------------------------------------------


def _stdout_lines(world: CallWorld, domain: str) -> str:
    """What the node printed on stdout so far (its lines queue; the harness keeps them)."""
    node = world.fed.nodes[domain]
    return "".join(line for line in list(node._lines.queue) if line)


async def test_neither_node_holds_the_other_side_and_the_callees_node_not_the_callers_ip(
    world: CallWorld,
) -> None:
    caller, callee = _pair(world, "privacy")
    caller_ip, callee_ip = distinct_loopback(), distinct_loopback()
    ips = {"caller's IP": caller_ip.encode(), "callee's IP": callee_ip.encode()}
    done: list[tuple[Outcome, Outcome]] = []
    in_memory: dict[str, set[str]] = {}
    baseline = {d: await _forwarded(world, d) for d in (A, B)}

    def call() -> None:
        nets = {"caller_net": {"source_ip": caller_ip}, "callee_net": {"source_ip": callee_ip}}
        done.append(_cli_call(caller, callee, PRIVACY_SECONDS, "--video", **nets))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.to_thread.run_sync, call)
        for domain in (A, B):  # media flows through both nodes: look at what they hold
            await _forwarding(world, domain, baseline[domain] + 200)
        for domain in (A, B):
            in_memory[domain] = (
                await trio.to_thread.run_sync(scan_memory, world.pid(domain), ips)
            )[0]
    by_caller, by_callee = done[0]
    check_summary(by_caller, "quic")
    check_summary(by_callee, "quic")
    # Each node saw its own client's address (so the network shim worked and the scan
    # can find one), and the callee's node never the caller's; nor the reverse.
    assert in_memory[A] == {"caller's IP"}, in_memory
    assert in_memory[B] == {"callee's IP"}, in_memory

    metrics = {A: await world.fed.metrics(A), B: await world.fed.metrics(B)}
    for home, own, other, other_ip in (
        (A, caller, callee, callee_ip),
        (B, callee, caller, caller_ip),
    ):
        needles = {**address_forms(other.address), **ip_forms(other_ip)}
        paths = world.node_paths(home)
        assert any(p.name.endswith(".log") for p in paths)
        found = holders(paths, needles)
        assert not any(found.values()), f"{home} keeps {other.address} / {other_ip}: {found}"
        assert not leaks_in_text(metrics[home], needles), f"{home}'s metrics"
        assert not leaks_in_text(_stdout_lines(world, home), needles), f"{home}'s stdout"
        # Control: the same scan finds this node's own user in its files.
        own_found = holders(paths, {"address": own.address.encode()})
        assert own_found["address"], f"{own.address} not found in {home}'s files"


async def _forwarded(world: CallWorld, domain: str) -> float:
    return metric(await world.fed.metrics(domain), "sealrelay_call_forwarded_datagrams_total")


async def _forwarding(world: CallWorld, domain: str, beyond: float, within: float = 90) -> None:
    """Wait until ``domain``'s node forwarded more than ``beyond`` datagrams in all."""
    with trio.fail_after(within):
        while True:
            if await _forwarded(world, domain) > beyond:
                return
            await trio.sleep(0.2)


# --- 5. node memory -------------------------------------------------------------------------------


async def test_no_node_process_holds_the_call_secret_or_a_media_key(world: CallWorld) -> None:
    caller, callee = _pair(world, "memory")
    scans: dict[str, tuple[set[str], int]] = {}
    controls: dict[str, dict[str, bytes]] = {}

    async def scan(_: Client, state: InProcessCall) -> None:
        await trio.sleep(1.0)
        assert state.secret is not None
        assert state.callee_leg is not None
        assert state.legs is not None
        assert state.legs.grants
        needles = media_keys(state.secret)
        controls[A] = {"caller's leg id": state.legs.grants[-1].leg_id}
        controls[B] = {"callee's leg id": state.callee_leg}
        for domain in (A, B):
            pid = world.pid(domain)
            scans[domain] = await trio.to_thread.run_sync(
                scan_memory, pid, {**needles, **controls[domain]}
            )
        assert state.caller is None, "the call ended before the scans did"

    state = await _in_process_call(caller, callee, MEMORY_SECONDS, during=scan)
    assert state.caller is not None
    assert state.caller.ok, state.lines
    assert state.secret is not None
    check_media_keys(state.secret, media_keys(state.secret))
    secret_names = set(media_keys(state.secret))
    for domain in (A, B):
        found, scanned = scans[domain]
        assert scanned > 1 << 20, f"{domain}: only {scanned} bytes read"
        assert set(controls[domain]) <= found, f"{domain}: the control was not found"
        assert not found & secret_names, f"{domain}'s memory holds {sorted(found & secret_names)}"


# --- 6. offline, missed, untrusted ----------------------------------------------------------------


def _failed(outcome: Outcome, code: str) -> None:
    assert outcome.status == 1, outcome.stderr
    assert outcome.reason == code, outcome.lines
    assert outcome.stderr.strip().splitlines()[-1].startswith(f"sealrelay: {code}: ")
    assert "Traceback" not in outcome.stderr


def test_a_callee_with_no_device_online_is_offline(world: CallWorld) -> None:
    caller, callee = _pair(world, "offline")
    started = time.monotonic()
    outcome = finish(caller.start("call", callee.address, ring=RING))
    elapsed = time.monotonic() - started
    assert outcome.events() == ["ended"]
    _failed(outcome, "call.offline")
    assert elapsed < RING + 20


def test_a_callee_that_does_not_answer_is_missed(world: CallWorld) -> None:
    caller, callee = _pair(world, "missed")
    ringing = callee.start("receive", "--wait", "30", "--wait-all")
    try:
        started = time.monotonic()
        outcome = finish(caller.start("call", callee.address, ring=RING))
        elapsed = time.monotonic() - started
    finally:
        stop(ringing)
    assert outcome.events() == ["ringing", "ended"]
    _failed(outcome, "call.missed")
    assert elapsed < RING + 20


def test_a_changed_unaccepted_identity_refuses_the_call(world: CallWorld) -> None:
    caller, callee = _pair(world, "untrusted")
    caller.cli("send", callee.address, "hello across")
    _change_identity(caller.home / "state.db", caller.passphrase, callee.address)
    outcome = finish(caller.start("call", callee.address, ring=RING))
    assert outcome.events() == ["ended"]
    _failed(outcome, "call.untrusted_identity")


def _change_identity(db: Path, passphrase: str, peer: str) -> None:
    """The caller's store is told of another identity key for ``peer``, not accepted."""
    store = SqliteStore.open(db, passphrase)
    try:
        own = decode(store.get(NS_ACCOUNT, persist.DEVICE_SLOT) or b"", DeviceRecord).identity
        changed = TrustRecord(identity=encode(own), accepted=False)
        store.put(NS_IDENTITIES, peer.encode(), encode(changed))
    finally:
        store.close()
