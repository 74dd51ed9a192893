"""The hub: which live connection holds which mailbox, and handing envelopes to it.

A mailbox belongs to one device, so it has at most one live connection; a new connection
for the same mailbox supersedes the old one (which is asked to close). Handing over is
synchronous and in memory: the receiving session buffers the envelope and wakes its shell,
which pushes it; the store stays the record, so anything lost here is pushed again after a
reconnection.

In cluster mode (``node.cluster``) a :class:`Link` connects the hubs of the replicas: the
hub tells it which mailboxes attach here (so another replica's connection for the same
mailbox is superseded), and the link hands envelopes stored on other replicas to
:meth:`Hub.deliver` and supersedes connections with :meth:`Hub.supersede`.
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


class Link(Protocol):
    """What the hub tells the other replicas of a cluster (``node.cluster.ClusterPush``)."""

    def claim(self, mailbox: bytes) -> None:
        """A connection for ``mailbox`` attached here (never blocks)."""
        ...


class Hub:
    """mailbox id -> the session that receives it."""

    __slots__ = ("_link", "_live")

    def __init__(self) -> None:
        self._live: dict[bytes, Receiver] = {}
        self._link: Link | None = None

    def set_link(self, link: Link | None) -> None:
        """Connect this hub to the other replicas' (cluster mode), or disconnect it."""
        self._link = link

    def attach(self, mailbox: bytes, receiver: Receiver) -> None:
        previous = self._live.get(mailbox)
        self._live[mailbox] = receiver
        if previous is not None and previous is not receiver:
            previous.supersede()
        if self._link is not None:
            self._link.claim(mailbox)

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

    def attached(self, mailbox: bytes) -> bool:
        return mailbox in self._live

    def supersede(self, mailbox: bytes | None = None) -> int:
        """Ask the connection of ``mailbox`` (None: every connection) to close, so its
        client reconnects and catches up from the store; how many were asked."""
        if mailbox is None:
            chosen = list(self._live.values())
        else:
            found = self._live.get(mailbox)
            chosen = [] if found is None else [found]
        for receiver in chosen:
            receiver.supersede()
        return len(chosen)

    def receivers(self) -> list[Receiver]:
        return list(self._live.values())

    def __len__(self) -> int:
        return len(self._live)
