"""The one way an envelope enters a mailbox: :meth:`Intake.accept`.

Every path that stores an envelope goes through it (DESIGN section 5): a local ``Send``
or ``Introduce`` (``Relay.send``), the Sends of a ``SendBatch`` or of one read
(``node.batch``), ``SendShared`` uploads (``Relay.send_shared_many``) and the items of a
federation transaction, single or fan-out (``node.fed.inbound``). For each
:class:`Delivery`, in order:

1. size and TTL: a body above ``max_envelope_bytes`` is refused ``send.too_large``, a TTL
   above ``max_ttl`` ``send.bad_ttl``; the expiry is ``now + (ttl or default_ttl)``,
   capped by the delivery's own ``until`` (a federation item's);
2. each recipient: its mailbox must exist (``send.no_mailbox``); a recipient named with a
   delivery token must match its owner's verifier or one of its owner's live group token
   verifiers (the ``GroupTokens`` port; ``send.token_required``, ``send.bad_token``: the
   same code for a wrong token and a revoked group token); an introduction needs an owner
   who accepts introductions (``send.introductions_closed``) and is rate limited per
   owner (``limit.rate``); a delivery that came over an anonymous connection
   (``anonymous``) is limited per mailbox, after its token matched (``limit.mailbox``),
   so that a flood without a token never spends a mailbox's allowance;
3. the store, once for the whole call: plain envelopes with ``Mailboxes.enqueue`` (one)
   or ``enqueue_many`` (several), fan-outs (the body stored once) with
   ``enqueue_shared_many``: one commit in SQLite, one script per envelope or fan-out in
   Redis, never a round trip more than the store call;
4. each envelope newly stored is counted and handed to its recipient's live connection
   (``Hub.deliver``), after the whole call is stored, so one reader gets a batch in one
   ``Deliver``. Steps 3 and 4 are shielded from cancellation: once the store may commit,
   a live recipient must still be woken.

A store failure while checking (reading an owner or a verifier) refuses that delivery and
every later one of the call with the ``StoreError``; the earlier ones are still stored. A
failing store call makes :class:`NotStored` the outcome of every delivery it held. The
recipient caches (mailbox owners, which never change hands; delivery-token verifiers,
unless other processes write the store; live group-token verifiers, likewise, dropped by
every revocation made through :meth:`Intake.set_group_token`) live here too.

The records made per request (:class:`Recipient`, :class:`Delivery`, :class:`Accepted`)
are immutable ``NamedTuple`` s rather than frozen dataclasses, which cost several times as
much to build; this path runs for every envelope the node takes.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final, NamedTuple, TypeVar

import trio

from node import errors
from node.config import Config
from node.errors import NodeError
from node.hub import Hub
from node.limits import RateLimiter, retry_after_ms
from node.metrics import Metrics
from node.store import Accounts, GroupTokens, Mailboxes, StoredEnvelope, StoreError
from suites.tokens import delivery_token_verifier
from trust.limits import MAX_GROUP_TOKENS

CACHE_LIMIT: Final = 65_536
K = TypeVar("K")
V = TypeVar("V")


class Recipient(NamedTuple):
    """A mailbox of this node. ``introduction``: named without a delivery token, so the
    owner's consent to introductions is checked instead (``token`` is then None)."""

    mailbox: bytes
    token: bytes | None
    introduction: bool = False

    @classmethod
    def named(cls, mailbox: bytes, token: bytes | None) -> Recipient:
        """A recipient of a fan-out or a routing layer: no token means an introduction."""
        return cls(mailbox, token, token is None)


class Delivery(NamedTuple):
    """One sealed body for one or more recipients.

    ``ttl`` in seconds as asked (0: the default); ``origin`` this domain or the peer domain
    it came from; ``sender`` is recorded for the introduced recipients only; ``until``
    caps the expiry (Unix ms); ``shared`` stores the body once for all recipients (a
    fan-out), else each recipient's envelope holds it; ``anonymous``: it came over an
    anonymous connection (issue 20), so each recipient is limited per mailbox too."""

    eid: bytes
    body: bytes
    recipients: tuple[Recipient, ...]
    ttl: int
    origin: str
    sender: str | None = None
    until: int | None = None
    shared: bool = False
    anonymous: bool = False


Verdict = bool | NodeError
"""Per recipient: True stored (or passed, for a mailbox named twice), False a duplicate,
or the error refusing it."""


class Accepted(NamedTuple):
    """A delivery that passed its own checks and was stored: a verdict per recipient, in
    the order of :attr:`Delivery.recipients`."""

    verdicts: tuple[Verdict, ...]
    mailboxes: int
    """How many mailboxes passed the checks (a mailbox named twice counts once)."""


