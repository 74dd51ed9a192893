"""The node process's garbage-collector settings (applied by ``node.cli`` once it listens).

CPython's cyclic collector stops the whole process while it runs, and a full collection
walks every object it tracks. A started node tracks about 90,000 objects (the modules,
classes and functions of trio, hypercorn, cryptography, msgpack and the node itself),
none of which ever becomes garbage. Measured under load (50 senders to 50 receivers at
about 4,800 envelopes/s, docs/operations.md), each full collection stopped the node for
33-48 ms, three or four times in ten seconds: the tail of its latency.

:func:`settle` therefore

- collects once and freezes what exists (``gc.freeze``): the startup objects move to the
  permanent generation, which collections skip (the same measurement then shows full
  collections of about 1 ms);
- collects the youngest generation after :data:`GEN0_THRESHOLD` net allocations of
  tracked objects instead of CPython's 700: nearly every object a request makes is freed
  by reference counting long before that, so young collections, which scan survivors,
  become rare.

Objects made after :func:`settle` (connections, sessions, caches) are collected as usual;
only the startup objects are exempt, so reference cycles made later are still reclaimed.
From then on every collection's pause is timed into ``sealrelay_gc_pause_seconds`` on
``/metrics``, beside the collections per generation and the frozen objects' count.

This is a decision for the process, not for a node: tests that run nodes inside their own
process (``node.server.run_node``) leave the collector as it is.
"""

from __future__ import annotations

import gc
from typing import Final

from node.metrics import watch_gc

GEN0_THRESHOLD: Final = 10_000
"""Net allocations of tracked objects between two collections of the youngest generation."""


def settle() -> None:
    """Collect, freeze every object that now exists, raise the young threshold, and time
    every collection from now on (this first one included)."""
    watch_gc()
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GEN0_THRESHOLD, older, oldest)
