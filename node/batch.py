"""``SendBatch``: several sends in one frame, each answered on its own (``wire.relay``).

A client with several envelopes queued sends them in one WebSocket message; the node
checks each Send as on its own (``Relay.checked``: same checks, same error codes), stores
the accepted ones in order in one commit (``Relay.store_all``) and answers one
``SentBatch`` holding each Send's ``Sent`` or ``Error``, in order. ``Sent`` comes only
after the commit, and a repeated ``eid`` is a duplicate, as for a single Send.

Rate limits: the frame took one token of the caller's address and account when it was
read (``Session.receive``); each further Send takes one more, and a Send that finds no
token is refused with ``limit.rate`` (its ``retry_after`` set) while the others go on.
"""

from __future__ import annotations

import logging

from node import errors
from node.errors import NodeError
from node.limits import retry_after_ms
from node.relay import Caller, Relay
from node.store import StoredEnvelope
from wire.relay import Error, Send, SendBatch, Sent, SentBatch

log = logging.getLogger("sealrelay.node.batch")


async def send_batch(relay: Relay, caller: Caller, peer: str, frame: SendBatch) -> SentBatch:
    """Store every Send of ``frame`` that passes its checks; one result per Send."""
    results: list[Sent | Error] = []
    accepted: list[tuple[int, Send, StoredEnvelope]] = []
    now = relay.clock()
    for i, send in enumerate(frame.sends):
        try:
            if i:
                _charge(relay, caller, peer, now)
            accepted.append((i, send, await relay.checked(send)))
        except NodeError as exc:
            results.append(_error(relay, send.id, exc))
            continue
        results.append(Sent(send.id, send.eid, False))  # replaced once stored
    if accepted:
        await _store(relay, accepted, results)
    return SentBatch(frame.id, tuple(results))


async def _store(
    relay: Relay, accepted: list[tuple[int, Send, StoredEnvelope]], results: list[Sent | Error]
) -> None:
    try:
        stored = await relay.store_all([envelope for _, _, envelope in accepted])
    except Exception as exc:  # nothing of the batch is stored: each Send may be retried
        log.exception("storing a batch failed", extra={"error": type(exc).__name__})
        for i, send, _ in accepted:
            results[i] = _error(relay, send.id, NodeError(errors.INTERNAL, "internal error"))
        return
    for (i, send, _), new in zip(accepted, stored, strict=True):
        results[i] = Sent(send.id, send.eid, not new)


def _charge(relay: Relay, caller: Caller, peer: str, now: float) -> None:
    """Take one token for a further Send of the batch (``limit.rate`` if there is none)."""
    wait = relay.ip_limit.take(peer, now) or relay.account_limit.take(caller.address, now)
    if wait:
        raise NodeError(errors.LIMIT_RATE, "too many requests", retry_after_ms(wait))


def _error(relay: Relay, request_id: int, exc: NodeError) -> Error:
    relay.metrics.reject(exc.code)
    return Error(request_id, exc.code, exc.message, exc.retry_after)
