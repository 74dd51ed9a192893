"""The hub: which live connection holds which mailbox, and handing envelopes to it.

A mailbox belongs to one device, so it has at most one live connection; a new connection
for the same mailbox supersedes the old one (which is asked to close). Handing over is
synchronous and in memory: the receiving session buffers the envelope and wakes its shell,
which pushes it; the store stays the record, so anything lost here is pushed again after a
reconnection.
"""

from __future__ import annotations

from typing import Protocol

from node.store import StoredEnvelope


class Receiver(Protocol):
    """What the hub needs of a session."""

    def offer(self, envelope: StoredEnvelope) -> None:
        """Take a newly stored envelope for this mailbox (never blocks)."""
        ...

    def supersede(self) -> None:
        """Another connection took this mailbox over: close this one."""
        ...


class Hub:
    """mailbox id -> the session that receives it."""

    __slots__ = ("_live",)

    def __init__(self) -> None:
        self._live: dict[bytes, Receiver] = {}

    def attach(self, mailbox: bytes, receiver: Receiver) -> None:
        previous = self._live.get(mailbox)
        self._live[mailbox] = receiver
        if previous is not None and previous is not receiver:
            previous.supersede()

    def detach(self, mailbox: bytes, receiver: Receiver) -> None:
        if self._live.get(mailbox) is receiver:
            del self._live[mailbox]

    def deliver(self, envelope: StoredEnvelope) -> bool:
        """Hand ``envelope`` to its mailbox's session; False if none is connected."""
        receiver = self._live.get(envelope.mailbox)
        if receiver is None:
            return False
        receiver.offer(envelope)
        return True

    def receivers(self) -> list[Receiver]:
        return list(self._live.values())

    def __len__(self) -> int:
        return len(self._live)
