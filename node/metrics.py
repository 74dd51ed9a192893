"""The node's Prometheus metrics, exposed through ``prometheus_client`` (text format 0.0.4).

:class:`Metrics` holds every series the node exports as plain numbers: the hot path (an
envelope accepted, a request timed) adds to an ``int`` or a bucket list, with no lock and no
call into the library. At scrape time a custom collector (``prometheus_client``'s
``Collector`` protocol) turns them into metric families in the node's own
``CollectorRegistry`` (never the process-wide default: a test process runs several nodes),
and ``render`` writes them with ``generate_latest``, together with the store's gauges
(passed in, since reading them is async), for ``GET /metrics``:

    sealrelay_envelopes_accepted_total          counter  envelopes stored (not duplicates)
    sealrelay_envelopes_delivered_total         counter  envelopes pushed to a device
    sealrelay_envelopes_expired_total           counter  envelopes deleted by the sweeper
    sealrelay_frames_rejected_total{code}       counter  Error frames sent, by code
    sealrelay_connections                       gauge    live client WebSockets
    sealrelay_mailbox_envelopes                 gauge    envelopes stored (queue depth)
    sealrelay_store_<stat>                      gauge    the store's other statistics
    sealrelay_request_seconds                   histogram time to answer a request frame
    sealrelay_send_to_deliver_seconds           histogram stored -> pushed
    sealrelay_federation_sent_total{domain}     counter  items a peer accepted from us
    sealrelay_federation_received_total{origin} counter  items stored from a peer
    sealrelay_federation_refused_total{origin,code}  counter  items or requests refused
    sealrelay_federation_send_failures_total{domain} counter  transactions that failed
    sealrelay_federation_clock_skew_refused_total{origin}   counter  peer requests refused
                                                 for a time outside the window
    sealrelay_federation_clock_skew_refusals_total{domain}  counter  our transactions a
                                                 peer refused for clock skew
    sealrelay_store_failures_total{kind}        counter  requests refused for a store
                                                 failure: full, unavailable, error
    sealrelay_federation_probes_total{domain,result} counter  hellos to a failing or hanging
                                                         peer (result up or down)
    sealrelay_federation_abandoned_total{domain} counter  requests given up when a probe
                                                         found the peer back (sent again)
    sealrelay_federation_key_refusals_total{domain,code} counter  key documents refused
                                                         (a pin mismatch is loud)
    sealrelay_federation_queue{domain}          gauge    items queued for a peer
    sealrelay_http_client_gone_total{reason}    counter  HTTP answers cut short by a client
                                                         that hung up (never logged as errors)
    sealrelay_gc_collections_total{generation}  counter  cyclic garbage collections
    sealrelay_gc_frozen_objects                 gauge    objects exempt from them (node.heap)
    sealrelay_gc_pause_seconds                  histogram each collection's pause (once
                                                         node.heap.settle watches them)

With ``udp_listen`` set, the call relay's numbers (:class:`CallNumbers`, read from
``node.calls`` at scrape time; absent otherwise):

    sealrelay_call_legs                         gauge    client legs held
    sealrelay_call_remote_legs                  gauge    legs bridged to a peer node
    sealrelay_call_bound_legs                   gauge    client legs with a media connection
    sealrelay_call_bridges                      gauge    bridges joined
    sealrelay_call_forwarded_datagrams_total    counter  media datagrams forwarded
    sealrelay_call_forwarded_bytes_total        counter  their bytes
    sealrelay_call_dropped_total{reason}        counter  datagrams dropped, by reason
    sealrelay_call_connections_total            counter  QUIC media connections accepted
    sealrelay_call_bind_failures_total{reason}  counter  connections not bound: refused,
                                                         malformed_control, timeout
    sealrelay_call_send_failures_total          counter  forwarded datagrams whose
                                                         destination had gone, or (a
                                                         WebSocket) was too far behind
    sealrelay_call_links                        gauge    node-to-node media links open
    sealrelay_call_links_open{kind}             gauge    the same by kind: ``domain`` (a
                                                         peer domain's node) or ``replica``
                                                         (another replica of this domain)
    sealrelay_call_link_connects_total{direction}  counter  links opened: outbound (this
                                                         node dialled) or inbound
    sealrelay_call_link_failures_total{reason}  counter  links that did not open:
                                                         ``outbound_<code>`` (this node's
                                                         dial) or ``inbound_<code>`` (a
                                                         peer's link refused)
    sealrelay_call_relays_open                  gauge    client media connections relayed
                                                         between replicas now (the bind
                                                         elsewhere; both roles)
    sealrelay_call_relayed_binds_total{outcome} counter  binds of legs another replica holds:
                                                         ``relayed`` (handed on), ``served``
                                                         (another replica's, bound here),
                                                         ``refused_<code>`` (refused here)
    sealrelay_call_replica_bridges_total        counter  ``LegBridge``s joined to a leg another
                                                         replica holds (node.calls.replicas)
    sealrelay_call_replica_chains_total         counter  peer domains' bridges carried on
                                                         here to the replica holding the leg
    sealrelay_call_replica_claims_released_total  counter  leg claims given back by a bridge
                                                         or chain that failed after them
    sealrelay_call_replica_links_gone_total     counter  replica links closed because that
                                                         replica's media address had gone
    sealrelay_call_forward_seconds              histogram time to forward one batch of
                                                         datagrams read together on one
                                                         media connection (QUIC or WebSocket):
                                                         decisions and sends

and the meetings' (``node.sfu.shell.MeetingService.numbers``, read at scrape time):

    sealrelay_meeting_rooms                     gauge    meeting rooms that hold a leg
    sealrelay_meeting_participants              gauge    participants in the rooms: media
                                                         connections of this node's own
                                                         clients (a link is not one)
    sealrelay_meeting_link_ports                gauge    media links in the rooms (another
                                                         domain's node or another replica),
                                                         one per room each link joins
    sealrelay_meeting_forwarded_datagrams_total counter  copies of datagrams forwarded
    sealrelay_meeting_dropped_total{reason}     counter  datagrams (or copies: send_failed)
                                                         dropped, by reason
    sealrelay_meeting_delivered_bytes_total     counter  bytes of the copies sent to this
                                                         node's own participants
    sealrelay_meeting_link_bytes_total{direction}  counter  bytes of meeting datagrams
                                                         received from (``in``) and sent on
                                                         (``out``) media links: a cascade
    sealrelay_meeting_link_datagrams_total{direction}  counter  the same in datagrams
    sealrelay_meeting_link_refused_total{reason}  counter  cascade senders refused
                                                         (``sender_taken``) and link room
                                                         messages ignored (``ignored``)
    sealrelay_meeting_peer_joins_placed_total   counter  peer domains' room joins served here
                                                         after joining the room at its holder
    sealrelay_meeting_rooms_moved_total         counter  local rooms let go of because their
                                                         holder changed (placed again)
    sealrelay_meeting_room_holds_lost_total     counter  room holds found taken by another
                                                         replica at a renewal
"""

