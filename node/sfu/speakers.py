"""Who speaks: the dominant speaker and the loudest others, from RFC 6464 audio levels
(issue 18: "the dominant speaker, recomputed about every 300 ms, plus the 3 loudest").

Each audio datagram's clear header carries the sender's RFC 6464 client-to-mixer level: a
voice-activity bit and the level in -dBov, 0 (loudest) to 127 (silence). The core adds
each datagram to its sender's :class:`Activity` (two integer additions, nothing else on the
per-datagram path). Every :data:`INTERVAL_MS` the shell's tick calls
:meth:`SpeakerDetector.recompute`, which

1. turns each sender's interval into a loudness in 0..127: the mean over all its audio
   datagrams of ``127 - level``, counting a datagram without voice activity as 0;
2. smooths it over the recent intervals (an exponential moving average with weight
   :data:`SMOOTHING` for the newest), so one cough does not take the stage;
3. ranks the senders whose smoothed loudness is above :data:`ACTIVE_LEVEL`;
4. keeps the current dominant speaker unless another ranks first by a clear margin
   (:data:`MARGIN` relative plus :data:`MARGIN_ABS`) for :data:`HOLD` intervals in a row:
   hysteresis, so the stage does not flap between two people talking over each other. A
   dominant speaker that left, or went quiet while someone else speaks, is replaced at once.

In the manner of the dominant speaker identification of Volfin and Cohen ("Dominant speaker
identification for multipoint videoconferencing", 2013), reduced to what a node may see:
levels, never samples. Pure; time is an argument.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from node.sfu.model import Speakers
from wire.media import SILENCE

INTERVAL_MS: Final = 300
"""How often the dominant speaker and the loudest others are recomputed."""
SMOOTHING: Final = 0.4
"""Weight of the newest interval in the smoothed loudness (the rest is history)."""
ACTIVE_LEVEL: Final = 2.0
"""Smoothed loudness (0..127) above which a sender counts as speaking."""
MARGIN: Final = 0.2
"""How much louder (relative) a challenger must be to take the stage."""
MARGIN_ABS: Final = 3.0
"""And by how much at least, in loudness units (keeps two quiet voices from flapping)."""
HOLD: Final = 2
"""Intervals in a row a challenger must lead by the margin before it takes the stage."""

_NONE: Final = Speakers(None, ())


@dataclass(slots=True, eq=False)
class Activity:
    """One sender's audio since the last recompute (``loud``: the sum of ``127 - level``
    over datagrams with voice activity; ``frames``: all its audio datagrams), its smoothed
    loudness, and when it last spoke (ms; -1: never)."""

    loud: int = 0
    frames: int = 0
    score: float = 0.0
    last_spoke: int = -1

    def add(self, level: int, voice: bool) -> None:
        """Count one audio datagram (the core inlines this on its hot path)."""
        self.frames += 1
        if voice:
            self.loud += SILENCE - level


class SpeakerDetector:
    """The ranking of a meeting's senders by smoothed loudness, with a sticky dominant."""

    def __init__(self) -> None:
        self._activity: dict[int, Activity] = {}
        self._dominant: int | None = None
        self._challenger: int | None = None
        self._lead = 0
        self._speakers = _NONE

    @property
    def speakers(self) -> Speakers:
        """The selection of the last :meth:`recompute`."""
        return self._speakers

    def add(self, sender: int) -> Activity:
        """Start following ``sender``; its accumulator, for the core to feed."""
        return self._activity.setdefault(sender, Activity())

    def remove(self, sender: int) -> None:
        """``sender`` left; it is replaced on stage at the next recompute."""
        self._activity.pop(sender, None)

    def last_spoke(self, sender: int) -> int:
        """When ``sender`` last counted as speaking (ms), -1 if never or unknown."""
        activity = self._activity.get(sender)
        return -1 if activity is None else activity.last_spoke

    def recompute(self, now: int) -> Speakers:
        """Fold the interval just ended into the smoothed levels and rank again."""
        for a in self._activity.values():
            level = a.loud / a.frames if a.frames else 0.0
            a.score += SMOOTHING * (level - a.score)
            a.loud = a.frames = 0
            if a.score > ACTIVE_LEVEL:
                a.last_spoke = now
        ranked = sorted(
            (s for s, a in self._activity.items() if a.score > ACTIVE_LEVEL),
            key=lambda s: (-self._activity[s].score, s),
        )
        self._dominant = self._choose(ranked)
        dom = self._dominant
        order = tuple(ranked) if dom is None else (dom, *(s for s in ranked if s != dom))
        self._speakers = Speakers(dom, order)
        return self._speakers

    def _choose(self, ranked: list[int]) -> int | None:
        current = self._dominant
        if current not in self._activity:
            current = None
        if not ranked:
            self._challenger, self._lead = None, 0
            return current
        top = ranked[0]
        if current is None or current not in ranked:
            self._challenger, self._lead = None, 0
            return top
        if top == current or not self._clearly_louder(top, current):
            self._challenger, self._lead = None, 0
            return current
        self._lead = self._lead + 1 if top == self._challenger else 1
        self._challenger = top
        if self._lead >= HOLD:
            self._challenger, self._lead = None, 0
            return top
        return current

    def _clearly_louder(self, challenger: int, current: int) -> bool:
        ours = self._activity[current].score
        theirs = self._activity[challenger].score
        return theirs >= ours * (1 + MARGIN) and theirs - ours >= MARGIN_ABS
