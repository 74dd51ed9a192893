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
cannot be accepted yet is held a while (:data:`HOLD_MS`) and tried again
(``client.meetings.intake``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from wire.meeting import RosterEntry

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
