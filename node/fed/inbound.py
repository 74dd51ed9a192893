"""Requests from peer domains (DESIGN section 6), answered as ``(status, content type, body)``.

Every request is authenticated first (:meth:`Inbound.authenticate`): the signature headers
parse and name this domain, the origin is an allowed peer, the time is within ±5 minutes,
the signing key is a current key of the origin's key document (refreshed once if unknown,
as after a rotation), the signature verifies, and the nonce was never seen. A refusal is
logged with the origin and counted (``federation_refused_total{origin,code}``).

A transaction is de-duplicated by ``(origin, txn_id)``: a repeat gets the first answer.
Each item's routing layer is opened with this domain's KEM keys (current or retired) and
stored as a local ``Send`` is, by ``node.accept``: the delivery token is checked against
the recipient's verifier, or, without one, as an introduction the recipient must have
turned on. The
stored envelope's ``origin`` is the peer domain and its sender is unknown: the node never
learns who sent it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Final

import trio

from federation.errors import ClockSkew, FederationError, PolicyRefused, RequestAuthError
from federation.keyring import Keyring
from federation.policy import PeerPolicy
from federation.requestsig import WINDOW_MS, check_time, parse_request, verify_signature
from federation.routing import open_layer
from node import errors
from node.accept import Accepted, Delivery, NotStored, Outcome, Recipient
from node.errors import NodeError
from node.fed.outbound import Outbound
from node.limits import RateLimiter
from node.relay import Relay
from node.store import StoreError
from suites import labels
from wire import WireError, decode, encode
from wire.errors import TOO_LARGE
from wire.federation import (
    ITEM_OK,
    ITEM_REFUSED,
    ITEM_RETRY,
    MAX_TXN_BODY,
    NotaryAnswer,
    NotaryStatement,
    RemotePrekeyBundles,
    RemotePrekeyRequest,
    SealedRoutingLayer,
    Transaction,
    TransactionItem,
    TransactionResult,
    txn_within_bounds,
)
from wire.relay import FetchPrekeys

log = logging.getLogger("sealrelay.node.federation")

MSGPACK: Final = "application/x-msgpack"
JSON: Final = "application/json"
TXN_MEMORY_MS: Final = 31 * 86_400_000  # longer than any item's TTL: the retry horizon
RETRY_CODES: Final = frozenset(
    {errors.INTERNAL, errors.LIMIT_RATE, errors.STORE_FULL, errors.STORE_UNAVAILABLE}
)
TXN_BOUND: Final = "a transaction holds at most 100 items whose layers total at most 1 MiB"
"""Item errors answered ``ITEM_RETRY`` (they may pass); any other is ``ITEM_REFUSED``."""

Answer = tuple[int, str, bytes]


def problem(status: int, code: str, message: str, **extra: int) -> Answer:
    """A JSON problem answer: ``code``, ``message`` and any ``extra`` numbers."""
    body = {"code": code, "message": message, **extra}
    return status, JSON, json.dumps(body).encode()


class Inbound:
    def __init__(self, relay: Relay, keyring: Keyring, outbound: Outbound) -> None:
        self.relay = relay
        self.keyring = keyring
        self.outbound = outbound
        self.domain = relay.config.domain.lower()
        self._rates: dict[str, RateLimiter] = {}

    async def authenticate(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[str, PeerPolicy]:
        """The authenticated origin domain and its policy; FederationError otherwise."""
        claim = parse_request(method, path, headers, body, self.domain)
        origin = claim.statement.origin
        policy = self.keyring.policy(origin)
        now = self.relay.now_ms()
        check_time(claim, now)
        key = await self.keyring.verify_key(origin, claim.statement.key_id)
        verify_signature(claim, key)
        expires = claim.statement.time + 2 * WINDOW_MS
        if not await self.relay.ports.replay.remember_nonce(origin, claim.statement.nonce, expires):
            raise RequestAuthError("a replayed federation request (nonce seen before)")
        self.outbound.heard_from(origin)
        return origin, policy

    async def handle(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes
    ) -> Answer:
        origin = headers.get("sealrelay-origin", "?")
        try:
            origin, policy = await self.authenticate(method, path, headers, body)
            return await self._route(origin, policy, method, path, body)
        except ClockSkew as exc:
            self._refused(origin, exc.code, exc.message)
            self._skewed(origin, exc.skew_ms)
            return problem(401, exc.code, exc.message, skew_ms=exc.skew_ms)
        except FederationError as exc:
            status = 403 if isinstance(exc, PolicyRefused) else 401
            self._refused(origin, exc.code, exc.message)
            return problem(status, exc.code, exc.message)
        except NodeError as exc:
            self._refused(origin, exc.code, exc.message)
            return problem(429 if exc.code == errors.LIMIT_RATE else 400, exc.code, exc.message)
        except StoreError as exc:
            log.error("federation request failed in the store", extra={"error": str(exc)})
            return problem(503, errors.INTERNAL, "storage unavailable; retry")

    def _refuse(self, origin: str, status: int, code: str, message: str) -> Answer:
        """A malformed request of an authenticated peer: counted and logged, then answered."""
        self._refused(origin, code, message)
        return problem(status, code, message)

    def _refused(self, origin: str, code: str, message: str) -> None:
        self.relay.metrics.count("federation_refused", origin=origin[:253], code=code)
        log.warning(
            "refused a federation request",
            extra={"origin": origin[:253], "code": code, "reason": message},
        )

    def _skewed(self, origin: str, skew_ms: int) -> None:
        """A request refused for its time: counted apart, and logged with the skew (the
        origin is as the request named it: checked before the signature)."""
        self.relay.metrics.count("federation_clock_skew_refused", origin=origin[:253])
        log.warning(
            "refused a federation request for clock skew: check NTP on both nodes",
            extra={"origin": origin[:253], "skew_s": round(skew_ms / 1000, 1)},
        )

    async def _route(
        self, origin: str, policy: PeerPolicy, method: str, path: str, body: bytes
    ) -> Answer:
        if method == "PUT" and path.startswith("/federation/v1/send/"):
            return await self.transaction(origin, policy, path.rsplit("/", 1)[1], body)
        if method == "POST" and path == "/federation/v1/prekeys":
            return await self.prekeys(body)
        if method == "GET" and path.startswith("/federation/v1/blobs/"):
            return await self.blob(path.rsplit("/", 1)[1])
        if method == "POST" and path == "/federation/v1/hello":
            return 200, JSON, b'{"ok": true}'  # authenticate() already noted the caller
        if method == "GET" and path.startswith("/federation/v1/notary/"):
            return await self.notary(path.rsplit("/", 1)[1])
        return problem(404, "http.not_found", "no such federation resource")

    # --- transactions -----------------------------------------------------------------------

    async def transaction(
        self, origin: str, policy: PeerPolicy, txn_hex: str, body: bytes
    ) -> Answer:
        try:
            txn_id = bytes.fromhex(txn_hex)
            txn = decode(body, Transaction, max_size=MAX_TXN_BODY)
        except WireError as exc:
            if exc.code == TOO_LARGE:  # more items than the bound: the schema counts them
                return self._refuse(origin, 413, errors.PROTO_TOO_LARGE, TXN_BOUND)
            return self._refuse(origin, 400, errors.PROTO_MALFORMED, "not a transaction")
        except ValueError:
            return self._refuse(origin, 400, errors.PROTO_MALFORMED, "not a transaction")
        if not txn_within_bounds(txn):
            return self._refuse(origin, 413, errors.PROTO_TOO_LARGE, TXN_BOUND)
        if len(txn_id) != 16 or txn.origin.lower() != origin or txn.destination != self.domain:
            message = "transaction names another origin or id"
            return self._refuse(origin, 400, errors.PROTO_MALFORMED, message)
        previous = await self.relay.ports.replay.txn_result(origin, txn_id)
        if previous is not None:
            return 200, MSGPACK, previous
        self._take_rate(origin, policy, len(txn.items))
        # All items at once: their store writes share group commits (one fsync for the
        # transaction rather than one per envelope).
        results = [ITEM_RETRY] * len(txn.items)

        async def one(index: int, item: TransactionItem) -> None:
            results[index] = await self._item(origin, policy, item)

        async with trio.open_nursery() as nursery:
            for index, item in enumerate(txn.items):
                nursery.start_soon(one, index, item)
        answer = encode(TransactionResult(txn_id, tuple(results)))
        if ITEM_RETRY not in results:
            expires = self.relay.now_ms() + TXN_MEMORY_MS
            await self.relay.ports.replay.record_txn(origin, txn_id, answer, expires)
        received = results.count(ITEM_OK)
        if received:
            self.relay.metrics.count("federation_received", received, origin=origin)
        return 200, MSGPACK, answer

    def _take_rate(self, origin: str, policy: PeerPolicy, items: int) -> None:
        limiter = self._rates.get(origin)
        if limiter is None:
            limiter = self._rates[origin] = RateLimiter(
                policy.rate_per_s, int(policy.rate_per_s * 2)
            )
        for _ in range(items):
            wait = limiter.take(origin, self.relay.clock())
            if wait:
                raise NodeError(errors.LIMIT_RATE, f"{origin} is above its rate limit")

    async def _item(self, origin: str, policy: PeerPolicy, item: TransactionItem) -> int:
        now = self.relay.now_ms()
        if item.expires <= now or len(item.layer) > policy.max_envelope_bytes:
            return ITEM_REFUSED
        try:
            policy.check_suite(decode(item.layer, SealedRoutingLayer).suite)
            layer = open_layer(self.domain, self.relay.keys.kem_private, item.layer)
        except FederationError as exc:
            return self._item_refused(origin, exc.code)
        except WireError:
            return self._item_refused(origin, errors.FED_ROUTING)
        if layer.eid != item.eid or not layer.recipients:
            return self._item_refused(origin, errors.FED_ROUTING)
        fan_out = len(layer.recipients) > 1
        # A single item lives as long as its TTL bound allows; a fan-out as its layer asks.
        ttl = min(layer.ttl, self.relay.config.max_ttl) if fan_out else self.relay.config.max_ttl
        delivery = Delivery(
            layer.eid,
            layer.body,
            tuple(Recipient.named(r.mailbox, r.token) for r in layer.recipients),
            ttl,
            origin,
            until=item.expires,
            shared=fan_out,
        )
        (outcome,) = await self.relay.intake.accept([delivery])
        if fan_out:
            return self._fanned_out(origin, outcome)
        if isinstance(outcome, Accepted):
            (verdict,) = outcome.verdicts
            outcome = verdict if isinstance(verdict, NodeError) else outcome
        if isinstance(outcome, NodeError):
            # A rate limit (introductions to one recipient) passes: the origin keeps the
            # item and sends it again; refusing it would drop a message its sender was
            # told is on its way.
            if outcome.code in RETRY_CODES:
                log.info("federation item deferred", extra={"origin": origin, "code": outcome.code})
                return ITEM_RETRY
            return self._item_refused(origin, outcome.code)
        return _stored(outcome)

    def _item_refused(self, origin: str, code: str) -> int:
        """An item refused for good: counted by origin and code, so a peer sending layers
        that do not open shows in the metrics; logged at info (items can be many)."""
        self.relay.metrics.count("federation_refused", origin=origin[:253], code=code)
        log.info("federation item refused", extra={"origin": origin, "code": code})
        return ITEM_REFUSED

    def _fanned_out(self, origin: str, outcome: Outcome) -> int:
        """A group message for several of our mailboxes (the body stored once): OK if any
        recipient took it, retried after a store failure, else refused."""
        if isinstance(outcome, NodeError):
            return ITEM_REFUSED
        if not isinstance(outcome, Accepted):
            return _stored(outcome)
        self.relay.metrics.count("federation_fanout_records", outcome.mailboxes, origin=origin)
        return ITEM_OK if outcome.mailboxes else ITEM_REFUSED

    # --- prekeys, blobs, notary -------------------------------------------------------------

    async def prekeys(self, body: bytes) -> Answer:
        try:
            request = decode(body, RemotePrekeyRequest)
        except WireError:
            return problem(400, errors.PROTO_MALFORMED, "not a prekey request")
        if request.address.rpartition("@")[2].lower() != self.domain:
            return problem(404, errors.PREKEYS_NONE, "not an address of this domain")
        try:
            devices = await self.relay.fetch_prekeys(FetchPrekeys(0, request.address))
        except NodeError as exc:
            return problem(404, exc.code, exc.message)
        return 200, MSGPACK, encode(RemotePrekeyBundles(request.address, devices))

    async def blob(self, blob_hex: str) -> Answer:
        try:
            blob = bytes.fromhex(blob_hex)
        except ValueError:
            return problem(404, errors.BLOB_NOT_FOUND, "no such blob")
        data = await self.relay.get_blob(blob) if len(blob) == 16 else None
        if data is None:
            return problem(404, errors.BLOB_NOT_FOUND, "no such blob")
        return 200, "application/octet-stream", data

    async def notary(self, domain: str) -> Answer:
        """Our verified view of ``domain``'s key document, signed by us (for TOFU peers)."""
        try:
            verified = await self.keyring.document(domain)
        except FederationError as exc:
            return problem(404, exc.code, exc.message)
        keys = self.relay.keys
        statement = NotaryStatement(
            server=self.domain,
            domain=domain.lower(),
            document_digest=verified.digest,
            time=self.relay.now_ms(),
            key_id=keys.sig_key_id,
        )
        signature = keys.suite.sig.sign(keys.sig_key, encode(statement), labels.CTX_NOTARY)
        answer = NotaryAnswer(statement, signature, verified.raw)
        return 200, MSGPACK, encode(answer)


def _stored(outcome: Accepted | StoreError | NotStored) -> int:
    """OK once stored; a store failure is retried (the origin keeps the item)."""
    if isinstance(outcome, NotStored):
        if not isinstance(outcome.error, StoreError):
            raise outcome.error
        return ITEM_RETRY
    return ITEM_RETRY if isinstance(outcome, StoreError) else ITEM_OK
