"""Running a node: store, keys, sweeper and the listener in one trio nursery.

The listener is ``node.gateway`` (client WebSockets served directly, every other
connection by hypercorn), or hypercorn alone with ``client_websocket = "hypercorn"``.

    handle = await nursery.start(run_node, config)     handle.url, handle.port
    handle.stop()                                       graceful shutdown (as on SIGTERM)

Shutdown (SIGTERM, SIGINT or ``stop``): ``/readyz`` turns 503, client WebSockets are closed
with 1001 (clients reconnect elsewhere), hypercorn stops accepting and waits up to
``shutdown_timeout`` for running requests (each finishes its store write), then the
sweeper stops and the store is closed.

Calls (issue 17): with ``udp_listen`` set, the node's call relay (``node.calls``
``CallService``) listens on that UDP address with the node's QUIC identity
(``ServerKeys.quic``) before anything can fetch the key document, and the document lists
the port it bound (``media_port``: a version 2 body), and the client protocol's call leg
requests and WebSocket media fallback are served (``relay.calls``, a
``node.calls.clients.ClientLegs``). The same socket takes peer nodes' media links, and
``relay.media_links`` (``node.calls.links.MediaLinks``) opens this node's: a ``LegBridge``
to another domain's leg goes through ``MediaLinks.bridge``. Without ``udp_listen`` no UDP
socket is opened, the document is version 1 and leg requests are refused
(``call.unavailable``). A key reload (:func:`_watch_keys`) that changes the QUIC identity
(``sealrelay keys rotate``) needs a restart to serve the new key: until then the document
lists the pin the running service was started with, and an error is logged.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve

from node import gateway
from node.app import App
from node.calls import CallRelay
from node.calls.clients import REPLICA_ID_BYTES, ClientLegs
from node.calls.links import MediaLinks
from node.calls.meetlegs import MeetingLegMirror
from node.calls.relayed import BindRelays
from node.calls.replicas import ReplicaCalls
from node.calls.shell import CallService
from node.cluster import ClusterPush
from node.clusterlimits import SharedLimits
from node.config import Config, parse_sentinels
from node.errors import NODE_LISTEN, CommandError, ConfigError, first_leaf
from node.fed import Federation
from node.keys import KEY_FILE, RELOAD_INTERVAL, ServerKeys, load, load_or_create
from node.metrics import CallNumbers, MeetingNumbers
from node.relay import Relay
from node.sfu.placement import RoomPlacement
from node.sfu.rooms import MeetingLegs
from node.sfu.shell import MeetingService
from node.store import Store, open_store
from node.store.redis import RedisStore

log = logging.getLogger("sealrelay.node.server")

ERROR_LOGGER = "sealrelay.http"
APP_QUEUE_SIZE: Final = 2
"""Messages hypercorn queues for the application per connection (see _hypercorn_config)."""


@dataclass(frozen=True)
class NodeHandle:
    """What :func:`run_node` reports once it listens."""

    url: str
    port: int
    relay: Relay
    stop: trio.Event
    calls: CallService | None = None
    """The call relay's QUIC service, when ``udp_listen`` is set."""
    links: MediaLinks | None = None
    """Its node-to-node media links (also ``relay.media_links``), when ``udp_listen`` is set."""

    def shutdown(self) -> None:
        self.stop.set()


