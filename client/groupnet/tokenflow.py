"""The group token work of one device (docs/groups.md section 9): register a token
before anyone learns it, report it to the admins, publish the members' tokens (on an
admin), revoke old tokens once the new one is out. The rules are in ``tokens``; this is
the shell that talks to the node and queues pairwise payloads over the send path.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Final, Protocol

import trio

from client.entropy import Entropy
from client.errors import ClientError, Refused
from client.groupnet import tokens
from client.groupnet.book import GroupBook, GroupUnavailable
from client.groupnet.transport import NetGroup
from client.outbox import Request
from client.records import AccountInfo
from client.sendpath import Pairwise, SendPath
from client.store.base import StateStore
from suites.tokens import delivery_token_verifier
from trust.errors import UNREADABLE
from wire import encode
from wire.group import GroupTokens
from wire.relay import SetGroupToken

log = logging.getLogger(__name__)

TOKEN_RETRY: Final = 5.0
"""Seconds before token work that failed (the node could not be reached) is tried again."""


class HasAccount(Protocol):
    @property
    def info(self) -> AccountInfo: ...


def registered_token(ng: NetGroup) -> bytes | None:
    """This device's group token for ``ng`` once its node has it."""
    held = ng.tokens
    return held.token if held.registered else None


def to_devices(
    devices: Sequence[tuple[str, int]], me: tuple[str, int], data: bytes
) -> list[Pairwise]:
    """``data`` to each of ``devices`` but ``me``, one pairwise message per address."""
    found: dict[str, set[int]] = {}
    for address, dev in devices:
        if (address, dev) != me:
            found.setdefault(address, set()).add(dev)
    return [Pairwise(address, data, frozenset(devs)) for address, devs in found.items()]