@dataclass(frozen=True, slots=True)
class NotStored:
    """The store call holding the delivery failed with ``error`` (a ``StoreError``
    mostly): nothing of that call was stored, so every delivery of it may be retried."""

    error: Exception


Outcome = Accepted | NodeError | StoreError | NotStored
"""Per delivery: :class:`Accepted`; the ``NodeError`` refusing it whole (size, TTL, or the
caller's own refusal); the ``StoreError`` of reading a recipient (this delivery's or an
earlier one's: then it was not checked); or :class:`NotStored`."""


@dataclass(slots=True)  # not frozen: made once per delivery on the hot path
class _Checked:
    """A delivery that passed its checks: its verdicts so far (None where the store's
    answer goes) and the envelope per mailbox to store (``seq`` 0, body b"" if shared)."""

    delivery: Delivery
    verdicts: list[Verdict | None]
    envelopes: list[StoredEnvelope]
    positions: list[int]


@dataclass(eq=False)
class Intake:
    """Checks deliveries against the accounts port and stores them in the mailboxes port."""

    config: Config
    accounts: Accounts
    mailboxes: Mailboxes
    group_tokens: GroupTokens
    hub: Hub
    metrics: Metrics
    clock: Callable[[], float]
    intro_limit: RateLimiter
    """Introductions per recipient (the per-sender limit is the session's)."""
    shared_store: bool = False
    """Other processes write the same store (cluster mode): no cached verifiers."""
    mailbox_limit: RateLimiter | None = None
    """Sealed envelopes per mailbox over anonymous connections (None: unlimited)."""
    _owners: dict[bytes, str] = field(default_factory=dict, repr=False)
    _verifiers: dict[str, bytes | None] = field(default_factory=dict, repr=False)
    _token_epoch: int = field(default=0, repr=False)  # moved by every set_token
    _group_live: dict[tuple[str, bytes], bool] = field(default_factory=dict, repr=False)
    _group_epoch: int = field(default=0, repr=False)  # moved by every set_group_token

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    async def accept(self, deliveries: Sequence[Delivery | NodeError]) -> list[Outcome]:
        """Check, store and hand over ``deliveries`` (see the module's docstring); one
        outcome per delivery, in order. A ``NodeError`` in place of a delivery is one the
        caller refused already (a rate limit): it is its own outcome, unless a store
        failure came first."""
        outcomes: list[Outcome | None] = []
        checked: list[_Checked] = []
        failed: StoreError | None = None
        for delivery in deliveries:
            if failed is not None:
                outcomes.append(failed)
                continue
            if isinstance(delivery, NodeError):
                outcomes.append(delivery)
                continue
            try:
                checked.append(await self._check(delivery))
            except NodeError as exc:
                outcomes.append(exc)
                continue
            except StoreError as exc:  # reading a recipient failed: nothing was stored
                failed = exc
                outcomes.append(exc)
                continue
            outcomes.append(None)  # filled in once stored
        committed = iter(await self._commit(checked))
        return [next(committed) if o is None else o for o in outcomes]

    # --- checks -------------------------------------------------------------------------

    def expiry(self, ttl: int, size: int) -> int:
        """The life in ms of a body of ``size`` bytes asked to live ``ttl`` s (0: the
        default); ``NodeError`` above the bounds."""
        if size > self.config.max_envelope_bytes:
            raise NodeError(errors.SEND_TOO_LARGE, "envelope body too large")
        if ttl > self.config.max_ttl:
            raise NodeError(errors.SEND_BAD_TTL, f"ttl above {self.config.max_ttl} s")
        return (ttl or self.config.default_ttl) * 1000

    async def _check(self, delivery: Delivery) -> _Checked:
        life = self.expiry(delivery.ttl, len(delivery.body))
        verdicts: list[Verdict | None] = []
        first: dict[bytes, int] = {}
        for index, recipient in enumerate(delivery.recipients):
            try:
                owner = await self.owner(recipient.mailbox)
                if recipient.introduction:
                    await self.check_introduction(owner)
                else:
                    await self.check_token(owner, recipient.token)
                    if delivery.anonymous:
                        self.check_mailbox_rate(recipient.mailbox)
            except NodeError as exc:
                verdicts.append(exc)
                continue
            verdicts.append(True if recipient.mailbox in first else None)
            first.setdefault(recipient.mailbox, index)
        now = self.now_ms()
        expires = now + life if delivery.until is None else min(delivery.until, now + life)
        body = b"" if delivery.shared else delivery.body
        envelopes = []
        for mailbox, at in first.items():
            sender = delivery.sender if delivery.recipients[at].introduction else None
            envelopes.append(
                StoredEnvelope(
                    mailbox, delivery.eid, 0, now, expires, delivery.origin, sender, body
                )
            )
        return _Checked(delivery, verdicts, envelopes, list(first.values()))

    async def owner(self, mailbox: bytes) -> str:
        """The address owning ``mailbox`` (cached: a mailbox never changes hands)."""
        address = self._owners.get(mailbox)
        if address is None:
            owner = await self.accounts.mailbox_owner(mailbox)
            if owner is None:
                raise NodeError(errors.SEND_NO_MAILBOX, "no such mailbox")
            address = owner.address
            _cache(self._owners, mailbox, address)
        return address

    async def check_token(self, address: str, token: bytes | None) -> None:
        """``token`` opens ``address``'s mailboxes: it is the account's delivery token or a
        live group token of the account (``send.token_required``, ``send.bad_token``)."""
        if token is None:
            raise NodeError(errors.SEND_TOKEN_REQUIRED, "a delivery token is required")
        presented = delivery_token_verifier(token)
        verifier = await self._account_verifier(address)
        if verifier is not None and hmac.compare_digest(presented, verifier):
            return
        if not await self._group_token_live(address, presented):
            raise NodeError(errors.SEND_BAD_TOKEN, "delivery token does not match")

    async def _account_verifier(self, address: str) -> bytes | None:
        if self.shared_store:
            return await self.accounts.token_verifier(address)
        if address in self._verifiers:
            return self._verifiers[address]
        epoch = self._token_epoch
        verifier = await self.accounts.token_verifier(address)
        if self._token_epoch == epoch:  # no set_token began or ended meanwhile
            _cache(self._verifiers, address, verifier)
        return verifier

    async def _group_token_live(self, address: str, presented: bytes) -> bool:
        """Whether ``presented`` (a verifier) is a live group token of ``address``. Only a
        live answer is cached, and not one read while a revocation was under way."""
        key = (address, presented)
        if not self.shared_store and key in self._group_live:
            return True
        epoch = self._group_epoch
        live = await self.group_tokens.has_group_token(address, presented)
        if live and not self.shared_store and self._group_epoch == epoch:
            _cache(self._group_live, key, True)
        return live

    async def check_introduction(self, recipient: str) -> None:
        if not await self.accounts.accepts_introductions(recipient):
            raise NodeError(
                errors.SEND_INTRODUCTIONS_CLOSED, "the recipient does not accept introductions"
            )
        wait = self.intro_limit.take(recipient, self.clock())
        if wait:
            raise NodeError(
                errors.LIMIT_RATE, "too many introductions to this recipient", retry_after_ms(wait)
            )

    def check_mailbox_rate(self, mailbox: bytes) -> None:
        """One sealed envelope to ``mailbox`` over an anonymous connection: ``limit.mailbox``
        once its allowance is spent (keyed by the mailbox id, never by an account)."""
        limit = self.mailbox_limit
        if limit is None:
            return
        wait = limit.take(mailbox.hex(), self.clock())
        if wait:
            message = "too many sealed envelopes to this mailbox"
            raise NodeError(errors.LIMIT_MAILBOX, message, retry_after_ms(wait))

    async def set_token(self, address: str, verifier: bytes) -> None:
        """Store a new verifier. A verifier read that overlaps this write is not cached
        (``_token_epoch`` moves before and after it): it may hold the old value."""
        self._token_epoch += 1
        self._verifiers.pop(address, None)
        try:
            await self.accounts.set_token_verifier(address, verifier)
        finally:
            self._token_epoch += 1
            self._verifiers.pop(address, None)

    async def set_group_token(
        self, address: str, verifier: bytes | None, revoke: bytes | None
    ) -> None:
        """Make group token ``verifier`` live for ``address`` and revoke ``revoke`` (either
        may be None) in one store call; ``limit.group_tokens`` (nothing changes) past
        :data:`~trust.limits.MAX_GROUP_TOKENS`. The revoked verifier leaves the cache
        before and after the write, so no check after this returns still takes it."""
        self._group_epoch += 1
        self._group_live.pop((address, revoke or b""), None)
        try:
            if verifier is not None:
                ports = self.group_tokens
                if not await ports.put_group_token(address, verifier, revoke, MAX_GROUP_TOKENS):
                    raise NodeError(
                        errors.LIMIT_GROUP_TOKENS,
                        f"at most {MAX_GROUP_TOKENS} live group tokens per account",
                    )
            elif revoke is not None:
                await self.group_tokens.revoke_group_token(address, revoke)
        finally:
            self._group_epoch += 1
            self._group_live.pop((address, revoke or b""), None)

    # --- store and hand over ----------------------------------------------------------------

    async def _commit(self, checked: list[_Checked]) -> list[Outcome]:
        """Store the checked deliveries (the plain ones, then the fan-outs: at most two
        store calls) and hand the new envelopes over; an outcome per delivery."""
        plain: list[_Checked] = []
        shared: list[_Checked] = []
        envelopes: list[StoredEnvelope] = []
        fan_out = False
        for c in checked:  # a loop, not comprehensions: this runs once per request
            if c.delivery.shared:
                shared.append(c)
                fan_out = fan_out or bool(c.envelopes)
            else:
                plain.append(c)
                envelopes += c.envelopes
        if not envelopes and not fan_out:
            await trio.lowlevel.checkpoint()
            return [Accepted(_final(c, []), 0) for c in checked]
        stored: list[tuple[bool, int]] | NotStored = []
        fanned: list[list[tuple[bool, int]]] | NotStored = []
        # Shielded: once the store may commit the envelope, a cancelled request (its
        # connection gone, the node stopping) must still hand it to a live recipient.
        with trio.CancelScope(shield=True):
            try:
                if len(envelopes) == 1:
                    stored = [await self.mailboxes.enqueue(envelopes[0])]
                elif envelopes:
                    stored = await self.mailboxes.enqueue_many(envelopes)
            except Exception as exc:  # the outcome of each delivery the call held
                stored = NotStored(exc)
            try:
                if fan_out:
                    fanned = await self.mailboxes.enqueue_shared_many(
                        [(c.delivery.body, c.envelopes) for c in shared]
                    )
                else:
                    fanned = [[] for _ in shared]
            except Exception as exc:
                fanned = NotStored(exc)
            if not isinstance(stored, NotStored):
                self._hand_over(envelopes, stored)
            if not isinstance(fanned, NotStored):
                for c, one in zip(shared, fanned, strict=True):
                    self._hand_over(c.envelopes, one, c.delivery.body)
        if not shared:
            return _outcomes(plain, stored)
        if not plain:
            return _fanned_outcomes(shared, fanned)
        plain_done = iter(_outcomes(plain, stored))
        shared_done = iter(_fanned_outcomes(shared, fanned))
        return [next(shared_done if c.delivery.shared else plain_done) for c in checked]

    def _hand_over(
        self,
        envelopes: list[StoredEnvelope],
        stored: list[tuple[bool, int]],
        body: bytes | None = None,
    ) -> None:
        """Count and wake each newly stored envelope (``body``: a fan-out's shared body)."""
        for env, (ok, seq) in zip(envelopes, stored, strict=True):
            if ok:
                self.metrics.accepted += 1
                self.hub.deliver(
                    StoredEnvelope(
                        env.mailbox,
                        env.eid,
                        seq,
                        env.ts,
                        env.expires,
                        env.origin,
                        env.sender,
                        env.body if body is None else body,
                    )
                )


