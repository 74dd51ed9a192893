"""The delivery checker of the resilience runs: what the senders attempted and were told,
what the receiving applications got, and whether the run is valid.

Every envelope has a unique id (eid). The senders call :meth:`Checker.attempt` before the
first send of an eid (its recipient mailbox and the *link* it crosses, e.g.
``"alpha>bravo"``) and :meth:`Checker.acknowledged` when their node answered ``Sent``; the
receivers call :meth:`Checker.pushed` for every envelope pushed to them and
:meth:`Checker.confirmed` once their node confirmed an ``Ack``. The counts:

attempted     eids a sender tried to send
acknowledged  eids a node acknowledged (stored durably or queued for a peer domain)
delivered     eids that reached their recipient's application (first push)
lost          acknowledged and never delivered
duplicated    pushed again after the recipient's ack was confirmed: the node had promised
              the envelope was gone, so an application that has forgotten the eid shows
              it twice (the application duplicate)
redelivered   pushed again before the ack was confirmed (at-least-once; the application
              drops it by eid) — reported, allowed
unexpected    delivered but never sent
misrouted     delivered to another mailbox than the one it was sent to
corrupt       delivered with other bytes than were sent

A run is valid when lost, duplicated, unexpected, misrouted and corrupt are all zero.
:meth:`Checker.resumed` gives, per link, the first delivery after a given time: the
moment delivery resumed after a fault.
"""

from __future__ import annotations

import bisect
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Final

COLUMNS: Final = (
    "attempted",
    "acknowledged",
    "delivered",
    "lost",
    "duplicated",
    "redelivered",
    "unexpected",
    "misrouted",
    "corrupt",
)
MUST_BE_ZERO: Final = ("lost", "duplicated", "unexpected", "misrouted", "corrupt")


@dataclass
class Checker:
    """The whole system's delivery ledger (see the module docstring). ``body_of(eid)`` is
    the body a sender sends for ``eid`` (``None``: bodies are not checked)."""

    body_of: Callable[[bytes], bytes] | None = None
    clock: Callable[[], float] = time.monotonic
    target: dict[bytes, bytes] = field(default_factory=dict)  # eid -> recipient mailbox
    link: dict[bytes, str] = field(default_factory=dict)  # eid -> link it crosses
    acked_at: dict[bytes, float] = field(default_factory=dict)
    delivered_at: dict[bytes, float] = field(default_factory=dict)  # first push
    pushes: Counter[bytes] = field(default_factory=Counter)
    timeline: dict[str, list[float]] = field(default_factory=dict)  # link -> first pushes
    confirmed_acks: set[bytes] = field(default_factory=set)
    duplicated: int = 0
    unexpected: int = 0
    misrouted: int = 0
    corrupt: int = 0

    # --- what the senders and receivers report ------------------------------------------

    def attempt(self, eid: bytes, mailbox: bytes, link: str = "") -> None:
        if eid in self.target and self.target[eid] != mailbox:
            raise ValueError("an eid reused for another recipient")
        self.target[eid] = mailbox
        self.link[eid] = link

    def acknowledged(self, eid: bytes) -> None:
        self.acked_at.setdefault(eid, self.clock())

    def pushed(self, mailbox: bytes, eid: bytes, body: bytes) -> bool:
        """One envelope pushed to ``mailbox``; whether the application takes it (the first
        push of its eid: later ones it drops)."""
        if eid in self.confirmed_acks:
            self.duplicated += 1
        self.pushes[eid] += 1
        first = self.pushes[eid] == 1
        if first:
            at = self.delivered_at[eid] = self.clock()
            self.timeline.setdefault(self.link.get(eid, ""), []).append(at)
            if eid not in self.target:
                self.unexpected += 1
            elif self.target[eid] != mailbox:
                self.misrouted += 1
            elif self.body_of is not None and body != self.body_of(eid):
                self.corrupt += 1
        return first

    def confirmed(self, eids: Iterable[bytes]) -> None:
        self.confirmed_acks.update(eids)

    # --- the verdict --------------------------------------------------------------------

    def lost(self) -> set[bytes]:
        return set(self.acked_at) - set(self.delivered_at)

    def caught_up(self) -> bool:
        return not self.lost()

    def counts(self) -> dict[str, int]:
        return {
            "attempted": len(self.target),
            "acknowledged": len(self.acked_at),
            "delivered": len(self.delivered_at),
            "lost": len(self.lost()),
            "duplicated": self.duplicated,
            "redelivered": sum(self.pushes.values()) - len(self.pushes) - self.duplicated,
            "unexpected": self.unexpected,
            "misrouted": self.misrouted,
            "corrupt": self.corrupt,
        }

    def problems(self) -> list[str]:
        """What makes the run invalid (empty: valid)."""
        counts = self.counts()
        return [f"{name} = {counts[name]}" for name in MUST_BE_ZERO if counts[name]]

    def valid(self) -> bool:
        return not self.problems()

    def table(self, title: str = "delivery") -> str:
        counts = self.counts()
        head = " ".join(f"{k:>12}" for k in COLUMNS)
        row = " ".join(f"{counts[k]:>12}" for k in COLUMNS)
        verdict = "valid" if self.valid() else "INVALID: " + ", ".join(self.problems())
        return f"{title} ({verdict}):\n{head}\n{row}"

    # --- per link -------------------------------------------------------------------------

    def resumed(self, link: str, after: float) -> float | None:
        """The clock time of the first delivery over ``link`` after ``after`` (``None``:
        none yet)."""
        times = self.timeline.get(link, [])  # in order: the clock is monotonic
        at = bisect.bisect_right(times, after)
        return times[at] if at < len(times) else None
