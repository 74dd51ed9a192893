"""The client side of the call relay in-process (node.calls.clients, node.calls_requests;
issue 17, the rendezvous and the WebSocket fallback): leg requests through a real
``Session`` of an in-memory relay, WebSocket shells faked as lists of what was sent.

Checked: allocation mirrors the leg into ``CallLegs`` with only the secret's hash; a local
bridge joins two accounts' legs and attached WebSockets exchange datagrams through
``Session.media`` (garbage, a foreign sender id and datagrams on an unattached WebSocket
are dropped and counted); a hang-up pushes ``LegEnded`` to the other owner only (on the
connection it logged in on again, if it reconnected) and deletes both legs; the sweep's
expiry pushes ``call.expired``; a remote bridge goes to the hook (default
``call.unreachable``) and a failed one ends its leg; a closed WebSocket unbinds its legs;
stored legs are renewed while they live, and a leg the store does not take is not handed
out; a client that does not read never stalls its peer; without a call relay every request
is ``call.unavailable`` and media is dropped and counted.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import pytest
import trio
import trio.testing

from node.calls import CallRelay, DropReason, Ended, EndReason, secret_hash
from node.calls.clients import END_CODES, REPLICA_ID_BYTES, ClientLegs
from node.calls.shell import CallService
from node.calls.wsmedia import SINK_QUEUE
from node.calls_requests import WEBSOCKET_DROPPED
from node.errors import (
    CALL_EXPIRED,
    CALL_NO_LEG,
    CALL_PEER_ENDED,
    CALL_UNAVAILABLE,
    CALL_UNREACHABLE,
    LEG_END_REASONS,
    NodeError,
)
from node.relay import Relay
from node.session import Session
from node.store import LegRecord, StoreError
from tests.node.calls.helpers import T0, Draws, datagram, sender_of
from tests.node.harness import DOMAIN, PEER, Device, call, enroll, make_relay
from transport import QuicIdentity
from wire.calls import LegRef
from wire.relay import (
    Authenticated,
    Error,
    LegAllocate,
    LegAttach,
    LegAttached,
    LegBridge,
    LegEnded,
    LegGrant,
    LegHangUp,
    Ok,
)

IDENTITY = QuicIdentity.generate()
ALLOCATION_MS = 1_000
STEP = 3.0


@dataclass
class Shell:
    """A client WebSocket as the call relay sees it: what it was sent and pushed."""

    closed: bool = False
    sent: list[bytes] = field(default_factory=list)
    pushed: list[object] = field(default_factory=list)

    def __hash__(self) -> int:
        return id(self)

    async def send_binary(self, messages: Sequence[bytes]) -> None:
        self.sent += messages

    def push(self, frame: object) -> None:
        self.pushed.append(frame)


@dataclass(eq=False)
class StuckShell(Shell):
    """A client that reads nothing until ``release`` is set."""

    release: trio.Event = field(default_factory=trio.Event)

    def __hash__(self) -> int:
        return id(self)

    async def send_binary(self, messages: Sequence[bytes]) -> None:
        await self.release.wait()
        self.sent += messages


@dataclass
class Clock:
    now: int = T0

    def __call__(self) -> int:
        return self.now


@dataclass
class Node:
    relay: Relay
    legs: ClientLegs
    clock: Clock
    devices: dict[str, Device] = field(default_factory=dict)

    async def account(self, name: str) -> tuple[Session, Shell]:
        device = self.devices[name] = Device.create(name)
        session = await enroll(self.relay, device)
        shell = Shell()
        session.shell = shell
        return session, shell

    async def stored(self, leg_id: bytes) -> LegRecord | None:
        return await self.relay.ports.call_legs.leg(leg_id, self.clock.now)


async def _until(check: Callable[[], Awaitable[bool]]) -> None:
    """Poll ``check`` until it holds (the sweep and the renewals run in their tasks)."""
    with trio.fail_after(STEP):
        for _ in itertools.count():
            if await check():
                return
            await trio.sleep(0.01)


async def _one(session: Session, frame: object) -> object:
    (answer,) = await call(session, frame)
    return answer


@pytest.fixture
async def node() -> AsyncIterator[Node]:
    clock = Clock()
    relay = make_relay()
    core = CallRelay(Draws(), allocation_timeout_ms=ALLOCATION_MS)
    service = CallService(core, IDENTITY, now_ms=clock, sweep_interval=0.02)
    service.observe_forward = relay.metrics.call_forward_seconds.observe  # as node.server
    legs = ClientLegs(
        service,
        relay.ports.call_legs,
        domain=DOMAIN,
        replica=b"r" * REPLICA_ID_BYTES,
        now_ms=clock,
        renew_interval=0.02,
    )
    relay.calls = legs
    async with trio.open_nursery() as nursery:
        await nursery.start(service.serve, "127.0.0.1", 0)
        await nursery.start(legs.run)
        yield Node(relay, legs, clock)
        nursery.cancel_scope.cancel()


async def _call(node: Node) -> tuple[Session, Shell, LegGrant, Session, Shell, LegGrant]:
    """Bea allocates, Abe bridges to her leg: (abe, his shell, his grant, bea, ...)."""
    bea, bea_shell = await node.account("bea")
    abe, abe_shell = await node.account("abe")
    granted = await _one(bea, LegAllocate(1))
    assert isinstance(granted, LegGrant)
    bridged = await _one(abe, LegBridge(2, LegRef(DOMAIN, granted.leg_id)))
    assert isinstance(bridged, LegGrant)
    return abe, abe_shell, bridged, bea, bea_shell, granted


async def _attach(session: Session, grant: LegGrant) -> int:
    attached = await _one(session, LegAttach(3, grant.leg_id, grant.leg_secret))
    assert isinstance(attached, LegAttached)
    assert attached.leg_id == grant.leg_id
    return attached.sender


def test_every_end_reason_has_a_stable_code() -> None:
    assert set(END_CODES.values()) == set(LEG_END_REASONS)


async def test_an_allocated_leg_is_stored_with_only_its_secret_hash(node: Node) -> None:
    session, _ = await node.account("bea")
    grant = await _one(session, LegAllocate(1))
    assert isinstance(grant, LegGrant)
    assert grant.id == 1
    record = await node.stored(grant.leg_id)
    assert record is not None
    assert record.secret_hash == secret_hash(grant.leg_secret)
    assert record.replica == b"r" * REPLICA_ID_BYTES
    assert repr(grant.leg_secret) not in repr(record)
    assert grant.leg_secret.hex() not in repr(grant)
    assert await node.relay.ports.call_legs.count_legs(node.clock.now) == 1


async def test_attached_websockets_carry_the_call_and_drop_what_is_not_theirs(
    node: Node,
) -> None:
    abe, abe_shell, bridged, bea, bea_shell, granted = await _call(node)
    abe_sender = await _attach(abe, bridged)
    bea_sender = await _attach(bea, granted)
    assert abe_sender != bea_sender
    core = node.legs.core
    before = core.stats().drops
    await abe.media([datagram(abe_sender, frame=1), b"\x11garbage", datagram(abe_sender ^ 1)])
    await bea.media([datagram(bea_sender, frame=2)])
    await trio.testing.wait_all_tasks_blocked()  # (each WebSocket's writer task)
    assert [sender_of(d) for d in bea_shell.sent] == [abe_sender]
    assert [sender_of(d) for d in abe_shell.sent] == [bea_sender]
    drops = core.stats().drops
    assert drops[DropReason.MALFORMED] == before[DropReason.MALFORMED] + 1
    assert drops[DropReason.STREAM_NOT_BOUND] == before[DropReason.STREAM_NOT_BOUND] + 1
    cid, cid_shell = await node.account("cid")  # authenticated, attached to nothing
    await cid.media([datagram(abe_sender)])
    await trio.testing.wait_all_tasks_blocked()
    assert core.stats().drops[DropReason.NO_LEG] == before[DropReason.NO_LEG] + 1
    assert cid_shell.sent == []
    assert node.relay.metrics.call_forward_seconds.count >= 3


async def test_a_client_that_does_not_read_never_stalls_its_peer(node: Node) -> None:
    abe, _, bridged, bea, _, granted = await _call(node)
    stuck = StuckShell()
    bea.shell = stuck
    abe_sender = await _attach(abe, bridged)
    await _attach(bea, granted)
    sends = SINK_QUEUE * 2
    with trio.fail_after(STEP):
        for n in range(sends):
            await abe.media([datagram(abe_sender, frame=n)])
            await trio.testing.wait_all_tasks_blocked()
    dropped = node.legs.service.counters.send_failures
    assert dropped == sends - SINK_QUEUE - 1  # one in the stuck write, the queue full
    stuck.release.set()
    await trio.testing.wait_all_tasks_blocked()
    assert len(stuck.sent) == sends - dropped
    answer = await _one(abe, LegHangUp(4, bridged.leg_id))  # Abe's requests never waited
    assert answer == Ok(4)


async def test_a_hang_up_tells_the_other_owner_and_forgets_both_legs(node: Node) -> None:
    abe, abe_shell, bridged, bea, bea_shell, granted = await _call(node)
    answer = await _one(abe, LegHangUp(4, bridged.leg_id))
    assert answer == Ok(4)
    assert bea_shell.pushed == [LegEnded(granted.leg_id, CALL_PEER_ENDED)]
    assert abe_shell.pushed == []
    assert await node.stored(granted.leg_id) is None
    assert await node.stored(bridged.leg_id) is None
    again = await _one(bea, LegHangUp(5, granted.leg_id))
    assert isinstance(again, Error)
    assert again.code == CALL_NO_LEG


async def test_a_leg_only_its_owner_hangs_up(node: Node) -> None:
    _, _, bridged, bea, _, _ = await _call(node)
    refused = await _one(bea, LegHangUp(4, bridged.leg_id))
    assert isinstance(refused, Error)
    assert refused.code == CALL_NO_LEG


async def test_an_expired_leg_is_pushed_and_deleted(node: Node) -> None:
    session, shell = await node.account("bea")
    grant = await _one(session, LegAllocate(1))
    assert isinstance(grant, LegGrant)
    node.clock.now += ALLOCATION_MS

    async def pushed() -> bool:
        return bool(shell.pushed)

    async def deleted() -> bool:  # (asked as of its allocation: not merely expired)
        return await node.relay.ports.call_legs.leg(grant.leg_id, T0) is None

    await _until(pushed)
    assert shell.pushed == [LegEnded(grant.leg_id, CALL_EXPIRED)]
    await _until(deleted)


async def test_a_bridge_to_another_domain_goes_to_the_hook(node: Node) -> None:
    abe, _ = await node.account("abe")
    target = LegRef("elsewhere.test", bytes(16))
    refused = await _one(abe, LegBridge(1, target))
    assert isinstance(refused, Error)
    assert refused.code == CALL_UNREACHABLE
    assert node.legs.core.stats().legs == 0  # the bridge's leg was ended
    assert await node.relay.ports.call_legs.count_legs(node.clock.now) == 0

    asked: list[tuple[bytes, LegRef]] = []

    async def bridge(leg_id: bytes, ref: LegRef) -> None:
        asked.append((leg_id, ref))

    node.legs.bridge = bridge
    grant = await _one(abe, LegBridge(2, target))
    assert isinstance(grant, LegGrant)
    assert asked == [(grant.leg_id, target)]
    assert await node.stored(grant.leg_id) is not None


async def test_a_bridge_to_an_unknown_leg_is_refused_and_ends_its_leg(node: Node) -> None:
    abe, shell = await node.account("abe")
    refused = await _one(abe, LegBridge(1, LegRef(DOMAIN, bytes(16))))
    assert isinstance(refused, Error)
    assert refused.code == CALL_NO_LEG
    assert node.legs.core.stats().legs == 0
    assert await node.relay.ports.call_legs.count_legs(node.clock.now) == 0
    assert shell.pushed == []  # answered with the refusal, not told twice


async def test_a_closed_websocket_unbinds_its_legs(node: Node) -> None:
    abe, _, bridged, bea, bea_shell, granted = await _call(node)
    await _attach(abe, bridged)
    await _attach(bea, granted)
    assert node.legs.core.stats().bound_legs == 2
    bea_shell.closed = True
    bea.detach()
    assert node.legs.core.stats().bound_legs == 1
    await _one(abe, LegHangUp(4, bridged.leg_id))
    assert bea_shell.pushed == []  # nothing is pushed to a gone WebSocket


async def test_a_reconnection_during_a_call_gets_the_push(node: Node) -> None:
    abe, _, bridged, bea, bea_shell, granted = await _call(node)
    bea_shell.closed = True
    bea.detach()
    again = Session(node.relay, PEER)
    again.shell = new_shell = Shell()
    (answer,) = await call(again, node.devices["bea"].auth_frame(again.hello()))
    assert isinstance(answer, Authenticated)
    await _one(abe, LegHangUp(4, bridged.leg_id))
    assert new_shell.pushed == [LegEnded(granted.leg_id, CALL_PEER_ENDED)]
    assert bea_shell.pushed == []


async def test_stored_legs_are_renewed_while_they_live(node: Node) -> None:
    session, _ = await node.account("bea")
    grant = await _one(session, LegAllocate(1))
    assert isinstance(grant, LegGrant)
    first = await node.stored(grant.leg_id)
    assert first is not None
    node.clock.now += ALLOCATION_MS // 2

    async def renewed() -> bool:
        record = await node.stored(grant.leg_id)
        return record is not None and record.expires > first.expires

    await _until(renewed)


async def test_without_a_call_relay_requests_are_unavailable_and_media_dropped() -> None:
    relay = make_relay()
    session = await enroll(relay, Device.create("bea"))
    session.shell = Shell()
    for frame in (
        LegAllocate(1),
        LegBridge(2, LegRef(DOMAIN, bytes(16))),
        LegHangUp(3, bytes(16)),
        LegAttach(4, bytes(16), bytes(32)),
    ):
        refused = await _one(session, frame)
        assert isinstance(refused, Error)
        assert (refused.id, refused.code) == (frame.id, CALL_UNAVAILABLE)
    await session.media([datagram(1), datagram(2)])
    series = relay.metrics.labeled[WEBSOCKET_DROPPED]
    assert series == {(("reason", "unavailable"),): 2}


async def test_the_default_remote_bridge_refuses() -> None:
    from node.calls.clients import no_links

    with pytest.raises(NodeError) as refused:
        await no_links(bytes(16), LegRef("elsewhere.test", bytes(16)))
    assert refused.value.code == CALL_UNREACHABLE


class _Unavailable:
    """A ``CallLegs`` port whose backend does not answer."""

    async def add_leg(self, leg: LegRecord) -> bool:
        raise StoreError("the store does not answer")


async def test_a_leg_the_store_does_not_take_is_not_handed_out() -> None:
    service = CallService(CallRelay(Draws()), IDENTITY)
    legs = ClientLegs(
        service,
        _Unavailable(),  # type: ignore[arg-type]
        domain=DOMAIN,
        replica=b"r" * REPLICA_ID_BYTES,
        now_ms=Clock(),
    )
    with pytest.raises(StoreError):
        await legs.allocate(b"m" * 16, Shell())
    assert legs.core.stats().legs == 0


async def test_legs_a_link_ended_are_settled_as_the_sweeps(node: Node) -> None:
    """What node-to-node links hand over (``end_remote``, ``drop_owner``)."""
    abe, shell = await node.account("abe")
    grant = await _one(abe, LegAllocate(1))
    assert isinstance(grant, LegGrant)
    core = node.legs.core
    core.bridge_remote(grant.leg_id, "link to far.test", "far.test", node.clock.now)
    remote: list[Ended] = []
    node.legs.remote_ended = remote.append
    node.legs.end_elsewhere(core.drop_owner("link to far.test"))

    async def settled() -> bool:
        return bool(shell.pushed) and bool(remote)

    await _until(settled)
    assert shell.pushed == [LegEnded(grant.leg_id, CALL_PEER_ENDED)]
    assert [(leg.remote, leg.reason) for leg in remote] == [(True, EndReason.OWNER_GONE)]
    assert await node.stored(grant.leg_id) is None