from __future__ import annotations

import bisect
import gc
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric

CONTENT_TYPE: Final = CONTENT_TYPE_PLAIN_0_0_4
PREFIX: Final = "sealrelay_"
NO_LINKS: Final = {"domain": 0, "replica": 0}
"""``sealrelay_call_links_open`` with no link of either kind (``node.calls.peering``)."""
LATENCY_BUCKETS: Final = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)
FORWARD_BUCKETS: Final = (
    0.00001,
    0.000025,
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
)
"""Bounds of ``sealrelay_call_forward_seconds``: a batch of a few datagrams takes tens of
microseconds (issue 17 asks for a p99 under 5 ms per hop)."""
GC_PAUSE_BUCKETS: Final = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1)

LabelKey = tuple[tuple[str, str], ...]


class Histogram:
    """Per-bucket counts (upper bounds in seconds), a sum and a count; ``observe`` is a
    bisect and three additions (the scrape makes the buckets cumulative)."""

    __slots__ = ("bounds", "count", "counts", "total")

    def __init__(self, bounds: Sequence[float] = LATENCY_BUCKETS) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.total = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value
        self.count += 1

    def family(self, name: str, help_text: str) -> HistogramMetricFamily:
        """The histogram as a ``prometheus_client`` family (cumulative buckets, ``+Inf``)."""
        buckets: list[tuple[str, float]] = []
        running = 0
        for bound, n in zip(self.bounds, self.counts, strict=False):
            running += n
            buckets.append((repr(float(bound)), running))  # le="0.0005", "1.0" as before
        buckets.append(("+Inf", self.count))
        return HistogramMetricFamily(name, help_text, buckets=buckets, sum_value=self.total)


