"""Meeting legs in the ``CallLegs`` port, in cluster mode (issue 18, item 4;
docs/kubernetes.md "The leg's replica"): so that a QUIC bind that the load balancer sends to
another replica finds the replica that granted the leg (``node.calls.relayed``), as a call
leg's does (``node.calls.clients`` mirrors those).

    mirror = MeetingLegMirror(store.call_legs, replica, meetings.owns, now_ms=...)
    await nursery.start(mirror.run)        # renewals; ended legs deleted
    client_legs.mirror_meeting = mirror.add

A leg granted here (``MeetingJoin``, ``MeetingJoinAt``) is added with the SHA-256 of its
secret and its allocation deadline; every :data:`~node.calls.clients.RENEW_INTERVAL`
seconds the legs still in a room here are renewed, and those that ended are deleted
(a leave or an expiry: at most one round late; until then a bind elsewhere is handed on
and refused here, ``call.no_leg``, as it would be anyway). Store failures are logged: an
unmirrored leg still binds on this replica, and one not renewed is tried again next round.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import trio

from node.calls.clients import RENEW_INTERVAL
from node.calls.legs import ALLOCATION_TIMEOUT_MS, Leg, secret_hash
from node.store.base import LegRecord
from node.store.ports import CallLegs

log = logging.getLogger("sealrelay.node.calls")


class MeetingLegMirror:
    """This replica's meeting legs as the ``CallLegs`` port holds them."""

    def __init__(
        self,
        store: CallLegs,
        replica: bytes,
        owns: Callable[[bytes], bool],
        *,
        now_ms: Callable[[], int],
        renew_interval: float = RENEW_INTERVAL,
    ) -> None:
        self._store, self._replica, self._owns, self._now = store, replica, owns, now_ms
        self._renew_interval = renew_interval
        self.mirrored: set[bytes] = set()
        """The meeting legs added and not yet deleted."""

    async def add(self, leg: Leg) -> None:
        """Mirror the meeting leg ``leg``, just granted here."""
        record = LegRecord(leg.leg_id, self._replica, secret_hash(leg.leg_secret), leg.expires)
        try:
            await self._store.add_leg(record)
        except Exception as exc:  # the leg binds here still; elsewhere it is call.no_leg
            log.warning("meeting leg not mirrored", extra={"error": type(exc).__name__})
            return
        self.mirrored.add(leg.leg_id)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Renew the live legs and delete the ended ones, every round, until cancelled."""
        task_status.started()
        while True:
            await trio.sleep(self._renew_interval)
            await self.round()

    async def round(self) -> None:
        """One round of :meth:`run`."""
        now = self._now()
        for leg_id in list(self.mirrored):
            try:
                if self._owns(leg_id):
                    await self._store.renew_leg(
                        leg_id, self._replica, now + ALLOCATION_TIMEOUT_MS, now
                    )
                else:
                    await self._store.delete_leg(leg_id)
                    self.mirrored.discard(leg_id)
            except Exception as exc:  # tried again next round
                log.warning("meeting leg not renewed", extra={"error": type(exc).__name__})
                return


__all__ = ["MeetingLegMirror"]
