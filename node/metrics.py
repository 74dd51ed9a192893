"""Prometheus metrics written by hand (text exposition format 0.0.4).

:class:`Metrics` holds every series the node exports; ``render`` writes them with the
store's gauges (passed in, since reading them is async) for ``GET /metrics``:

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
"""

from __future__ import annotations

import bisect
import gc
import time
from collections.abc import Mapping, Sequence
from typing import Final

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
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
GC_PAUSE_BUCKETS: Final = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1)


class Histogram:
    """Cumulative buckets (upper bounds in seconds), a sum and a count."""

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

    def lines(self, name: str) -> list[str]:
        out, running = [], 0
        for bound, n in zip(self.bounds, self.counts, strict=False):
            running += n
            out.append(f'{name}_bucket{{le="{bound}"}} {running}')
        out.append(f'{name}_bucket{{le="+Inf"}} {self.count}')
        out.append(f"{name}_sum {self.total:.6f}")
        out.append(f"{name}_count {self.count}")
        return out


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


class Metrics:
    """The node's counters, gauges and histograms."""

    def __init__(self) -> None:
        self.accepted = 0
        self.delivered = 0
        self.expired = 0
        self.rejected: dict[str, int] = {}
        self.connections = 0
        self.request_seconds = Histogram()
        self.send_to_deliver = Histogram()
        # federation counters: metric name -> label values -> count
        self.labeled: dict[str, dict[tuple[tuple[str, str], ...], int]] = {}
        self.queue_depths: dict[str, int] = {}

    def count(self, name: str, n: int = 1, **labels: str) -> None:
        """Add ``n`` to counter ``sealrelay_<name>_total`` with these labels."""
        series = self.labeled.setdefault(name, {})
        key = tuple(sorted(labels.items()))
        series[key] = series.get(key, 0) + n

    def reject(self, code: str) -> None:
        self.rejected[code] = self.rejected.get(code, 0) + 1

    def render(self, store_stats: Mapping[str, int]) -> str:
        lines: list[str] = []
        _counter(lines, "envelopes_accepted_total", "Envelopes stored.", self.accepted)
        _counter(lines, "envelopes_delivered_total", "Envelopes pushed.", self.delivered)
        _counter(lines, "envelopes_expired_total", "Envelopes expired.", self.expired)
        name = "sealrelay_frames_rejected_total"
        lines += [f"# HELP {name} Error frames sent, by code.", f"# TYPE {name} counter"]
        lines += [f'{name}{{code="{c}"}} {n}' for c, n in sorted(self.rejected.items())]
        _gauge(lines, "connections", "Live client WebSockets.", self.connections)
        depth = store_stats.get("envelopes", 0)
        _gauge(lines, "mailbox_envelopes", "Envelopes stored in mailboxes.", depth)
        for key, value in sorted(store_stats.items()):
            _gauge(lines, f"store_{_metric_name(key)}", f"Store statistic {key}.", value)
        for metric, series in sorted(self.labeled.items()):
            full = f"sealrelay_{metric}_total"
            lines += [f"# HELP {full} Counter {metric}.", f"# TYPE {full} counter"]
            lines += [f"{full}{{{_labels(key)}}} {n}" for key, n in sorted(series.items())]
        full = "sealrelay_federation_queue"
        lines += [f"# HELP {full} Items queued for a peer domain.", f"# TYPE {full} gauge"]
        lines += [f'{full}{{domain="{d}"}} {n}' for d, n in sorted(self.queue_depths.items())]
        _histogram(lines, "request_seconds", "Request latency.", self.request_seconds)
        _histogram(
            lines, "send_to_deliver_seconds", "Stored to pushed latency.", self.send_to_deliver
        )
        _gc_lines(lines)
        return "\n".join(lines) + "\n"


def _gc_lines(lines: list[str]) -> None:
    name = "sealrelay_gc_collections_total"
    lines += [f"# HELP {name} Cyclic garbage collections, by generation.", f"# TYPE {name} counter"]
    lines += [
        f'{name}{{generation="{g}"}} {stats["collections"]}'
        for g, stats in enumerate(gc.get_stats())
    ]
    frozen = gc.get_freeze_count()
    _gauge(lines, "gc_frozen_objects", "Objects the collector skips (frozen).", frozen)
    if GC_PAUSES in gc.callbacks:
        _histogram(lines, "gc_pause_seconds", "Garbage collection pauses.", GC_PAUSES.histogram)


def _labels(key: tuple[tuple[str, str], ...]) -> str:
    return ",".join(f'{k}="{_label_value(v)}"' for k, v in key)


def _label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _metric_name(key: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in key.lower())


def _counter(lines: list[str], name: str, help_text: str, value: int) -> None:
    full = f"sealrelay_{name}"
    lines += [f"# HELP {full} {help_text}", f"# TYPE {full} counter", f"{full} {value}"]


def _gauge(lines: list[str], name: str, help_text: str, value: int) -> None:
    full = f"sealrelay_{name}"
    lines += [f"# HELP {full} {help_text}", f"# TYPE {full} gauge", f"{full} {value}"]


def _histogram(lines: list[str], name: str, help_text: str, hist: Histogram) -> None:
    full = f"sealrelay_{name}"
    lines += [f"# HELP {full} {help_text}", f"# TYPE {full} histogram", *hist.lines(full)]
