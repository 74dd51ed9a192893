"""The call leg requests of ``/v1/client`` (``wire.relay_calls``; DESIGN section 9; issue 17,
the rendezvous) and the WebSocket media fallback, as ``node.session`` handlers.

    LegAllocate  -> LegGrant       a leg for the account (the callee's side)
    LegBridge    -> LegGrant       a leg joined to the other party's leg (the caller's side)
    LegHangUp    -> Ok             end the account's leg and the leg bridged to it
    LegAttach    -> LegAttached    this WebSocket carries the leg's media from now on

A leg's owner is the account's mailbox id, never its address. Refusals are ``Error``
frames with the ``call.*`` codes of ``trust.errors``; a node without ``udp_listen`` refuses
every one with ``call.unavailable``. The work is :class:`node.calls.clients.ClientLegs`'s.

Media datagrams read on an authenticated WebSocket go to :func:`forward_media` in runs (the
shell never starts a task per datagram); a node that serves no calls drops and counts
them (``sealrelay_call_websocket_dropped_total``), and a connection is never closed for them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final, Protocol

from node.calls.clients import ClientLegs
from node.calls.wsmedia import ClientShell
from node.errors import CALL_UNAVAILABLE, NodeError
from node.meetings_requests import MEETING_HANDLERS
from node.relay import Caller, Relay
from wire.relay import (
    LegAllocate,
    LegAttach,
    LegAttached,
    LegBridge,
    LegGrant,
    LegHangUp,
    Ok,
)

WEBSOCKET_DROPPED: Final = "call_websocket_dropped"
"""Counter (``sealrelay_call_websocket_dropped_total{reason}``) of media datagrams read on a
WebSocket that no call relay could take: ``unavailable`` (no ``udp_listen``) or
``not_open`` (the connection is closing)."""


class LegSession(Protocol):
    """What the handlers need of a ``node.session.Session``."""

    @property
    def relay(self) -> Relay: ...

    @property
    def shell(self) -> ClientShell | None: ...


def _legs(s: LegSession) -> tuple[ClientLegs, ClientShell]:
    calls, shell = s.relay.calls, s.shell
    if calls is None or shell is None:
        raise NodeError(CALL_UNAVAILABLE, "this node serves no calls")
    return calls, shell


async def _allocate(s: LegSession, caller: Caller, frame: LegAllocate) -> LegGrant:
    calls, shell = _legs(s)
    leg = await calls.allocate(caller.mailbox, shell)
    return LegGrant(frame.id, leg.leg_id, leg.leg_secret)


async def _bridge(s: LegSession, caller: Caller, frame: LegBridge) -> LegGrant:
    calls, shell = _legs(s)
    leg = await calls.bridge_to(caller.mailbox, shell, frame.leg)
    return LegGrant(frame.id, leg.leg_id, leg.leg_secret)


async def _hang_up(s: LegSession, caller: Caller, frame: LegHangUp) -> Ok:
    calls, shell = _legs(s)
    await calls.hang_up(caller.mailbox, shell, frame.leg_id)
    return Ok(frame.id)


async def _attach(s: LegSession, caller: Caller, frame: LegAttach) -> LegAttached:
    calls, shell = _legs(s)
    bound = calls.attach(caller.mailbox, shell, frame.leg_id, frame.leg_secret)
    return LegAttached(frame.id, bound.leg_id, bound.sender)


CALL_HANDLERS: Final[dict[type, Callable[[Any, Caller, Any], Awaitable[object]]]] = {
    LegAllocate: _allocate,
    LegBridge: _bridge,
    LegHangUp: _hang_up,
    LegAttach: _attach,
    **MEETING_HANDLERS,
}
"""The leg requests' handlers (calls and meetings, ``node.meetings_requests``), for
``node.session``'s table."""


async def forward_media(s: LegSession, batch: Sequence[bytes], *, open_: bool) -> None:
    """Media datagrams read together on the session's WebSocket (``open_``: its link is
    open): forwarded through the call relay, or dropped and counted."""
    calls, shell = s.relay.calls, s.shell
    if calls is None or shell is None:
        s.relay.metrics.count(WEBSOCKET_DROPPED, len(batch), reason="unavailable")
    elif not open_:
        s.relay.metrics.count(WEBSOCKET_DROPPED, len(batch), reason="not_open")
    else:
        await calls.forward(shell, batch)


def account_online(s: LegSession, caller: Caller) -> None:
    """The session's WebSocket authenticated ``caller``: a reconnection during a call
    gets the ``LegEnded`` pushes of the account's legs."""
    calls, shell = s.relay.calls, s.shell
    if calls is not None and shell is not None:
        calls.online(caller.mailbox, shell)


def connection_gone(s: LegSession) -> None:
    """The session's WebSocket closed: unbind the legs it carried."""
    calls, shell = s.relay.calls, s.shell
    if calls is not None and shell is not None:
        calls.gone(shell)
