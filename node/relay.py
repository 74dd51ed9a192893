"""The node's shared core: the requests that act on accounts, mailboxes, keys and blobs.

:class:`Relay` holds what every connection shares (configuration, store, server keys, the
hub, limits, metrics) and answers requests for an already identified caller; the
per-connection core (protocol state; its only I/O the store and the clock) is
:class:`node.session.Session`. Time and randomness are injected (``clock`` in Unix
seconds, ``random_bytes``), so tests pin them. Every refusal raises
:class:`~node.errors.NodeError` with a stable code.
"""

from __future__ import annotations

import dataclasses
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol, TypeVar

import trio

from node import accounts, errors
from node.config import Config
from node.errors import NodeError
from node.hub import Hub
from node.keys import ServerKeys
from node.limits import ConnectionCounter, RateLimiter, retry_after_ms
from node.metrics import Metrics
from node.store import DeviceRecord, PrekeyRecord, Store, StoredEnvelope
from node.storefaults import StoreFaults
from suites import Suite
from trust.limits import MAX_DEVICES
from wire import decode, encode
from wire.e2e import IdentityKey, KemPrekey, OneTimePrekey, PrekeyBundle, SealedSenderKey
from wire.e2e import SignedPrekey as SignedPrekeyMsg
from wire.relay import (
    PURPOSE_AUTH,
    PURPOSE_REGISTER,
    Auth,
    AuthPayload,
    BlobGrant,
    DeviceBundle,
    FetchPrekeys,
    Forward,
    Introduce,
    PublishPrekeys,
    Register,
    RequestBlobUpload,
    Send,
    SendShared,
    Sent,
    SentShared,
    SharedRecipient,
)

CACHE_LIMIT: Final = 65_536
BLOB_ID_LEN: Final = 16
BLOB_TOKEN_LEN: Final = 32
MAILBOX_LEN: Final = 16
FIRST_DEVICE: Final = 1

K = TypeVar("K")
V = TypeVar("V")


DUPLICATE: Final = "duplicate"


class RoutingRecipientLike(Protocol):
    @property
    def mailbox(self) -> bytes: ...

    @property
    def token(self) -> bytes | None: ...


class FederationPort(Protocol):
    """What client requests need of federation (``node.fed.Federation``)."""

    async def forward(self, frame: Forward) -> Sent: ...

    async def server_keys(self, domain: str) -> bytes: ...

    async def remote_prekeys(self, address: str, domain: str) -> tuple[DeviceBundle, ...]: ...

    async def remote_blob(self, domain: str, blob: bytes) -> bytes | None: ...


