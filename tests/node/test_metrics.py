"""node.metrics: the exposition through ``prometheus_client`` keeps the names, types,
labels, help texts and buckets the hand-written exposition had (the expectations below
were written from that exposition's output before the change), and each node has its own
registry; the cross-replica counters (``ReplicaCalls``, ``PeerRooms``, ``RoomPlacement``)
reach ``/metrics`` as unlabelled counters."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from node.calls import CallRelay
from node.calls.replicas import ReplicaCalls
from node.calls.shell import CallService
from node.metrics import GC_PAUSE_BUCKETS, LATENCY_BUCKETS, MeetingNumbers, Metrics
from node.server import call_numbers, meeting_numbers
from node.sfu.placement import RoomPlacement
from node.sfu.rooms import MeetingLegs
from node.sfu.shell import MeetingService
from node.store import MemoryStore
from transport import QuicIdentity

LATENCY_LE = [
    "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5",
    "1.0", "2.5", "+Inf",
]  # fmt: skip
"""The ``le`` labels of the request and send-to-deliver histograms, as they were written."""

# name (without _total) -> (type, help text) as the hand-written exposition had them
FAMILIES = {
    "sealrelay_envelopes_accepted": ("counter", "Envelopes stored."),
    "sealrelay_envelopes_delivered": ("counter", "Envelopes pushed."),
    "sealrelay_envelopes_expired": ("counter", "Envelopes expired."),
    "sealrelay_frames_rejected": ("counter", "Error frames sent, by code."),
    "sealrelay_connections": ("gauge", "Live client WebSockets."),
    "sealrelay_mailbox_envelopes": ("gauge", "Envelopes stored in mailboxes."),
    "sealrelay_store_blob_bytes": ("gauge", "Store statistic blob-bytes."),
    "sealrelay_store_blobs": ("gauge", "Store statistic blobs."),
    "sealrelay_store_envelopes": ("gauge", "Store statistic envelopes."),
    "sealrelay_federation_refused": ("counter", "Counter federation_refused."),
    "sealrelay_federation_sent": ("counter", "Counter federation_sent."),
    "sealrelay_store_failures": ("counter", "Counter store_failures."),
    "sealrelay_federation_queue": ("gauge", "Items queued for a peer domain."),
    "sealrelay_request_seconds": ("histogram", "Request latency."),
    "sealrelay_send_to_deliver_seconds": ("histogram", "Stored to pushed latency."),
    "sealrelay_gc_collections": ("counter", "Cyclic garbage collections, by generation."),
    "sealrelay_gc_frozen_objects": ("gauge", "Objects the collector skips (frozen)."),
}

# (sample name, labels) -> value, as the hand-written exposition wrote them
SAMPLES: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {
    ("sealrelay_envelopes_accepted_total", ()): 3,
    ("sealrelay_envelopes_delivered_total", ()): 2,
    ("sealrelay_envelopes_expired_total", ()): 1,
    ("sealrelay_frames_rejected_total", (("code", "limit.rate"),)): 2,
    ("sealrelay_frames_rejected_total", (("code", "proto.malformed"),)): 1,
    ("sealrelay_connections", ()): 4,
    ("sealrelay_mailbox_envelopes", ()): 9,
    ("sealrelay_store_blob_bytes", ()): 100,
    ("sealrelay_store_blobs", ()): 2,
    ("sealrelay_store_envelopes", ()): 9,
    ("sealrelay_federation_refused_total", (("code", "x.y"), ("origin", 'we"ird\\o'))): 1,
    ("sealrelay_federation_sent_total", (("domain", "b.test"),)): 5,
    ("sealrelay_store_failures_total", (("kind", "full"),)): 1,
    ("sealrelay_federation_queue", (("domain", "b.test"),)): 7,
    ("sealrelay_request_seconds_sum", ()): 3.002,
    ("sealrelay_request_seconds_count", ()): 2,
    ("sealrelay_send_to_deliver_seconds_sum", ()): 0.0001,
    ("sealrelay_send_to_deliver_seconds_count", ()): 1,
}
REQUEST_BUCKETS = [0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2]
DELIVER_BUCKETS = [1] * 13


def _filled() -> Metrics:
    m = Metrics()
    m.accepted, m.delivered, m.expired = 3, 2, 1
    for code in ("limit.rate", "proto.malformed", "limit.rate"):
        m.reject(code)
    m.connections = 4
    m.request_seconds.observe(0.002)
    m.request_seconds.observe(3.0)
    m.send_to_deliver.observe(0.0001)
    m.count("federation_sent", 5, domain="b.test")
    m.count("federation_refused", origin='we"ird\\o', code="x.y")
    m.count("store_failures", kind="full")
    m.queue_depths["b.test"] = 7
    return m


def _parse(text: str) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_names_types_help_and_values_are_kept() -> None:
    families = _parse(_filled().render({"envelopes": 9, "blobs": 2, "blob-bytes": 100}))
    assert {n: (f.type, f.documentation) for n, f in families.items()} == FAMILIES
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in families.values()
        for s in f.samples
        if not s.name.endswith("_bucket") and not s.name.startswith("sealrelay_gc_")
    }
    assert samples == SAMPLES


def test_histogram_buckets_are_kept() -> None:
    families = _parse(_filled().render({}))
    for name, expected in (
        ("sealrelay_request_seconds", REQUEST_BUCKETS),
        ("sealrelay_send_to_deliver_seconds", DELIVER_BUCKETS),
    ):
        buckets = [s for s in families[name].samples if s.name == name + "_bucket"]
        assert [s.labels["le"] for s in buckets] == LATENCY_LE
        assert [s.value for s in buckets] == expected
    assert len(LATENCY_BUCKETS) + 1 == len(LATENCY_LE)
    assert GC_PAUSE_BUCKETS == (
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
    )  # fmt: skip


def test_empty_families_are_still_described() -> None:
    text = Metrics().render({})
    assert "# TYPE sealrelay_frames_rejected_total counter" in text
    assert "# TYPE sealrelay_federation_queue gauge" in text
    families = _parse(text)
    assert families["sealrelay_frames_rejected"].samples == []


def test_each_node_has_its_own_registry() -> None:
    a, b = Metrics(), Metrics()
    a.accepted = 5
    assert a.registry is not b.registry
    assert a.registry is not REGISTRY
    assert "sealrelay_envelopes_accepted_total 5.0" in a.render({}).splitlines()
    assert "sealrelay_envelopes_accepted_total 0.0" in b.render({}).splitlines()
    assert REGISTRY.get_sample_value("sealrelay_envelopes_accepted_total") is None


def test_store_statistics_update_at_each_scrape() -> None:
    m = Metrics()
    assert m.registry.get_sample_value("sealrelay_mailbox_envelopes") == 0
    m.render({"envelopes": 4})
    assert m.registry.get_sample_value("sealrelay_store_envelopes") == 4
    m.render({"envelopes": 1})
    assert m.registry.get_sample_value("sealrelay_mailbox_envelopes") == 1


def test_meeting_participants_and_link_ports_are_separate_gauges() -> None:
    """A room with two participants of this node and one cascade link (another domain's
    node or another replica): the link is not a participant."""
    m = Metrics()
    m.meetings = lambda: MeetingNumbers(1, 2, 0, {}, link_ports=1)
    families = _parse(m.render({}))
    participants = families["sealrelay_meeting_participants"]
    ports = families["sealrelay_meeting_link_ports"]
    assert (participants.type, participants.documentation) == (
        "gauge",
        "Participants in meeting rooms.",
    )
    assert (ports.type, ports.documentation) == ("gauge", "Media links in meeting rooms.")
    assert [s.value for s in participants.samples] == [2]
    assert [s.value for s in ports.samples] == [1]


REPLICA_CALLS = {
    "sealrelay_call_replica_bridges": 2,
    "sealrelay_call_replica_chains": 3,
    "sealrelay_call_replica_claims_released": 4,
    "sealrelay_call_replica_links_gone": 5,
}
PLACEMENT = {
    "sealrelay_meeting_peer_joins_placed": 6,
    "sealrelay_meeting_rooms_moved": 7,
    "sealrelay_meeting_room_holds_lost": 8,
}


def _counters(text: str, names: dict[str, int]) -> dict[str, tuple[str, int, dict[str, str]]]:
    families = _parse(text)
    found = {}
    for name in names:
        family = families[name]
        (sample,) = [s for s in family.samples if s.name == name + "_total"]
        found[name] = (family.type, int(sample.value), sample.labels)
    return found


def test_the_cross_replica_counters_reach_metrics_without_labels() -> None:
    """Read at scrape time from the objects that count them (``node.server``), each an
    unlabelled counter: no account, address, leg or room in a label."""
    store = MemoryStore()
    replicas = ReplicaCalls(
        None,  # type: ignore[arg-type]  # no bridge is made here
        store,
        store,
        b"replica-here",
        now_ms=lambda: 0,
    )
    replicas.bridged, replicas.carried, replicas.released, replicas.gone = 2, 3, 4, 5
    service = CallService(CallRelay(os.urandom), QuicIdentity.generate())
    meetings = MeetingService(MeetingLegs(os.urandom), domain="a.example", now_ms=lambda: 0)
    placement = RoomPlacement(store, b"replica-here", domain="a.example", now_ms=lambda: 0)
    placement.moved, placement.lost = 7, 8
    meetings.placement = placement
    m = Metrics()
    m.calls = lambda: call_numbers(service, None, None, replicas)
    # PeerRooms.placed comes through MeetingService.numbers (tests/node/sfu/test_peerrooms.py)
    m.meetings = lambda: dataclasses.replace(meeting_numbers(meetings), peer_joins_placed=6)
    text = m.render({})
    expected = {name: ("counter", n, {}) for name, n in {**REPLICA_CALLS, **PLACEMENT}.items()}
    assert {**_counters(text, REPLICA_CALLS), **_counters(text, PLACEMENT)} == expected


def test_the_cross_replica_counters_are_zero_on_one_replica() -> None:
    service = CallService(CallRelay(os.urandom), QuicIdentity.generate())
    meetings = MeetingService(MeetingLegs(os.urandom), domain="a.example", now_ms=lambda: 0)
    m = Metrics()
    m.calls = lambda: call_numbers(service)
    m.meetings = lambda: meeting_numbers(meetings)
    found = _counters(m.render({}), {**REPLICA_CALLS, **PLACEMENT})
    assert {n for _, n, _ in found.values()} == {0}
