"""What the group's member list says about a running meeting (issue 18: "a removed
participant cannot decrypt anything after the switch"). Pure.

A group's members change only by signed group changes (``client.groups``); a meeting's
participants are devices of members. :func:`removed` names the participants whose address
is no longer a member, as this device's copy of the group says: the leader drops them
(``MeetingLeader.remove``: a fresh epoch for the others only, batched with leaves, cause
``REMOVE``), the others count them as gone (a removed leader is handed over from), and their
signals are ignored, as any non-member's. A device judges only while it is a member itself
(one that was removed, or that does not know the group, has no say).

The group change and the key leader's next epoch travel apart (a hand-over after the
leader's removal may come before the change that makes it acceptable), so an epoch that
cannot be accepted yet is held a while and tried again (:class:`Hold`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from wire.meeting import MeetingEpoch, RosterEntry

HOLD_MS: Final = 5_000
"""How long an epoch that cannot be accepted yet is held and tried again."""


def removed(
    entries: Iterable[RosterEntry], members: Iterable[str], me: str, gone: frozenset[int]
) -> set[int]:
    """The pids of ``entries`` whose address is not in ``members``, less those already
    ``gone``; none if ``me`` is not a member."""
    current = set(members)
    if me not in current:
        return set()
    return {p.pid for p in entries if p.address not in current} - gone


@dataclass(frozen=True)
class Held:
    """An epoch from ``sender``'s ``device`` (identity key ``key``) not accepted yet, tried
    again until ``until`` (ms)."""

    sender: str
    device: int
    key: bytes
    msg: MeetingEpoch
    until: int

    @property
    def epoch(self) -> int:
        return self.msg.roster.body.epoch


class Hold:
    """At most one epoch not accepted yet (the newest), held :data:`HOLD_MS`."""

    def __init__(self) -> None:
        self.held: Held | None = None

    def keep(self, sender: str, device: int, key: bytes, msg: MeetingEpoch, now: int) -> None:
        """``msg`` could not be accepted at ``now``: hold it, unless a newer one is held."""
        held = self.held
        if held is None or now >= held.until or msg.roster.body.epoch > held.epoch:
            self.held = Held(sender, device, key, msg, now + HOLD_MS)

    def accepted(self, epoch: int) -> None:
        """``epoch`` was accepted: a held one no newer is done with."""
        if self.held is not None and self.held.epoch <= epoch:
            self.held = None

    def due(self, now: int) -> Held | None:
        """The held epoch to try again at ``now``; None if none (or its time is up)."""
        if self.held is not None and now >= self.held.until:
            self.held = None
        return self.held

    def clear(self) -> None:
        self.held = None
