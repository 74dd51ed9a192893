"""Which video layers a receiver gets (issue 18: "the allocation gives every selected
sender's lowest layer first, then raises layers for the on-stage speaker").

Modelled on the allocation of Signal's calling server, in our own words: the receiver asks
for ``max_videos`` videos no taller than ``max_height`` within ``budget_kbps``. The senders
it may see come in priority order (the on-stage, dominant speaker first, then the most
recent speakers, then by joining order). The first ``max_videos`` of them with video are
selected, and

1. each selected sender's lowest layer is given, in priority order, while the budget lasts
   (a thumbnail for everyone before a sharp picture for anyone);
2. then the on-stage speaker's layer is raised step by step while the next layer fits both
   the budget and the height asked for;
3. then the others', in priority order, the same way.

A receiver that asks for a height below a sender's lowest layer still gets that lowest
layer (asking for video at all means a picture). Pure: a function of its arguments.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import islice

from node.sfu.model import LayerSpec, VideoRequest

Candidate = tuple[int, tuple[LayerSpec, ...]]
"""A sender the receiver may see and the layers it publishes (lowest first, non-empty)."""


def ceiling(layers: tuple[LayerSpec, ...], max_height: int) -> int:
    """The highest layer no taller than ``max_height``; layer 0 if even that is taller."""
    best = 0
    for index, layer in enumerate(layers):
        if layer.height <= max_height:
            best = index
    return best


def allocate(request: VideoRequest, candidates: Iterable[Candidate]) -> dict[int, int]:
    """``{sender: layer}`` for one receiver; ``candidates`` in priority order (read only as
    far as the first ``max_videos`` with video)."""
    chosen = list(islice((c for c in candidates if c[1]), request.max_videos))
    budget = request.budget_kbps
    given: dict[int, int] = {}
    for sender, layers in chosen:
        if layers[0].kbps <= budget:
            given[sender] = 0
            budget -= layers[0].kbps
    for sender, layers in chosen:
        if sender not in given:
            continue
        top = ceiling(layers, request.max_height)
        layer = given[sender]
        while layer < top and layers[layer + 1].kbps - layers[layer].kbps <= budget:
            budget -= layers[layer + 1].kbps - layers[layer].kbps
            layer += 1
        given[sender] = layer
    return given
