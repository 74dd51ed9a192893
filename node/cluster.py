"""Cross-replica push in cluster mode (DESIGN section 7): envelopes stored on one replica
reach a device connected to another, through Redis pub/sub.

    push = ClusterPush(relay.hub, store)            # store: a RedisStore
    await nursery.start(push.run)                   # before serving clients

Every replica subscribes to one channel, ``<prefix>push``. The enqueue script of
:class:`~node.store.redis.RedisStore` publishes a notice ``(replica, mailbox, seq)`` there
in the same atomic step that stores the envelope, so a stored envelope is always
announced. A replica that holds a connection for that mailbox (and did not store the
envelope itself: the relay hands its own envelopes to the hub directly) reads the
envelope from the store and gives it to :meth:`Hub.deliver`. Notices carry no body, so
the channel stays small however large envelopes are; the cost is one store read per
envelope pushed across replicas.

Why nothing is missed: a session attaches to the hub *before* it reads its mailbox from
the store (``node.session``), and the subscription is in place before the replica
serves. An envelope committed before that read is in the read; one committed after it is
announced after the attach, so the notice finds the session. Pub/sub itself is
at-most-once: when the subscription was lost and re-established (Redis restarted, a
failover), notices may have been lost meanwhile, so every local connection is
superseded and its client reconnects and catches up from the store. A failed read of an
announced envelope supersedes that mailbox's connection for the same reason.

Claims: when a connection attaches here, the hub's :class:`~node.hub.Link` publishes a
claim for its mailbox, and the replica that held the mailbox before supersedes its
connection, as the hub does within one process. (Two claims that cross can supersede
both connections; the client then reconnects once more.)
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any, Final

import trio

from node.hub import Hub
from node.store import StoreError
from node.store.redis import PUSH_CLAIM, RedisStore, parse_push, push_notice

log = logging.getLogger("sealrelay.node.cluster")

CLAIM_BACKLOG: Final = 1024  # claims waiting to be published; more are dropped
FETCHERS: Final = 32  # concurrent store reads of announced envelopes
RESUBSCRIBE_PAUSE: Final = 0.5  # seconds before opening a failed subscription again


def wall_ms() -> int:
    return int(time.time() * 1000)


class ClusterPush:
    """The hub's :class:`~node.hub.Link` to the other replicas; run it with :meth:`run`."""

    def __init__(self, hub: Hub, store: RedisStore, *, now_ms: Callable[[], int] = wall_ms) -> None:
        self._hub = hub
        self._store = store
        self._now_ms = now_ms
        self._claims_in, self._claims_out = trio.open_memory_channel[bytes](CLAIM_BACKLOG)
        self._fetchers = trio.CapacityLimiter(FETCHERS)
        # Counters (for metrics and tests).
        self.delivered = 0  # envelopes from other replicas handed to the hub
        self.superseded = 0  # connections asked to reconnect (claims, lost notices)
        self.resubscribed = 0  # times the subscription came back after a loss

    # --- the Link protocol ---------------------------------------------------------------
    def claim(self, mailbox: bytes) -> None:
        """Publish (soon) that ``mailbox`` attached here. Never blocks: under a flood of
        connections a claim may be dropped; the older connection then stays open and
        receives duplicate pushes until it ends."""
        try:
            self._claims_in.send_nowait(mailbox)
        except trio.WouldBlock:
            log.warning("cluster claim dropped: backlog full")

    # --- the service -----------------------------------------------------------------------
    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Subscribe, link the hub, report started, and relay notices until cancelled.

        :class:`StoreError` if the first subscription fails (the replica should not serve
        without it). Later losses are survived: coredis re-subscribes after a dropped
        connection, and anything else ends the subscription, which is opened again after
        a short pause; either way the local connections are superseded."""
        started = False
        try:
            while True:
                # The first subscription has the store's retry time to succeed.
                first = trio.current_time() + self._store.retry_for
                with trio.CancelScope(deadline=math.inf if started else first) as scope:
                    try:
                        async with (
                            self._store.subscribe_push() as messages,
                            trio.open_nursery() as nursery,
                        ):
                            scope.deadline = math.inf
                            self._hub.set_link(self)
                            nursery.start_soon(self._publish_claims)
                            if started:
                                self._resubscribed()
                            else:
                                started = True
                                task_status.started()
                            await self._relay(messages, nursery)
                    except Exception as exc:  # coredis and anyio errors, translated here
                        if not started:
                            raise StoreError(f"cluster push cannot subscribe: {exc!r}") from None
                        log.warning("cluster push subscription failed", extra={"error": repr(exc)})
                if not started:
                    raise StoreError("cluster push cannot subscribe: Redis did not answer")
                await trio.sleep(RESUBSCRIBE_PAUSE)
        finally:
            self._hub.set_link(None)

    async def _relay(self, messages: Any, nursery: trio.Nursery) -> None:
        subscribed = False
        while True:
            # Not ``async for``: coredis ends that iteration while it re-subscribes.
            message = await messages.get_message()
            if message is None:
                continue
            kind = _text(message.get("type"))
            if kind == "subscribe":
                if subscribed:
                    self._resubscribed()
                subscribed = True
            elif kind == "message":
                self._notice(message.get("data"), nursery)

    def _resubscribed(self) -> None:
        self.resubscribed += 1
        asked = self._hub.supersede()
        self.superseded += asked
        log.warning("cluster push subscription re-established", extra={"superseded": asked})

    def _notice(self, data: object, nursery: trio.Nursery) -> None:
        if not isinstance(data, bytes):
            return
        try:
            kind, replica, mailbox, seq = parse_push(data)
        except ValueError:
            log.warning("cluster push: malformed notice ignored")
            return
        if replica == self._store.replica_id or not self._hub.attached(mailbox):
            return
        if kind == PUSH_CLAIM:
            self.superseded += self._hub.supersede(mailbox)
        else:
            nursery.start_soon(self._fetch, mailbox, seq)

    async def _fetch(self, mailbox: bytes, seq: int) -> None:
        async with self._fetchers:
            try:
                found = await self._store.pending(mailbox, seq - 1, 1, self._now_ms())
            except StoreError as exc:
                log.warning("cluster push: read failed", extra={"error": str(exc)})
                self.superseded += self._hub.supersede(mailbox)  # it catches up on reconnect
                return
        if found and found[0].seq == seq and self._hub.deliver(found[0]):
            self.delivered += 1

    async def _publish_claims(self) -> None:
        async for mailbox in self._claims_out:
            notice = push_notice(self._store.replica_id, mailbox, PUSH_CLAIM)
            try:
                await self._store.publish_push(notice)
            except StoreError as exc:
                log.warning("cluster claim not published", extra={"error": str(exc)})


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
