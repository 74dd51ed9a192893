"""Sealed sending over an anonymous connection (``WS /v1/sealed``, issue 20).

A client sends its sealed envelopes over a second WebSocket that never logs in, so its
home node cannot tie an envelope to the account that sent it: the connection holds no
account, no device and no mailbox (``node.conn.state``: login ANONYMOUS), and what it
may send is authorised by the recipients' delivery tokens alone:

    Send        one envelope; the recipient's token is checked (``node.accept``)
    SendBatch   several, each as a Send
    SendShared  one body for several mailboxes; a recipient without a token is refused
                ``send.token_required`` (an introduction needs a known sender: it goes
                over the authenticated connection)
    Forward     a routing layer for another domain, queued as from any connection (the
                destination checks the tokens inside; the per-domain limits are the
                origin node's, as before)

Abuse control without an identity: every frame spends a token of the client's address
(``rate_sealed_ip_*``, apart from the authenticated connections' limiter) and of the
connection itself (``rate_sealed_connection_*``); every envelope that passed its token
check spends one of its recipient mailbox (``rate_sealed_mailbox_*``, ``limit.mailbox``);
size limits are the node's usual ones; connections are counted per address
(``max_sealed_connections_per_ip``).

Nothing here records an account: envelopes are stored with no sender, metrics count by
code only, and nothing is logged per envelope.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final

from node.batch import Charge, send_batch
from node.conn.core import Policy
from node.limits import RateLimiter
from node.relay import Relay
from wire.relay import Forward, Send, SendBatch, SendShared

Frame = object


def policy(relay: Relay, anonymous: bool) -> Policy:
    """The rules of one connection. An anonymous one has the anonymous per-address
    limiter, and a bucket of its own in place of an account's; a logged-in one the
    node's per-address and per-account limiters."""
    c = relay.config
    if not anonymous:
        limits = (relay.ip_limit, relay.account_limit)
        return Policy(c.max_frame_bytes, c.flood_close_after, *limits)
    own = RateLimiter(c.rate_sealed_connection_per_s, c.rate_sealed_connection_burst)
    return Policy(
        c.max_frame_bytes, c.flood_close_after, relay.sealed_ip_limit, relay.account_limit, own
    )


async def perform(relay: Relay, charge: Charge, frame: Frame) -> Frame:
    """The answer to one sealed request (``node.conn.state.SEALED_REQUESTS``); raises
    ``NodeError`` (or ``StoreError``) as the authenticated handlers do."""
    return await _HANDLERS[type(frame)](relay, charge, frame)


async def _send(relay: Relay, charge: Charge, frame: Send) -> Frame:
    return await relay.send(frame, None, anonymous=True)


async def _batch(relay: Relay, charge: Charge, frame: SendBatch) -> Frame:
    return await send_batch(relay, frame, charge, anonymous=True)


async def _shared(relay: Relay, charge: Charge, frame: SendShared) -> Frame:
    return await relay.send_shared(frame, None)


async def _forward(relay: Relay, charge: Charge, frame: Forward) -> Frame:
    return await relay.require_federation().forward(frame)


_HANDLERS: Final[dict[type, Callable[[Relay, Charge, Any], Awaitable[Frame]]]] = {
    Send: _send,
    SendBatch: _batch,
    SendShared: _shared,
    Forward: _forward,
}