async def run_node(
    config: Config,
    *,
    handle_signals: bool = True,
    store: Store | None = None,
    task_status: trio.TaskStatus[NodeHandle] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``config`` until stopped; ``task_status`` gets a :class:`NodeHandle`."""
    keys = load_or_create(config.data_dir, config.suite)
    opened = store or await open_store(
        config.store,
        config.data_dir,
        redis_url=config.redis_url,
        redis_sentinels=parse_sentinels(config.redis_sentinels),
        redis_master=config.redis_master,
        durability=config.durability,
    )
    relay = Relay(config, opened, keys, shared_store=isinstance(opened, RedisStore))
    bound: list[str] = []

    def endpoints() -> tuple[str, ...]:
        return (config.public_url or bound[0],)

    def document() -> bytes:
        now = relay.now_ms()
        return relay.keys.key_document_bytes(
            config.domain, endpoints(), now, config.document_lifetime, relay.media_port
        )

    federation = Federation(relay, document)
    relay.federation = federation
    stop = trio.Event()
    try:
        async with trio.open_nursery() as nursery:
            if handle_signals:
                nursery.start_soon(_watch_signals, stop)
            calls = await _start_calls(relay, nursery, federation)
            nursery.start_soon(_sweeper, relay)
            nursery.start_soon(_watch_keys, relay, Path(config.data_dir) / KEY_FILE)
            if isinstance(opened, RedisStore):
                # pushes for mailboxes connected to another replica (node.cluster)
                await nursery.start(ClusterPush(relay.hub, opened).run)
                # one allowance per client across the replicas (node.clusterlimits)
                nursery.start_soon(SharedLimits(opened, relay.limiters(), relay.clock).run)
            await nursery.start(federation.run)
            await _serve(relay, stop, nursery, bound, endpoints, federation, calls, task_status)
            nursery.cancel_scope.cancel()
    finally:
        relay.draining = True
        with trio.CancelScope(shield=True):
            await opened.aclose()
        log.info("stopped")


async def _serve(
    relay: Relay,
    stop: trio.Event,
    nursery: trio.Nursery,
    bound: list[str],
    endpoints: Callable[[], tuple[str, ...]],
    federation: Federation,
    calls: CallService | None,
    task_status: trio.TaskStatus[NodeHandle],
) -> None:
    config = relay.config
    app = App(relay, endpoints, nursery, federation=federation)

    async def trigger() -> None:
        await stop.wait()
        log.info("draining", extra={"count": len(app.connections)})
        app.close_all()

    done = trio.Event()

    async def run_hypercorn(task_status: trio.TaskStatus[list[str]]) -> None:
        try:
            hc = _hypercorn_config(config)
            if config.client_websocket == "direct":
                await gateway.serve(app, hc, trigger, task_status=task_status)
            else:
                asgi: Any = app  # hypercorn types the ASGI callable with its own TypedDicts
                await serve(asgi, hc, shutdown_trigger=trigger, task_status=task_status)
        finally:
            done.set()

    try:
        binds: list[str] = await nursery.start(run_hypercorn)
    except OSError as exc:  # the port is taken, or the address is not this machine's
        where = _hypercorn_config(config).bind[0]
        reason = exc.strerror or str(exc)
        raise CommandError(f"cannot listen on {where}: {reason}", NODE_LISTEN) from None
    bound.append(binds[0])
    port = int(binds[0].rpartition(":")[2])
    log.info("listening", extra={"url": binds[0], "domain": config.domain, "suite": config.suite})
    task_status.started(NodeHandle(binds[0], port, relay, stop, calls, relay.media_links))
    await done.wait()


async def _start_calls(
    relay: Relay, nursery: trio.Nursery, federation: Federation
) -> CallService | None:
    """Start the call relay on ``udp_listen`` (None if unset) with the node's QUIC identity,
    and its node-to-node media links (``relay.media_links``: the federation keyring says
    which domains may link and how to reach them; links are signed with the current server
    keys); set ``relay.media_port`` to the bound port and feed ``/metrics``."""
    address = relay.config.udp_address()
    if address is None:
        return None
    host, port = address
    service = CallService(CallRelay(relay.random_bytes), relay.keys.quic)
    service.observe_forward = relay.metrics.call_forward_seconds.observe
    replica = relay.random_bytes(REPLICA_ID_BYTES)
    legs = ClientLegs(
        service, relay.ports.call_legs, domain=relay.domain, replica=replica, now_ms=relay.now_ms
    )
    try:
        local = await nursery.start(service.serve, host, port)
    except* OSError as group:  # the port is taken, or the address is not this machine's
        exc = first_leaf(group)
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise CommandError(f"cannot listen on UDP {host}:{port}: {reason}", NODE_LISTEN) from None
    await nursery.start(legs.run)
    relay.media_port = int(local[1])
    links = MediaLinks(
        service,
        relay.config.domain,
        federation.keyring,
        lambda: relay.keys,
        random=relay.random_bytes,
    )
    service.accept_links(links)
    await nursery.start(links.run)
    legs.bridge = links.bridge
    meetings = MeetingService(
        MeetingLegs(relay.random_bytes), domain=relay.config.domain, now_ms=relay.now_ms
    )
    meetings.on_ended = legs.meeting_ended
    meetings.remote.opener = links  # meetings anchored at other domains (a cascade)
    links.meetings = meetings
    await _place_meetings(relay, nursery, meetings, links, replica)
    replicas = await _bridge_replicas(relay, nursery, legs, links, replica)
    relays = None
    if meetings.placement is not None:
        relays = await _relay_binds(relay, nursery, legs, links, meetings, replica)
    await nursery.start(meetings.run)
    service.route_meetings(meetings)
    legs.meetings = meetings
    relay.metrics.meetings = lambda: meeting_numbers(meetings)
    relay.media_links = links
    relay.calls = legs
    relay.metrics.calls = lambda: call_numbers(service, links, relays, replicas)
    log.info("calls listening", extra={"address": f"{host}:{relay.media_port}"})
    return service


async def _place_meetings(
    relay: Relay, nursery: trio.Nursery, meetings: MeetingService, links: MediaLinks, replica: bytes
) -> None:
    """Cluster mode (the Redis store): announce this replica's internal media address and
    place meeting rooms on one replica, the others bridging to it over replica links
    (``node.sfu.placement``). Without an internal address (``udp_listen`` on a wildcard
    and no ``media_internal_address``) rooms stay on the replica of each join, as before."""
    if not relay.shared_store or relay.media_port is None:
        return
    address = relay.config.media_internal_host()
    if address is None:
        log.warning("no media across replicas (meetings, calls): set media_internal_address")
        return
    placement = RoomPlacement(
        relay.ports.media_placement, replica, domain=relay.domain, now_ms=relay.now_ms
    )
    await nursery.start(placement.announce, address, relay.media_port)
    links.accept_replicas = True
    meetings.placement = placement


async def _bridge_replicas(
    relay: Relay, nursery: trio.Nursery, legs: ClientLegs, links: MediaLinks, replica: bytes
) -> ReplicaCalls | None:
    """Cluster mode with an announced media address (``_place_meetings`` set it up): a
    ``LegBridge`` to a leg another replica holds is bridged there over a replica link
    (``node.calls.replicas``); the bridges (None outside that mode)."""
    if not links.accept_replicas:
        return None
    calls = ReplicaCalls(
        links, relay.ports.call_legs, relay.ports.media_placement, replica, now_ms=relay.now_ms
    )
    await nursery.start(calls.run)
    legs.elsewhere = calls.bridge
    links.carry = calls.carry  # a peer domain's link that landed here: chained to the holder
    return calls


async def _relay_binds(
    relay: Relay,
    nursery: trio.Nursery,
    legs: ClientLegs,
    links: MediaLinks,
    meetings: MeetingService,
    replica: bytes,
) -> BindRelays:
    """Cluster mode with replica links: a QUIC bind that reaches this replica for a leg
    another replica granted is handed on to it over a replica link, and meeting legs are
    mirrored into ``CallLegs`` so that other replicas find them (``node.calls.relayed``)."""
    relays = BindRelays(
        legs.service,
        links,
        relay.ports.call_legs,
        relay.ports.media_placement,
        replica=replica,
        random=relay.random_bytes,
        now_ms=relay.now_ms,
    )
    await nursery.start(relays.run)
    links.relays = relays
    legs.service.elsewhere = relays
    mirror = MeetingLegMirror(relay.ports.call_legs, replica, meetings.owns, now_ms=relay.now_ms)
    await nursery.start(mirror.run)
    legs.mirror_meeting = mirror.add
    return relays


def meeting_numbers(meetings: MeetingService) -> MeetingNumbers:
    """The meetings' numbers for ``/metrics`` (``node.metrics.MeetingNumbers``)."""
    stats, placement = meetings.numbers(), meetings.placement
    return MeetingNumbers(
        stats.rooms,
        stats.participants,
        stats.forwarded,
        stats.drops,
        delivered_bytes=stats.delivered_bytes,
        link_bytes=stats.link_bytes,
        link_datagrams=stats.link_datagrams,
        link_refused=stats.link_refused,
        link_ports=stats.link_ports,
        peer_joins_placed=stats.peer_joins_placed,
        rooms_moved=0 if placement is None else placement.moved,
        room_holds_lost=0 if placement is None else placement.lost,
    )


def call_numbers(
    service: CallService,
    links: MediaLinks | None = None,
    relays: BindRelays | None = None,
    replicas: ReplicaCalls | None = None,
) -> CallNumbers:
    """The call relay's numbers for ``/metrics`` (``node.metrics.CallNumbers``)."""
    core, shell = service.core.stats(), service.stats()
    failures = {
        "refused": shell.refused,
        "malformed_control": shell.malformed_control,
        "timeout": shell.bind_timeouts,
    }
    return CallNumbers(
        legs=core.legs,
        remote_legs=core.remote_legs,
        bound_legs=core.bound_legs,
        bridges=core.bridges,
        forwarded=core.forwarded,
        forwarded_bytes=core.forwarded_bytes,
        drops={str(reason): n for reason, n in core.drops.items()},
        connections=shell.connections,
        bind_failures=failures,
        send_failures=shell.send_failures,
        links=0 if links is None else links.links_up,
        link_connects={} if links is None else dict(links.counters.connects),
        link_failures={} if links is None else dict(links.counters.failures),
        link_kinds={} if links is None else links.kinds_up(),
        relays=0 if relays is None else relays.open,
        relayed_binds={} if relays is None else dict(relays.counts),
        replica_bridges=0 if replicas is None else replicas.bridged,
        replica_chains=0 if replicas is None else replicas.carried,
        replica_claims_released=0 if replicas is None else replicas.released,
        replica_links_gone=0 if replicas is None else replicas.gone,
    )


def _hypercorn_config(config: Config) -> HypercornConfig:
    hc = HypercornConfig()
    host = f"[{config.listen_host}]" if ":" in config.listen_host else config.listen_host
    hc.bind = [f"{host}:{config.listen_port}"]
    # Frames between 1x and 2x the limit get proto.too_large; larger ones close with 1009.
    hc.websocket_max_message_size = config.max_frame_bytes * 2
    # hypercorn queues received messages for the application (default 10): with frames of
    # up to 2x max_frame_bytes, a client that sends without reading its replies would pin
    # that many. Two are enough: a request's body (or a WebSocket message) and the
    # disconnect hypercorn queues after the application returns (node.app._Body).
    hc.max_app_queue_size = APP_QUEUE_SIZE
    hc.graceful_timeout = config.shutdown_timeout
    hc.accesslog = None
    hc.errorlog = logging.getLogger(ERROR_LOGGER)
    hc.include_server_header = False
    return hc


async def _watch_keys(relay: Relay, path: Path) -> None:
    """Pick up a rotated or newly certified ``server-keys.json`` without a restart."""
    seen = _mtime(path)
    while True:
        await trio.sleep(RELOAD_INTERVAL)
        current = _mtime(path)
        if current == seen:
            continue
        try:
            keys = load(path, relay.keys.suite)
        except ConfigError as exc:
            log.error("server keys not reloaded", extra={"error": str(exc)})
            continue
        _keep_quic(relay, keys)
        relay.keys = keys
        seen = current
        log.info("server keys reloaded", extra={"key": relay.keys.sig_key_id.hex()})


def _keep_quic(relay: Relay, keys: ServerKeys) -> None:
    """The running call service keeps the QUIC identity it started with, and so does the
    key document, until a restart (see the module docstring): ``keys`` (just loaded, its
    document not built yet) gets the running identity back."""
    if relay.media_port is not None and keys.quic_pin != relay.keys.quic_pin:
        keys.quic = relay.keys.quic
        log.error(
            "the QUIC key changed: restart the node to serve it",
            extra={"code": "calls.restart_needed"},
        )


def _mtime(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0


async def _sweeper(relay: Relay) -> None:
    while True:
        await trio.sleep(relay.config.sweep_interval)
        try:
            await relay.sweep()
            await relay.ports.call_legs.sweep_legs(relay.now_ms())
        except Exception as exc:
            log.warning("sweep failed", extra={"error": type(exc).__name__})


async def _watch_signals(stop: trio.Event) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            log.info("signal", extra={"code": signal.Signals(signum).name})
            stop.set()
