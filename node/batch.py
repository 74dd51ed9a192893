"""Sends stored together: a ``SendBatch`` frame, and Sends a client pipelined.

A client with several envelopes queued sends them in one ``SendBatch`` message; the node
checks each Send as on its own (``Relay.checked``: same checks, same error codes), stores
the accepted ones in order in one commit (``Relay.store_all``) and answers one
``SentBatch`` holding each Send's ``Sent`` or ``Error``, in order. ``Sent`` comes only
after the commit, and a repeated ``eid`` is a duplicate, as for a single Send.
:func:`store_sends` does the same for single ``Send`` messages that a connection read
together (``Session.receive_many``): one commit, one answer each.

Rate limits: a ``SendBatch`` frame took one token of the caller's address and account
when it was read (``Session.receive``); each further Send takes one more, and a Send that
finds no token is refused with ``limit.rate`` (its ``retry_after`` set) while the others
go on.
"""

from __future__ import annotations

import logging

from node import errors
from node.errors import NodeError
from node.limits import retry_after_ms
from node.relay import Caller, Relay
from node.store import StoredEnvelope, StoreError
from wire.relay import Error, Send, SendBatch, Sent, SentBatch

log = logging.getLogger("sealrelay.node.batch")


async def send_batch(relay: Relay, caller: Caller, peer: str, frame: SendBatch) -> SentBatch:
    """Store every Send of ``frame`` that passes its checks; one result per Send."""
    now = relay.clock()
    refusals = [_charge(relay, caller, peer, now) if i else None for i in range(len(frame.sends))]
    return SentBatch(frame.id, tuple(await store_sends(relay, frame.sends, refusals)))


async def store_sends(
    relay: Relay,
    sends: tuple[Send, ...] | list[Send],
    refusals: list[NodeError | None] | None = None,
) -> list[Sent | Error]:
    """Check each of ``sends`` (refused at once where ``refusals`` says so), store the
    accepted ones in order in one commit; one ``Sent`` or ``Error`` per Send, in order."""
    results: list[Sent | Error] = []
    accepted: list[tuple[int, Send, StoredEnvelope]] = []
    store_failed: StoreError | None = None  # then the rest is refused alike, at once
    for i, send in enumerate(sends):
        refused = refusals[i] if refusals else None
        try:
            if store_failed is not None:
                raise store_failed
            if refused is not None:
                raise refused
            accepted.append((i, send, await relay.checked(send)))
        except StoreError as exc:  # reading the recipient failed: nothing was stored
            store_failed = exc
            results.append(_error(relay, send.id, relay.store_faults.refusal(exc)))
            continue
        except NodeError as exc:
            results.append(_error(relay, send.id, exc))
            continue
        results.append(Sent(send.id, send.eid, False))  # replaced once stored
    if accepted:
        await _store(relay, accepted, results)
    return results


async def _store(
    relay: Relay, accepted: list[tuple[int, Send, StoredEnvelope]], results: list[Sent | Error]
) -> None:
    try:
        stored = await relay.store_all([envelope for _, _, envelope in accepted])
    except Exception as exc:  # nothing of the batch is stored: each Send may be retried
        refusal = _refusal(relay, exc)
        for i, send, _ in accepted:
            results[i] = _error(relay, send.id, refusal)
        return
    for (i, send, _), new in zip(accepted, stored, strict=True):
        results[i] = Sent(send.id, send.eid, not new)


def _refusal(relay: Relay, exc: Exception) -> NodeError:
    if isinstance(exc, StoreError):
        return relay.store_faults.refusal(exc)
    log.exception("storing a batch failed", extra={"error": type(exc).__name__})
    return NodeError(errors.INTERNAL, "internal error")


def _charge(relay: Relay, caller: Caller, peer: str, now: float) -> NodeError | None:
    """Take one token for a further Send of a batch: None, or the ``limit.rate`` refusal."""
    wait = relay.ip_limit.take(peer, now) or relay.account_limit.take(caller.address, now)
    if wait:
        return NodeError(errors.LIMIT_RATE, "too many requests", retry_after_ms(wait))
    return None


def _error(relay: Relay, request_id: int, exc: NodeError) -> Error:
    relay.metrics.reject(exc.code)
    return Error(request_id, exc.code, exc.message, exc.retry_after)
