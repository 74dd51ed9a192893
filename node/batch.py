"""Sends stored together: a ``SendBatch`` frame, and Sends a client pipelined.

A client with several envelopes queued sends them in one ``SendBatch`` message; the node
checks each Send as on its own (``node.accept``: same checks, same error codes), stores
the accepted ones in order in one commit and answers one
``SentBatch`` holding each Send's ``Sent`` or ``Error``, in order. ``Sent`` comes only
after the commit, and a repeated ``eid`` is a duplicate, as for a single Send.
:func:`store_sends` does the same for single ``Send`` messages that a connection read
together (``Session.receive_many``): one commit, one answer each.

Rate limits: a ``SendBatch`` frame took one token of the caller's address and account
(on an anonymous connection: of its address and of the connection) when it was read
(``Session.receive``); each further Send takes one more (``ConnCore.charge_run``: all of
them in one call per limiter, with the same outcome as one call per Send), and a Send
that finds no token is refused with ``limit.rate`` (its ``retry_after`` set) while the
others go on. Sends over an anonymous connection (``anonymous``) are limited per
recipient mailbox too (``node.accept``).

Introductions stored together: an ``IntroduceMany`` frame (issue 20, first contact at
group scale) takes one token of the sender's ``introductions_per_minute`` for the whole
upload (``limit.rate`` for the frame when none is left); each introduction in it takes one
of the sender's ``batched_introductions_per_minute`` (and, after the first, one of the
address's and account's request rates, as a batch's Sends do), and then, in
``node.accept``, one of its recipient's ``introductions_per_recipient_per_minute`` and the
recipient's consent. Each is answered as an ``Introduce`` on its own would be.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from node import errors
from node.accept import Accepted, Delivery, NotStored, Recipient
from node.errors import NodeError
from node.limits import retry_after_ms
from node.relay import Caller, Relay
from node.store import StoreError
from wire.relay import Error, Introduce, IntroduceMany, Send, SendBatch, Sent, SentBatch

log = logging.getLogger("sealrelay.node.batch")


Charge = Callable[[float, int], list[float]]
"""Takes one token of the connection's limiters ``count`` times at ``now``
(``ConnCore.charge_run``): per charge 0.0 or the seconds to wait."""


async def send_batch(
    relay: Relay, frame: SendBatch, charge: Charge, *, anonymous: bool = False
) -> SentBatch:
    """Store every Send of ``frame`` that passes its checks; one result per Send."""
    waits = charge(relay.clock(), len(frame.sends) - 1)
    refusals = [None, *map(_refusal_of, waits)]
    sends = await store_sends(relay, frame.sends, refusals, anonymous=anonymous)
    return SentBatch(frame.id, tuple(sends))


async def introduce_many(
    relay: Relay, caller: Caller, peer: str, frame: IntroduceMany
) -> SentBatch:
    """Store every introduction of ``frame`` that passes its checks; one result each."""
    now = relay.clock()
    wait = relay.intro_limit.take(caller.address, now)
    if wait:
        raise NodeError(errors.LIMIT_RATE, "too many introductions", retry_after_ms(wait))
    refusals = [_charge_introduction(relay, caller, peer, now, i) for i in range(len(frame.intros))]
    results = await store_sends(relay, frame.intros, refusals, caller.address)
    return SentBatch(frame.id, tuple(results))


async def store_sends(
    relay: Relay,
    sends: Sequence[Send | Introduce],
    refusals: list[NodeError | None] | None = None,
    sender: str | None = None,
    *,
    anonymous: bool = False,
) -> list[Sent | Error]:
    """Check each of ``sends`` (refused at once where ``refusals`` says so), store the
    accepted ones in order in one commit (``Intake.accept``); one ``Sent`` or ``Error``
    per Send, in order. Introductions record ``sender``, the introducing address;
    ``anonymous``: the Sends came over an anonymous connection."""
    items: list[Delivery | NodeError] = []
    domain = relay.domain
    for i, send in enumerate(sends):
        refused = refusals[i] if refusals else None
        if isinstance(send, Introduce):
            recipient = Recipient(send.mailbox, None, introduction=True)
        else:
            recipient = Recipient(send.mailbox, send.token)
        delivery = Delivery(
            send.eid, send.body, (recipient,), send.ttl, domain, sender, anonymous=anonymous
        )
        items.append(delivery if refused is None else refused)
    outcomes = await relay.intake.accept(items)
    results: list[Sent | Error] = []
    refusal_of: dict[int, NodeError] = {}  # one refusal (counted, logged) per failure
    for send, outcome in zip(sends, outcomes, strict=True):
        verdict = outcome.verdicts[0] if isinstance(outcome, Accepted) else outcome
        if isinstance(verdict, bool):
            results.append(Sent(send.id, send.eid, not verdict))
            continue
        if isinstance(verdict, StoreError):  # reading its recipient failed: counted each
            verdict = relay.store_faults.refusal(verdict)
        elif isinstance(verdict, NotStored):  # the commit failed: counted once
            if id(verdict.error) not in refusal_of:
                refusal_of[id(verdict.error)] = _refusal(relay, verdict.error)
            verdict = refusal_of[id(verdict.error)]
        results.append(_error(relay, send.id, verdict))
    return results


def _refusal(relay: Relay, exc: Exception) -> NodeError:
    if isinstance(exc, StoreError):
        return relay.store_faults.refusal(exc)
    log.exception("storing a batch failed", extra={"error": type(exc).__name__})
    return NodeError(errors.INTERNAL, "internal error")


def _refusal_of(wait: float) -> NodeError | None:
    """A further Send of a batch charged ``wait``: None, or the ``limit.rate`` refusal."""
    if wait:
        return NodeError(errors.LIMIT_RATE, "too many requests", retry_after_ms(wait))
    return None


def _charge_account(relay: Relay, caller: Caller, peer: str, now: float) -> NodeError | None:
    """One token of the caller's address and account (a further introduction of an
    ``IntroduceMany``): None, or the ``limit.rate`` refusal."""
    wait = relay.ip_limit.take(peer, now) or relay.account_limit.take(caller.address, now)
    if wait:
        return NodeError(errors.LIMIT_RATE, "too many requests", retry_after_ms(wait))
    return None


def _charge_introduction(
    relay: Relay, caller: Caller, peer: str, now: float, index: int
) -> NodeError | None:
    """Take the tokens of the ``index``-th introduction of an ``IntroduceMany``: None, or
    the ``limit.rate`` refusal."""
    refused = _charge_account(relay, caller, peer, now) if index else None
    if refused is not None:
        return refused
    wait = relay.intro_batch_limit.take(caller.address, now)
    if wait:
        return NodeError(errors.LIMIT_RATE, "too many introductions", retry_after_ms(wait))
    return None


def _error(relay: Relay, request_id: int, exc: NodeError) -> Error:
    relay.metrics.reject(exc.code)
    return Error(request_id, exc.code, exc.message, exc.retry_after)