@dataclass(frozen=True, slots=True)
class SharedUpload:
    """One group body for several mailboxes of this node (``Relay.store_shared_many``):
    ``accepted`` maps each mailbox to its position among the upload's recipients; the
    records of the ``introduced`` mailboxes (named without a delivery token) carry
    ``sender``, the uploader's address, as an ``Introduce`` does."""

    eid: bytes
    body: bytes
    accepted: dict[bytes, int]
    expires: int
    origin: str
    sender: str | None = None
    introduced: frozenset[bytes] = frozenset()


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated device. Its identity key stays in the store (kilobytes per
    connection otherwise); :meth:`Relay.identity_of` loads it when a request needs it."""

    address: str
    device: int
    mailbox: bytes


@dataclass(eq=False)
class Relay:
    """Shared state and the account, mailbox, prekey and blob operations."""

    config: Config
    store: Store
    keys: ServerKeys
    clock: Callable[[], float] = time.time
    random_bytes: Callable[[int], bytes] = secrets.token_bytes
    hub: Hub = field(default_factory=Hub)
    metrics: Metrics = field(default_factory=Metrics)
    draining: bool = False
    federation: FederationPort | None = None
    shared_store: bool = False
    """Other processes write the same store (cluster mode): no cached delivery-token
    verifiers, since another replica may change them."""
    _owners: dict[bytes, str] = field(default_factory=dict, repr=False)
    _verifiers: dict[str, bytes | None] = field(default_factory=dict, repr=False)
    _token_epoch: int = field(default=0, repr=False)  # moved by every set_token

    def __post_init__(self) -> None:
        c = self.config
        self.account_limit = RateLimiter(c.rate_account_per_s, c.rate_account_burst)
        self.ip_limit = RateLimiter(c.rate_ip_per_s, c.rate_ip_burst)
        self.intro_limit = RateLimiter(
            c.introductions_per_minute / 60.0, c.introductions_per_minute
        )
        per_recipient = c.introductions_per_recipient_per_minute
        self.intro_recipient_limit = RateLimiter(per_recipient / 60.0, per_recipient)
        self.connections = ConnectionCounter(c.max_connections_per_ip)
        self.store_faults = StoreFaults(self.metrics)

    def limiters(self) -> dict[str, RateLimiter]:
        """The rate limiters by name (cluster mode shares them: ``node.clusterlimits``)."""
        return {
            "ip": self.ip_limit,
            "account": self.account_limit,
            "intro": self.intro_limit,
            "intro-recipient": self.intro_recipient_limit,
        }

    @property
    def suite(self) -> Suite:
        return self.keys.suite

    @property
    def domain(self) -> str:
        return self.config.domain

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    def require_federation(self) -> FederationPort:
        if self.federation is None:
            raise NodeError(errors.FED_POLICY, "this node does not federate")
        return self.federation

    # --- enrollment and authentication ------------------------------------------------

    async def register(self, frame: Register, nonce: bytes) -> Caller:
        if not accounts.valid_name(frame.name):
            raise NodeError(errors.AUTH_BAD_CODE, "invalid account name")
        address = f"{frame.name}@{self.domain}"
        payload = AuthPayload(PURPOSE_REGISTER, self.domain, nonce, address, 0)
        self._check_signature(frame.identity, payload, frame.sig)
        raw = accounts.parse_code(frame.code)
        if raw is None:
            raise NodeError(errors.AUTH_BAD_CODE, "not an enrollment code")
        mailbox = self.random_bytes(MAILBOX_LEN)
        now = self.now_ms()
        record = DeviceRecord(address, FIRST_DEVICE, encode(frame.identity), mailbox, now)
        if not await self.store.register(accounts.code_hash(raw), frame.name, record, now):
            raise NodeError(errors.AUTH_BAD_CODE, "code unknown, spent, expired or taken")
        return Caller(address, FIRST_DEVICE, mailbox)

    async def authenticate(self, frame: Auth, nonce: bytes) -> Caller:
        record = await self.store.device(frame.address, frame.device)
        if record is None:
            raise NodeError(errors.AUTH_FAILED, "authentication failed")
        identity = decode(record.identity, IdentityKey)
        payload = AuthPayload(PURPOSE_AUTH, self.domain, nonce, frame.address, frame.device)
        self._check_signature(identity, payload, frame.sig)
        return Caller(record.address, record.device, record.mailbox)

    def _check_signature(self, identity: IdentityKey, payload: AuthPayload, sig: bytes) -> None:
        if not accounts.identity_ok(self.suite, identity) or not accounts.auth_signature_ok(
            self.suite, identity, payload, sig
        ):
            raise NodeError(errors.AUTH_FAILED, "authentication failed")

    async def add_invite(self, name: str, ttl_s: int) -> str:
        """A fresh enrollment code for ``name`` (stored as its hash); the printable code."""
        raw = self.random_bytes(accounts.CODE_BYTES)
        await self.store.add_invite(accounts.code_hash(raw), name, self.now_ms() + ttl_s * 1000)
        return accounts.format_code(raw)

    # --- mailboxes ----------------------------------------------------------------------

    async def send(self, frame: Send | Introduce, sender: str | None) -> Sent:
        """Store a sealed envelope (``sender`` set for an introduction) and hand it over.

        An introduction is refused unless the recipient accepts introductions, and is
        limited per recipient (the per-sender limit is the session's)."""
        expires = self.expiry(frame.ttl, len(frame.body))
        owner = await self.owner(frame.mailbox)
        if isinstance(frame, Send):
            await self.check_token(owner, frame.token)
        else:
            await self.check_introduction(owner)
        now = self.now_ms()
        envelope = StoredEnvelope(
            frame.mailbox, frame.eid, 0, now, now + expires, self.domain, sender, frame.body
        )
        # Shielded: once the store may commit the envelope, a cancelled request (its
        # connection gone, the node stopping) must still hand it to a live recipient.
        with trio.CancelScope(shield=True):
            stored, seq = await self.store.enqueue(envelope)
            if stored:
                self.metrics.accepted += 1
                self.hub.deliver(dataclasses.replace(envelope, seq=seq))
        return Sent(frame.id, frame.eid, not stored)

    async def send_shared(self, frame: SendShared, sender: str | None) -> SentShared:
        """Fan-out to several mailboxes of this node: the body is stored once. ``sender``
        (the uploader's address) is recorded for the recipients named without a delivery
        token: those are introductions, as ``Introduce``."""
        (answer,) = await self.send_shared_many([frame], sender)
        if isinstance(answer, NodeError):
            raise answer
        return answer

    async def send_shared_many(
        self, frames: Sequence[SendShared], sender: str | None
    ) -> list[SentShared | NodeError]:
        """:meth:`send_shared` for each of ``frames`` (read together from one connection),
        stored in one commit and in order; per frame its answer or the error refusing it.

        Every recipient's connection is handed all of the batch's envelopes before it is
        woken, so it receives them in one ``Deliver`` and acks them in one ``Ack``."""
        answers: list[SentShared | NodeError] = []
        jobs: list[tuple[int, int, list[str], SharedUpload]] = []
        for frame in frames:
            try:
                expires = self.now_ms() + self.expiry(frame.ttl, len(frame.body))
                results, accepted = await self.check_recipients(frame.recipients)
            except NodeError as exc:
                answers.append(exc)
                continue
            introduced = frozenset(r.mailbox for r in frame.recipients if r.token is None)
            upload = SharedUpload(
                frame.eid, frame.body, accepted, expires, self.domain, sender, introduced
            )
            jobs.append((len(answers), frame.id, results, upload))
            answers.append(NodeError(errors.INTERNAL, "internal error"))  # replaced once stored
        stored_all = await self.store_shared_many([upload for *_, upload in jobs])
        for (at, request_id, results, upload), stored in zip(jobs, stored_all, strict=True):
            for index, (ok, _) in zip(upload.accepted.values(), stored, strict=True):
                results[index] = "" if ok else DUPLICATE
            answers[at] = SentShared(request_id, upload.eid, tuple(results))
        return answers

    async def check_recipients(
        self, recipients: Sequence[SharedRecipient | RoutingRecipientLike]
    ) -> tuple[list[str], dict[bytes, int]]:
        """Per recipient an error code (``""`` if it may receive), and the accepted
        mailboxes with their positions."""
        results: list[str] = []
        accepted: dict[bytes, int] = {}
        for index, recipient in enumerate(recipients):
            try:
                owner = await self.owner(recipient.mailbox)
                if recipient.token is None:
                    await self.check_introduction(owner)
                else:
                    await self.check_token(owner, recipient.token)
            except NodeError as exc:
                results.append(exc.code)
                continue
            results.append("")
            accepted.setdefault(recipient.mailbox, index)
        return results, accepted

    async def store_shared(
        self, eid: bytes, body: bytes, accepted: dict[bytes, int], expires: int, origin: str
    ) -> list[tuple[bool, int]]:
        """Store ``body`` once for the ``accepted`` mailboxes and hand each to its live
        connection; ``(stored, seq)`` per mailbox in order."""
        upload = SharedUpload(eid, body, accepted, expires, origin)
        (stored,) = await self.store_shared_many([upload])
        return stored

    async def store_shared_many(self, uploads: list[SharedUpload]) -> list[list[tuple[bool, int]]]:
        """:meth:`store_shared` for each of ``uploads`` in one commit, in order; the new
        envelopes are handed over only once all are stored (shielded, as in :meth:`send`)."""
        now = self.now_ms()
        items = [
            (
                u.body,
                [
                    StoredEnvelope(
                        m,
                        u.eid,
                        0,
                        now,
                        u.expires,
                        u.origin,
                        u.sender if m in u.introduced else None,
                        b"",
                    )
                    for m in u.accepted
                ],
            )
            for u in uploads
        ]
        if not any(envelopes for _, envelopes in items):
            await trio.lowlevel.checkpoint()
            return [[] for _ in items]
        with trio.CancelScope(shield=True):
            stored_all = await self.store.enqueue_shared_many(items)
            for (body, envelopes), stored in zip(items, stored_all, strict=True):
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
                                body,
                            )
                        )
        return stored_all

    async def checked(self, frame: Send) -> StoredEnvelope:
        """The envelope ``frame`` asks to store, once it passed the checks of :meth:`send`
        (raises ``NodeError`` otherwise); its ``seq`` is 0 until stored."""
        expires = self.expiry(frame.ttl, len(frame.body))
        await self.check_token(await self.owner(frame.mailbox), frame.token)
        now = self.now_ms()
        return StoredEnvelope(
            frame.mailbox, frame.eid, 0, now, now + expires, self.domain, None, frame.body
        )

    async def store_all(self, envelopes: list[StoredEnvelope]) -> list[bool]:
        """Store ``envelopes`` in order in one commit and hand the new ones over (shielded,
        as in :meth:`send`); for each, whether it was new (False: a duplicate)."""
        with trio.CancelScope(shield=True):
            results = await self.store.enqueue_many(envelopes)
            for envelope, (stored, seq) in zip(envelopes, results, strict=True):
                if stored:
                    self.metrics.accepted += 1
                    self.hub.deliver(dataclasses.replace(envelope, seq=seq))
        return [stored for stored, _ in results]

    def expiry(self, ttl: int, size: int) -> int:
        if size > self.config.max_envelope_bytes:
            raise NodeError(errors.SEND_TOO_LARGE, "envelope body too large")
        if ttl > self.config.max_ttl:
            raise NodeError(errors.SEND_BAD_TTL, f"ttl above {self.config.max_ttl} s")
        return (ttl or self.config.default_ttl) * 1000

    async def owner(self, mailbox: bytes) -> str:
        """The address owning ``mailbox`` (cached: a mailbox never changes hands)."""
        address = self._owners.get(mailbox)
        if address is None:
            owner = await self.store.mailbox_owner(mailbox)
            if owner is None:
                raise NodeError(errors.SEND_NO_MAILBOX, "no such mailbox")
            address = owner.address
            _cache(self._owners, mailbox, address)
        return address

    async def identity_of(self, caller: Caller) -> IdentityKey:
        record = await self.store.device(caller.address, caller.device)
        if record is None:
            raise NodeError(errors.AUTH_FAILED, "device no longer registered")
        return decode(record.identity, IdentityKey)

    async def check_token(self, address: str, token: bytes | None) -> None:
        if token is None:
            raise NodeError(errors.SEND_TOKEN_REQUIRED, "a delivery token is required")
        if self.shared_store:
            verifier = await self.store.token_verifier(address)
        elif address in self._verifiers:
            verifier = self._verifiers[address]
        else:
            epoch = self._token_epoch
            verifier = await self.store.token_verifier(address)
            if self._token_epoch == epoch:  # no set_token began or ended meanwhile
                _cache(self._verifiers, address, verifier)
        if verifier is None or not accounts.token_matches(token, verifier):
            raise NodeError(errors.SEND_BAD_TOKEN, "delivery token does not match")

    async def check_introduction(self, recipient: str) -> None:
        if not await self.store.accepts_introductions(recipient):
            raise NodeError(
                errors.SEND_INTRODUCTIONS_CLOSED, "the recipient does not accept introductions"
            )
        wait = self.intro_recipient_limit.take(recipient, self.clock())
        if wait:
            raise NodeError(
                errors.LIMIT_RATE, "too many introductions to this recipient", retry_after_ms(wait)
            )

    async def set_introductions(self, caller: Caller, accept: bool) -> None:
        """Turn introductions to the caller's account on or off."""
        await self.store.set_accepts_introductions(caller.address, accept)

    async def set_token(self, caller: Caller, verifier: bytes) -> None:
        """Store a new verifier. A verifier read that overlaps this write is not cached
        (``_token_epoch`` moves before and after it): it may hold the old value."""
        self._token_epoch += 1
        self._verifiers.pop(caller.address, None)
        try:
            await self.store.set_token_verifier(caller.address, verifier)
        finally:
            self._token_epoch += 1
            self._verifiers.pop(caller.address, None)

    # --- prekeys ------------------------------------------------------------------------

    async def publish_prekeys(self, caller: Caller, frame: PublishPrekeys) -> None:
        upload = frame.upload
        identity = await self.identity_of(caller)
        if upload.suite != self.suite.suite_id or upload.identity != identity:
            raise NodeError(errors.AUTH_FAILED, "prekeys not made by this device's identity")
        if not accounts.upload_keys_ok(self.suite, upload):
            raise NodeError(errors.PREKEYS_INVALID, "a prekey is not a valid key of this suite")
        record = PrekeyRecord(
            identity=encode(upload.identity),
            signed_prekey=encode(upload.signed_prekey),
            last_resort=encode(upload.last_resort),
            sealed_key=encode(upload.sealed_key),
            one_time={k.id: encode(k) for k in upload.one_time},
            kem_one_time={k.id: encode(k) for k in upload.kem_one_time},
        )
        await self.store.put_prekeys(caller.address, caller.device, record)

    async def fetch_prekeys(self, frame: FetchPrekeys) -> tuple[DeviceBundle, ...]:
        found = []
        for record in (await self.store.devices(frame.address))[:MAX_DEVICES]:
            parts = await self.store.take_bundle(record.address, record.device)
            if parts is None:
                continue
            bundle = PrekeyBundle(
                suite=self.suite.suite_id,
                address=record.address,
                device=record.device,
                identity=decode(parts.identity, IdentityKey),
                signed_prekey=decode(parts.signed_prekey, SignedPrekeyMsg),
                one_time=None if parts.one_time is None else decode(parts.one_time, OneTimePrekey),
                kem_prekey=decode(parts.kem_prekey, KemPrekey),
                sealed_key=decode(parts.sealed_key, SealedSenderKey),
            )
            found.append(DeviceBundle(record.device, record.mailbox, bundle))
        if not found:
            raise NodeError(errors.PREKEYS_NONE, "no device with published prekeys")
        return tuple(found)

    # --- blobs --------------------------------------------------------------------------

    async def grant_blob(self, frame: RequestBlobUpload) -> BlobGrant:
        if frame.size > self.config.max_blob_bytes or frame.size == 0:
            raise NodeError(
                errors.BLOB_TOO_LARGE, f"blob size must be 1..{self.config.max_blob_bytes}"
            )
        if frame.ttl > self.config.max_ttl:
            raise NodeError(errors.SEND_BAD_TTL, f"ttl above {self.config.max_ttl} s")
        blob, token = self.random_bytes(BLOB_ID_LEN), self.random_bytes(BLOB_TOKEN_LEN)
        expires = self.now_ms() + (frame.ttl or self.config.default_ttl) * 1000
        await self.store.grant_blob(blob, accounts.blob_token_hash(token), frame.size, expires)
        return BlobGrant(frame.id, blob, token, expires)

    async def blob_grant(self, blob: bytes, token: bytes) -> int | None:
        """The granted size of an upload ``token`` may still make, or None."""
        token_hash = accounts.blob_token_hash(token)
        return await self.store.blob_grant(blob, token_hash, self.now_ms())

    async def put_blob(self, blob: bytes, token: bytes, data: bytes) -> bool:
        token_hash = accounts.blob_token_hash(token)
        return await self.store.put_blob(blob, token_hash, data, self.now_ms())

    async def get_blob(self, blob: bytes) -> bytes | None:
        return await self.store.get_blob(blob, self.now_ms())

    # --- housekeeping -------------------------------------------------------------------

    async def sweep(self) -> None:
        result = await self.store.sweep(self.now_ms())
        self.metrics.expired += result.envelopes
        now = self.clock()
        limiters = (self.account_limit, self.ip_limit, self.intro_limit, self.intro_recipient_limit)
        for limiter in limiters:
            limiter.prune(now)


def _cache(table: dict[K, V], key: K, value: V) -> None:
    if len(table) >= CACHE_LIMIT:
        table.clear()
    table[key] = value