class GcPauses:
    """The pause of every cyclic garbage collection, timed by a ``gc.callbacks`` hook
    (the collector stops the whole process, so each pause delays every connection)."""

    __slots__ = ("histogram", "started")

    def __init__(self) -> None:
        self.histogram = Histogram(GC_PAUSE_BUCKETS)
        self.started = 0.0

    def __call__(self, phase: str, info: Mapping[str, int]) -> None:
        if phase == "start":
            self.started = time.perf_counter()
        else:
            self.histogram.observe(time.perf_counter() - self.started)


GC_PAUSES: Final = GcPauses()
"""The process's one watcher (the collector, too, is one per process)."""


def watch_gc() -> None:
    """Time every collection from now on into ``sealrelay_gc_pause_seconds``."""
    if GC_PAUSES not in gc.callbacks:
        gc.callbacks.append(GC_PAUSES)


@dataclass(frozen=True)
class CallNumbers:
    """The call relay's gauges and counters at one scrape (``node.calls``: the core's
    ``RelayStats`` and the QUIC shell's ``ShellStats``), as plain numbers."""

    legs: int
    remote_legs: int
    bound_legs: int
    bridges: int
    forwarded: int
    forwarded_bytes: int
    drops: Mapping[str, int]
    connections: int
    bind_failures: Mapping[str, int]
    send_failures: int
    links: int = 0
    link_connects: Mapping[str, int] = field(default_factory=dict)
    link_failures: Mapping[str, int] = field(default_factory=dict)
    link_kinds: Mapping[str, int] = field(default_factory=lambda: dict(NO_LINKS))
    relays: int = 0
    relayed_binds: Mapping[str, int] = field(default_factory=dict)
    replica_bridges: int = 0
    replica_chains: int = 0
    replica_claims_released: int = 0
    replica_links_gone: int = 0


@dataclass(frozen=True)
class MeetingNumbers:
    """The meetings' gauges and counters at one scrape (``node.sfu.shell``)."""

    rooms: int
    participants: int
    forwarded: int
    drops: Mapping[str, int]
    delivered_bytes: int = 0
    link_bytes: Mapping[str, int] = field(default_factory=dict)
    link_datagrams: Mapping[str, int] = field(default_factory=dict)
    link_refused: Mapping[str, int] = field(default_factory=dict)
    link_ports: int = 0
    peer_joins_placed: int = 0
    rooms_moved: int = 0
    room_holds_lost: int = 0


class Metrics:
    """The node's counters, gauges and histograms, and the registry that exposes them."""

    def __init__(self) -> None:
        self.accepted = 0
        self.delivered = 0
        self.expired = 0
        self.rejected: dict[str, int] = {}
        self.connections = 0
        self.request_seconds = Histogram()
        self.send_to_deliver = Histogram()
        # federation counters: metric name -> label values -> count
        self.labeled: dict[str, dict[LabelKey, int]] = {}
        self.queue_depths: dict[str, int] = {}
        self.store_stats: Mapping[str, int] = {}
        self.calls: Callable[[], CallNumbers] | None = None
        """Read at scrape time; set by ``node.server`` when the node serves calls."""
        self.call_forward_seconds = Histogram(FORWARD_BUCKETS)
        self.meetings: Callable[[], MeetingNumbers] | None = None
        """Read at scrape time; set by ``node.server`` when the node serves meetings."""
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(NodeCollector(self))

    def count(self, name: str, n: int = 1, **labels: str) -> None:
        """Add ``n`` to counter ``sealrelay_<name>_total`` with these labels."""
        series = self.labeled.setdefault(name, {})
        key = tuple(sorted(labels.items()))
        series[key] = series.get(key, 0) + n

    def reject(self, code: str) -> None:
        self.rejected[code] = self.rejected.get(code, 0) + 1

    def render(self, store_stats: Mapping[str, int]) -> str:
        """The exposition text of this node's registry, with ``store_stats`` as gauges."""
        self.store_stats = store_stats
        return generate_latest(self.registry).decode()


