"""The node's shared core: the requests that act on accounts, mailboxes, keys and blobs.

:class:`Relay` holds what every connection shares (configuration, the storage ports, server
keys, the hub, limits, metrics) and answers requests for an already identified caller; an
envelope enters a mailbox only through :class:`node.accept.Intake` (:attr:`Relay.intake`); the
per-connection protocol state is the pure :class:`node.conn.core.ConnCore`, driven by the
trio shell :class:`node.session.Session`. Time and randomness are injected (``clock`` in Unix
seconds, ``random_bytes``), so tests pin them. Every refusal raises
:class:`~node.errors.NodeError` with a stable code.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol

from node import accounts, errors
from node.accept import Accepted, Delivery, Intake, NotStored, Recipient
from node.calls.clients import ClientLegs
from node.calls.links import MediaLinks
from node.config import Config
from node.errors import NodeError
from node.hub import Hub
from node.keys import ServerKeys
from node.limits import ConnectionCounter, RateLimiter
from node.metrics import Metrics
from node.store import DeviceRecord, PrekeyRecord, Storage, Store, StoreError
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
)

BLOB_ID_LEN: Final = 16
BLOB_TOKEN_LEN: Final = 32
MAILBOX_LEN: Final = 16
FIRST_DEVICE: Final = 1


DUPLICATE: Final = "duplicate"


class FederationPort(Protocol):
    """What client requests need of federation (``node.fed.Federation``)."""

    async def forward(self, frame: Forward) -> Sent: ...

    async def server_keys(self, domain: str) -> bytes: ...

    async def remote_prekeys(self, address: str, domain: str) -> tuple[DeviceBundle, ...]: ...

    async def remote_blob(self, domain: str, blob: bytes) -> bytes | None: ...


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
    """The backend; the relay and its parts use it through :attr:`ports` (``Storage``)."""
    keys: ServerKeys
    clock: Callable[[], float] = time.time
    random_bytes: Callable[[int], bytes] = secrets.token_bytes
    hub: Hub = field(default_factory=Hub)
    metrics: Metrics = field(default_factory=Metrics)
    draining: bool = False
    federation: FederationPort | None = None
    media_port: int | None = None
    """The UDP port of the node's QUIC endpoint for call media, listed in the key document
    (set by ``node.server`` when ``udp_listen`` is; None: a version 1 document)."""
    media_links: MediaLinks | None = None
    """The node-to-node media links (set by ``node.server`` with ``media_port``): a
    ``LegBridge`` to another domain's leg is ``await media_links.bridge(leg_id, leg)``."""
    calls: ClientLegs | None = None
    """The call relay's client side (leg requests, WebSocket media), set by ``node.server``
    with ``media_port``; None: leg requests are refused ``call.unavailable``."""
    shared_store: bool = False
    """Other processes write the same store (cluster mode): no cached delivery-token
    verifiers, since another replica may change them."""

    def __post_init__(self) -> None:
        c = self.config
        self.account_limit = RateLimiter(c.rate_account_per_s, c.rate_account_burst)
        self.ip_limit = RateLimiter(c.rate_ip_per_s, c.rate_ip_burst)
        self.intro_limit = RateLimiter(
            c.introductions_per_minute / 60.0, c.introductions_per_minute
        )
        per_recipient = c.introductions_per_recipient_per_minute
        self.intro_recipient_limit = RateLimiter(per_recipient / 60.0, per_recipient)
        batched = c.batched_introductions_per_minute
        self.intro_batch_limit = RateLimiter(batched / 60.0, batched)
        self.connections = ConnectionCounter(c.max_connections_per_ip)
        # Anonymous connections (/v1/sealed, issue 20): keyed by address and by mailbox,
        # never by an account; counted apart from the authenticated connections.
        self.sealed_ip_limit = RateLimiter(c.rate_sealed_ip_per_s, c.rate_sealed_ip_burst)
        self.sealed_mailbox_limit = RateLimiter(
            c.rate_sealed_mailbox_per_s, c.rate_sealed_mailbox_burst
        )
        self.sealed_connections = ConnectionCounter(c.max_sealed_connections_per_ip)
        self.store_faults = StoreFaults(self.metrics)
        self.ports = Storage.of(self.store)
        self.intake = Intake(
            c,
            self.ports.accounts,
            self.ports.mailboxes,
            self.ports.group_tokens,
            self.hub,
            self.metrics,
            self.clock,
            self.intro_recipient_limit,
            self.shared_store,
            self.sealed_mailbox_limit,
        )

    def limiters(self) -> dict[str, RateLimiter]:
        """The rate limiters by name (cluster mode shares them: ``node.clusterlimits``)."""
        return {
            "ip": self.ip_limit,
            "account": self.account_limit,
            "intro": self.intro_limit,
            "intro-recipient": self.intro_recipient_limit,
            "sealed-ip": self.sealed_ip_limit,
            "sealed-mailbox": self.sealed_mailbox_limit,
            "intro-batch": self.intro_batch_limit,
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
        if not await self.ports.accounts.register(accounts.code_hash(raw), frame.name, record, now):
            raise NodeError(errors.AUTH_BAD_CODE, "code unknown, spent, expired or taken")
        return Caller(address, FIRST_DEVICE, mailbox)

    async def authenticate(self, frame: Auth, nonce: bytes) -> Caller:
        record = await self.ports.accounts.device(frame.address, frame.device)
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
        await self.ports.accounts.add_invite(
            accounts.code_hash(raw), name, self.now_ms() + ttl_s * 1000
        )
        return accounts.format_code(raw)

    # --- mailboxes: every envelope goes in through node.accept ---------------------------

    async def send(
        self, frame: Send | Introduce, sender: str | None, *, anonymous: bool = False
    ) -> Sent:
        """Store a sealed envelope (``sender`` set for an introduction) and hand it over;
        ``anonymous``: it came over an anonymous connection (limited per mailbox).

        An introduction is refused unless the recipient accepts introductions, and is
        limited per recipient (the per-sender limit is the session's)."""
        if isinstance(frame, Send):
            recipient = Recipient(frame.mailbox, frame.token)
        else:
            recipient = Recipient(frame.mailbox, None, introduction=True)
        delivery = Delivery(
            frame.eid,
            frame.body,
            (recipient,),
            frame.ttl,
            self.domain,
            sender,
            anonymous=anonymous,
        )
        (outcome,) = await self.intake.accept([delivery])
        if isinstance(outcome, NotStored):
            raise outcome.error
        if not isinstance(outcome, Accepted):
            raise outcome
        (verdict,) = outcome.verdicts
        if isinstance(verdict, NodeError):
            raise verdict
        return Sent(frame.id, frame.eid, not verdict)

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

        ``sender`` None: the frames came over an anonymous connection. No introduction can
        be made without a sender, so a recipient named without a token is refused
        ``send.token_required``, and every recipient is limited per mailbox.

        Every recipient's connection is handed all of the batch's envelopes before it is
        woken, so it receives them in one ``Deliver`` and acks them in one ``Ack``. A frame
        the store failed to take is answered with the failure's refusal (``StoreFaults``,
        counted once per failure); the frames stored before it keep their answers."""
        anonymous = sender is None
        name = Recipient if anonymous else Recipient.named
        deliveries = [
            Delivery(
                f.eid,
                f.body,
                tuple(name(r.mailbox, r.token) for r in f.recipients),
                f.ttl,
                self.domain,
                sender,
                shared=True,
                anonymous=anonymous,
            )
            for f in frames
        ]
        outcomes = await self.intake.accept(deliveries)
        answers: list[SentShared | NodeError] = []
        refusals: dict[int, NodeError] = {}  # one refusal (counted, logged) per failure
        for frame, outcome in zip(frames, outcomes, strict=True):
            if isinstance(outcome, Accepted):
                answers.append(SentShared(frame.id, frame.eid, _codes(outcome)))
                continue
            if isinstance(outcome, NodeError):
                answers.append(outcome)
                continue
            failure = outcome if isinstance(outcome, StoreError) else outcome.error
            if not isinstance(failure, StoreError):
                raise failure
            if id(failure) not in refusals:
                refusals[id(failure)] = self.store_faults.refusal(failure)
            answers.append(refusals[id(failure)])
        return answers

    def expiry(self, ttl: int, size: int) -> int:
        """The life in ms of a body of ``size`` bytes asked to live ``ttl`` s."""
        return self.intake.expiry(ttl, size)

    async def owner(self, mailbox: bytes) -> str:
        """The address owning ``mailbox`` (cached: a mailbox never changes hands)."""
        return await self.intake.owner(mailbox)

    async def identity_of(self, caller: Caller) -> IdentityKey:
        record = await self.ports.accounts.device(caller.address, caller.device)
        if record is None:
            raise NodeError(errors.AUTH_FAILED, "device no longer registered")
        return decode(record.identity, IdentityKey)

    async def check_token(self, address: str, token: bytes | None) -> None:
        await self.intake.check_token(address, token)

    async def check_introduction(self, recipient: str) -> None:
        await self.intake.check_introduction(recipient)

    async def set_introductions(self, caller: Caller, accept: bool) -> None:
        """Turn introductions to the caller's account on or off."""
        await self.ports.accounts.set_accepts_introductions(caller.address, accept)

    async def set_token(self, caller: Caller, verifier: bytes) -> None:
        """Store a new delivery-token verifier (``Intake.set_token``: never a stale one
        cached)."""
        await self.intake.set_token(caller.address, verifier)

    async def set_group_token(
        self, caller: Caller, verifier: bytes | None, revoke: bytes | None
    ) -> None:
        """Register a group token verifier and revoke an older one
        (``Intake.set_group_token``: ``limit.group_tokens`` past the bound)."""
        await self.intake.set_group_token(caller.address, verifier, revoke)

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
        await self.ports.prekeys.put_prekeys(caller.address, caller.device, record)

    async def fetch_prekeys(self, frame: FetchPrekeys) -> tuple[DeviceBundle, ...]:
        found = []
        for record in (await self.ports.accounts.devices(frame.address))[:MAX_DEVICES]:
            parts = await self.ports.prekeys.take_bundle(record.address, record.device)
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
        await self.ports.blobs.grant_blob(
            blob, accounts.blob_token_hash(token), frame.size, expires
        )
        return BlobGrant(frame.id, blob, token, expires)

    async def blob_grant(self, blob: bytes, token: bytes) -> int | None:
        """The granted size of an upload ``token`` may still make, or None."""
        token_hash = accounts.blob_token_hash(token)
        return await self.ports.blobs.blob_grant(blob, token_hash, self.now_ms())

    async def put_blob(self, blob: bytes, token: bytes, data: bytes) -> bool:
        token_hash = accounts.blob_token_hash(token)
        return await self.ports.blobs.put_blob(blob, token_hash, data, self.now_ms())

    async def get_blob(self, blob: bytes) -> bytes | None:
        return await self.ports.blobs.get_blob(blob, self.now_ms())

    # --- housekeeping -------------------------------------------------------------------

    async def sweep(self) -> None:
        result = await self.ports.maintenance.sweep(self.now_ms())
        self.metrics.expired += result.envelopes
        now = self.clock()
        for limiter in self.limiters().values():
            limiter.prune(now)


def _codes(outcome: Accepted) -> tuple[str, ...]:
    """A fan-out's result per recipient: ``""`` stored, ``duplicate``, or the error code."""
    return tuple(
        v.code if isinstance(v, NodeError) else "" if v else DUPLICATE for v in outcome.verdicts
    )
