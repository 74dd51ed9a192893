"""Which video layers a receiver gets (issue 18: "the allocation gives every selected
sender's lowest layer first, then raises layers for the on-stage speaker").

Modelled on the allocation of Signal's calling server, in our own words. There, each
receiver's candidate videos are ordered by the height it asked for each (its big on-stage
tile first) and then by when each sender last became the active speaker; the send rate is
then spent layer by layer: every video's lowest layer first, in that order, then the next
layer of each, and so on, each within the budget. Here a receiver asks for ``max_videos``
videos no taller than ``max_height`` within ``budget_kbps``, one height for all, so the
on-stage speaker's precedence is made explicit. The senders it may see come in priority
order (the on-stage, dominant speaker first, then the most recent speakers, then by joining
order). The first ``max_videos`` of them with video are selected, and

1. each selected sender's lowest layer is given, in priority order, while the budget lasts
   (a thumbnail for everyone before a sharp picture for anyone);
2. then the on-stage speaker's layer is raised step by step while the next layer fits both
   the budget and the height asked for;
3. then the others', one layer at a time round by round (everyone's second layer before
   anyone's third), in priority order.

A receiver that asks for a height below a sender's lowest layer still gets that lowest
layer (asking for video at all means a picture). Signal also gives a layer already being
forwarded more budget than a switch to another (fewer switches as the estimate wobbles);
with a fixed budget per receiver there is no wobble to damp, and a switch here waits for a
keyframe anyway (``node.sfu.core``). Pure: a function of its arguments.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import islice

from node.sfu.model import MAX_LAYERS, LayerSpec, VideoRequest

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
    if not given:
        return given
    stage, stage_layers = next(c for c in chosen if c[0] in given)
    budget = _raise(given, stage, stage_layers, ceiling(stage_layers, request.max_height), budget)
    others = [(s, ls, ceiling(ls, request.max_height)) for s, ls in chosen if s in given]
    for step in range(1, MAX_LAYERS):
        for sender, layers, top in others:
            if sender != stage and given[sender] == step - 1 and step <= top:
                budget = _raise(given, sender, layers, step, budget)
    return given


def _raise(
    given: dict[int, int], sender: int, layers: tuple[LayerSpec, ...], top: int, budget: int
) -> int:
    """Raise ``sender`` towards layer ``top`` while each step fits; the budget left."""
    layer = given[sender]
    while layer < top and layers[layer + 1].kbps - layers[layer].kbps <= budget:
        budget -= layers[layer + 1].kbps - layers[layer].kbps
        layer += 1
    given[sender] = layer
    return budget