class NodeCollector:
    """Yields the node's series as metric families at scrape time (``Collector``)."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        m = self.metrics
        yield _counter("envelopes_accepted", "Envelopes stored.", {(): m.accepted})
        yield _counter("envelopes_delivered", "Envelopes pushed.", {(): m.delivered})
        yield _counter("envelopes_expired", "Envelopes expired.", {(): m.expired})
        rejected: dict[LabelKey, int] = {(("code", c),): n for c, n in sorted(m.rejected.items())}
        yield _counter("frames_rejected", "Error frames sent, by code.", rejected)
        yield _gauge("connections", "Live client WebSockets.", m.connections)
        depth = m.store_stats.get("envelopes", 0)
        yield _gauge("mailbox_envelopes", "Envelopes stored in mailboxes.", depth)
        for key, value in sorted(m.store_stats.items()):
            yield _gauge(f"store_{_metric_name(key)}", f"Store statistic {key}.", value)
        for metric, series in sorted(m.labeled.items()):
            yield _counter(metric, f"Counter {metric}.", dict(sorted(series.items())))
        queue = GaugeMetricFamily(
            PREFIX + "federation_queue", "Items queued for a peer domain.", labels=["domain"]
        )
        for domain, n in sorted(m.queue_depths.items()):
            queue.add_metric([domain], n)
        yield queue
        yield m.request_seconds.family(PREFIX + "request_seconds", "Request latency.")
        yield m.send_to_deliver.family(
            PREFIX + "send_to_deliver_seconds", "Stored to pushed latency."
        )
        yield from _gc_families()
        if m.calls is not None:
            yield from _call_families(m.calls())
            yield m.call_forward_seconds.family(
                PREFIX + "call_forward_seconds", "Time to forward a batch of media datagrams."
            )
        if m.meetings is not None:
            yield from _meeting_families(m.meetings())


def _call_families(calls: CallNumbers) -> Iterator[Metric]:
    yield _gauge("call_legs", "Client call legs held.", calls.legs)
    yield _gauge("call_remote_legs", "Call legs bridged to a peer node.", calls.remote_legs)
    yield _gauge("call_bound_legs", "Client call legs with a media connection.", calls.bound_legs)
    yield _gauge("call_bridges", "Call bridges joined.", calls.bridges)
    forwarded = _one(calls.forwarded)
    yield _counter("call_forwarded_datagrams", "Media datagrams forwarded.", forwarded)
    forwarded_bytes = _one(calls.forwarded_bytes)
    yield _counter("call_forwarded_bytes", "Bytes of media datagrams forwarded.", forwarded_bytes)
    yield _counter("call_dropped", "Media datagrams dropped, by reason.", _by(calls.drops))
    connections = _one(calls.connections)
    yield _counter("call_connections", "QUIC media connections accepted.", connections)
    failures = _by(calls.bind_failures)
    yield _counter("call_bind_failures", "Media connections not bound, by reason.", failures)
    send_failures = _one(calls.send_failures)
    yield _counter("call_send_failures", "Forwarded datagrams not sent.", send_failures)
    yield _gauge("call_links", "Node-to-node media links open.", calls.links)
    kinds = GaugeMetricFamily(
        PREFIX + "call_links_open", "Media links open, by kind of peer.", labels=["kind"]
    )
    for kind, n in sorted(calls.link_kinds.items()):
        kinds.add_metric([kind], n)
    yield kinds
    connects = _by(calls.link_connects, "direction")
    yield _counter("call_link_connects", "Media links opened, by direction.", connects)
    link_failures = _by(calls.link_failures)
    yield _counter("call_link_failures", "Media links not opened, by reason.", link_failures)
    yield _gauge("call_relays_open", "Media connections relayed between replicas.", calls.relays)
    relayed = _by(calls.relayed_binds, "outcome")
    yield _counter("call_relayed_binds", "Binds of legs another replica holds.", relayed)
    yield from _plain_counters(
        ("call_replica_bridges", "Bridges to legs other replicas hold.", calls.replica_bridges),
        ("call_replica_chains", "Peer bridges carried on to a replica.", calls.replica_chains),
        ("call_replica_claims_released", "Leg claims given back.", calls.replica_claims_released),
        ("call_replica_links_gone", "Links closed: replica gone.", calls.replica_links_gone),
    )


def _meeting_families(meetings: MeetingNumbers) -> Iterator[Metric]:
    yield _gauge("meeting_rooms", "Meeting rooms that hold a leg.", meetings.rooms)
    yield _gauge("meeting_participants", "Participants in meeting rooms.", meetings.participants)
    yield _gauge("meeting_link_ports", "Media links in meeting rooms.", meetings.link_ports)
    forwarded = _one(meetings.forwarded)
    yield _counter("meeting_forwarded_datagrams", "Meeting datagram copies forwarded.", forwarded)
    drops = _by(meetings.drops)
    yield _counter("meeting_dropped", "Meeting datagrams dropped, by reason.", drops)
    delivered = _one(meetings.delivered_bytes)
    yield _counter("meeting_delivered_bytes", "Meeting bytes sent to own participants.", delivered)
    link_bytes = _by(meetings.link_bytes, "direction")
    yield _counter("meeting_link_bytes", "Meeting bytes over media links.", link_bytes)
    link_datagrams = _by(meetings.link_datagrams, "direction")
    yield _counter("meeting_link_datagrams", "Meeting datagrams over links.", link_datagrams)
    refused = _by(meetings.link_refused)
    yield _counter("meeting_link_refused", "Cascade senders refused, messages ignored.", refused)
    yield from _plain_counters(
        ("meeting_peer_joins_placed", "Peer room joins placed.", meetings.peer_joins_placed),
        ("meeting_rooms_moved", "Local rooms whose holder changed.", meetings.rooms_moved),
        ("meeting_room_holds_lost", "Room holds lost at a renewal.", meetings.room_holds_lost),
    )


def _one(value: int) -> dict[LabelKey, int]:
    return {(): value}


def _plain_counters(*rows: tuple[str, str, int]) -> Iterator[Metric]:
    """Unlabelled counters, one per ``(name, help text, value)``."""
    for name, help_text, value in rows:
        yield _counter(name, help_text, _one(value))


def _by(counts: Mapping[str, int], label: str = "reason") -> dict[LabelKey, int]:
    return {((label, value),): n for value, n in sorted(counts.items())}


def _gc_families() -> Iterator[Metric]:
    collections: dict[LabelKey, int] = {
        (("generation", str(g)),): stats["collections"] for g, stats in enumerate(gc.get_stats())
    }
    yield _counter("gc_collections", "Cyclic garbage collections, by generation.", collections)
    frozen = gc.get_freeze_count()
    yield _gauge("gc_frozen_objects", "Objects the collector skips (frozen).", frozen)
    if GC_PAUSES in gc.callbacks:
        help_text = "Garbage collection pauses."
        yield GC_PAUSES.histogram.family(PREFIX + "gc_pause_seconds", help_text)


def _metric_name(key: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in key.lower())


def _counter(name: str, help_text: str, series: Mapping[LabelKey, int]) -> Metric:
    """Counter ``sealrelay_<name>_total``: one sample per label set (sets may differ)."""
    family = Metric(PREFIX + name, help_text, "counter")
    for key, value in series.items():
        family.add_sample(f"{PREFIX}{name}_total", dict(key), value)
    return family


def _gauge(name: str, help_text: str, value: int) -> GaugeMetricFamily:
    return GaugeMetricFamily(PREFIX + name, help_text, value=value)