def _outcomes(plain: list[_Checked], stored: list[tuple[bool, int]] | NotStored) -> list[Outcome]:
    """Per plain delivery, its share of one ``enqueue``/``enqueue_many`` answer."""
    if isinstance(stored, NotStored):  # a delivery with nothing to store keeps its verdicts
        return [stored if c.envelopes else Accepted(_final(c, []), 0) for c in plain]
    if len(plain) == 1:
        return [Accepted(_final(plain[0], stored), len(stored))]
    outcomes: list[Outcome] = []
    at = 0
    for c in plain:
        count = len(c.envelopes)
        outcomes.append(Accepted(_final(c, stored[at : at + count]), count))
        at += count
    return outcomes


def _fanned_outcomes(
    shared: list[_Checked], fanned: list[list[tuple[bool, int]]] | NotStored
) -> list[Outcome]:
    """Per fan-out, its ``enqueue_shared_many`` answer."""
    if isinstance(fanned, NotStored):
        return [fanned if c.envelopes else Accepted(_final(c, []), 0) for c in shared]
    return [
        Accepted(_final(c, one), len(c.envelopes)) for c, one in zip(shared, fanned, strict=True)
    ]


def _final(checked: _Checked, stored: list[tuple[bool, int]]) -> tuple[Verdict, ...]:
    """The verdicts of ``checked`` with the store's answers (none: nothing to store)."""
    if len(checked.verdicts) == 1 and stored:  # one recipient, stored: the common case
        return (stored[0][0],)
    verdicts = list(checked.verdicts)
    for at, (ok, _) in zip(checked.positions, stored, strict=True):
        verdicts[at] = ok
    return tuple(True if v is None else v for v in verdicts)


def _cache(table: dict[K, V], key: K, value: V) -> None:
    if len(table) >= CACHE_LIMIT:
        table.clear()
    table[key] = value