class TokenFlow:
    """Group token work for this device's groups in ``book``, over ``sendpath``."""

    def __init__(
        self,
        book: GroupBook,
        sendpath: SendPath,
        *,
        store: StateStore,
        me: tuple[str, int],
        account: HasAccount,
        request: Request,
        entropy: Entropy,
    ) -> None:
        self.book = book
        self._send = sendpath
        self._store = store
        self._me = me
        self._account = account
        self._request = request
        self._entropy = entropy
        self._token_wake = trio.Event()
        self._token_lock = trio.Lock()
        self._pending: dict[bytes, tuple[float, float, int]] = {}
        """Per group (on an admin): when the first and the newest unpublished report came,
        and how many entries were unpublished then."""
        self._confirmed_at: dict[bytes, float] = {}
        self.no_group_tokens = False
        """Set when the node does not know ``SetGroupToken``: groups work as before it."""
        book.wake_tokens = self.wake

    def wake(self) -> None:
        self._token_wake.set()

    async def run(self) -> None:
        """Register, report, publish and revoke group tokens whenever a group needs it
        (runs while online)."""
        while True:
            self._token_wake = trio.Event()
            delay = await self.once()
            with trio.move_on_after(math.inf if delay is None else delay):
                await self._token_wake.wait()

    async def once(self) -> float | None:
        """One pass over every group; seconds until a pass is due again (``None``: only
        when woken)."""
        due: float | None = None
        for ng in self.book.all():
            try:
                wait = await self.token_step(ng)
            except ClientError as exc:
                log.warning("group %s: token work failed (%s)", ng.group_id.hex(), exc.code)
                wait = TOKEN_RETRY
            if wait is not None:
                due = wait if due is None else min(due, wait)
        return due

    async def _register(self, ng: NetGroup) -> None:
        """Draw a token if one is due and register it with the node (before anyone
        learns it)."""
        held = ng.tokens
        if held.token is None or held.rotate:
            self._confirmed_at.pop(ng.group_id, None)
            mailbox = self._account.info.mailbox
            if mailbox is None:
                raise GroupUnavailable("this device has no mailbox yet (not connected)")
            tokens.draw(held, self._entropy, self._me, mailbox)
            self._save(ng)
        if not held.registered:
            assert held.token is not None  # noqa: S101 - drawn above
            verifier = delivery_token_verifier(held.token)
            try:
                await self._request(SetGroupToken(id=0, verifier=verifier, revoke=None))
            except Refused as exc:
                if exc.node_code in UNREADABLE:  # a node before group tokens
                    log.warning("the node has no group tokens: members are introduced")
                    self.no_group_tokens = True
                raise
            held.registered = True
            self._save(ng)

    def _save(self, ng: NetGroup) -> None:
        with self._store.transaction():
            self.book.save(ng)

    async def now(self, ng: NetGroup) -> None:
        """:meth:`token_step` before a flow sends (nothing on a node without tokens)."""
        try:
            await self.token_step(ng)
        except Refused:
            if not self.no_group_tokens:
                raise

    async def token_step(self, ng: NetGroup) -> float | None:
        """What ``ng``'s tokens need now: register, report (or, on an admin, publish),
        revoke the old token once the new one is published. Seconds until it should be
        looked at again, if a publication waits."""
        async with self._token_lock:
            return await self._token_step(ng)

    async def _token_step(self, ng: NetGroup) -> float | None:
        if ng.group is None or self.no_group_tokens:
            return None
        if not ng.group.is_member:
            await self._retire(ng)
            return None
        tokens.drop_departed(ng)
        await self._register(ng)
        held = ng.tokens
        admin = tokens.is_admin(ng, self._me)
        if not held.reported and not admin:
            entry = tokens.own(held, self._me)
            assert entry is not None  # noqa: S101 - registered above
            report = encode(GroupTokens(group=ng.group_id, tokens=(entry,)))
            plan = to_devices(tokens.admin_devices(ng), self._me, report)

            def reported() -> None:
                held.reported = True
                self.book.save(ng)

            await self._send.pairwise(plan, also=reported)
        held.reported = True
        wait = await self._publish(ng) if admin else None
        if held.revoke and held.confirmed:
            now = trio.current_time()
            since = self._confirmed_at.setdefault(ng.group_id, now)
            if now - since < tokens.REVOKE_GRACE:
                grace = since + tokens.REVOKE_GRACE - now
                return grace if wait is None else min(wait, grace)
            await self._revoke(ng, list(held.revoke))
            self._confirmed_at.pop(ng.group_id, None)
        return wait

    async def _revoke(self, ng: NetGroup, old: Sequence[bytes]) -> None:
        """Revoke ``old`` tokens of this device at the node, one request each."""
        for token in old:
            revoke = delivery_token_verifier(token)
            await self._request(SetGroupToken(id=0, verifier=None, revoke=revoke))
            if token in ng.tokens.revoke:
                ng.tokens.revoke.remove(token)
            self._save(ng)

    async def _retire(self, ng: NetGroup) -> None:
        """No longer a member: this device's tokens for the group open nothing any more."""
        held = ng.tokens
        if held.token is not None and held.registered:
            held.revoke.append(held.token)
            held.token, held.registered = None, False
            self._save(ng)
        if held.revoke:
            await self._revoke(ng, list(held.revoke))

    async def _publish(self, ng: NetGroup) -> float | None:
        """An admin's publication, when due (``tokens.publication_due``). Seconds until it
        is due, or ``None``."""
        gid = ng.group_id
        now = trio.current_time()
        count = tokens.unpublished(ng)
        first, last, seen = self._pending.get(gid, (now, now, 0))
        if count > seen:  # a new report: the quiet period starts again
            last = now
        self._pending[gid] = (first, last, count)
        due = tokens.publication_due(ng, now, first, last)
        if due is None:
            del self._pending[gid]
            return None
        if due > 0:
            return due
        del self._pending[gid]
        held = ng.tokens
        marks = (dict(held.entry), dict(held.told), held.published)
        plan = [
            Pairwise(dev[0], encode(payload), frozenset((dev[1],)))
            for dev, payload in tokens.publication(ng, self._me)
        ]
        try:
            eids = await self._send.pairwise(plan, also=lambda: self.book.save(ng)) if plan else []
        except BaseException:  # nothing was queued: the next publication carries it all
            held.entry, held.told, held.published = marks
            raise
        if not ng.tokens.confirmed:  # this admin's own token is out: the old one may go
            await self._send.wait(eids)
            ng.tokens.confirmed = True
            self._save(ng)
        return None
