"""The node's side of federation (DESIGN section 6): the shell around ``federation/``.

:class:`Federation` holds the keyring, the peer client and the outbound senders, and
answers both sides:

for this domain's clients (``node.session``)
    ``forward``          queue a sealed routing layer for another domain (Forward frame)
    ``server_keys``      a domain's key document, as the keyring verified it
    ``remote_prekeys``   a remote address's prekey bundles, fetched on the client's behalf
    ``remote_blob``      a remote blob, fetched on the client's behalf

for peers (``node.app``, signed requests; ``node.fed.inbound``)
    PUT  /federation/v1/send/{txn}        a transaction of routing layers
    POST /federation/v1/prekeys           bundles of one of our addresses
    GET  /federation/v1/blobs/{id}        a blob of ours
    GET  /federation/v1/notary/{domain}   our view of another domain's key document
    POST /federation/v1/hello             "we are up": ends the caller's backoff towards us

The requesting user and their IP never reach the peer: only this domain's server signs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Final

import httpx
import trio

from federation.errors import (
    ClockSkew,
    FederationError,
    KeyDocumentError,
    PolicyRefused,
    describe_skew,
)
from federation.keyring import Keyring
from federation.policy import PeerPolicy
from node import errors
from node.errors import NodeError
from node.fed.inbound import Inbound
from node.fed.outbound import Outbound
from node.fed.peers import PeerClient
from node.relay import Relay
from node.store.base import OutboundItem
from wire import WireError, decode, encode
from wire.federation import RemotePrekeyBundles, RemotePrekeyRequest, SealedRoutingLayer
from wire.relay import DeviceBundle, Forward, Sent

log = logging.getLogger("sealrelay.node.federation")

PREKEYS_PATH: Final = "/federation/v1/prekeys"
BLOBS_PATH: Final = "/federation/v1/blobs/"
NOTARY_PATH: Final = "/federation/v1/notary/"
HELLO_PATH: Final = "/federation/v1/hello"
HELLO_TRIES: Final = 3
HELLO_PAUSE: Final = 2.0
TRUST_DIR: Final = "peers-tofu"
LAYER_OVERHEAD: Final = 8 * 1024  # routing layer fields and HPKE encapsulation, above the body


class FileTrustStore:
    """First-seen (TOFU) key documents, one file per domain in the data directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, domain: str) -> Path:
        return self.directory / (domain.lower().replace("/", "_") + ".doc")

    def load(self, domain: str) -> bytes | None:
        try:
            return self._path(domain).read_bytes()
        except OSError:
            return None

    def save(self, domain: str, document: bytes) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self._path(domain).with_suffix(".tmp")
        tmp.write_bytes(document)
        os.replace(tmp, self._path(domain))


class Federation:
    def __init__(
        self,
        relay: Relay,
        document: Callable[[], bytes],
        *,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        config = relay.config
        self.relay = relay
        self.domain = config.domain.lower()
        self.policies = config.peer_policies()
        self.peers = PeerClient(self.domain, lambda: relay.keys, relay.clock, http=http)
        self.keyring = Keyring(
            self.domain,
            self.policies,
            self.peers.fetch_document,
            clock=relay.clock,
            trust_store=FileTrustStore(Path(config.data_dir) / TRUST_DIR),
            open_federation=config.open_federation,
            on_refusal=self._key_refused,
        )
        self.keyring.set_local(document)
        self.outbound = Outbound(
            self.domain,
            relay.ports.outbound,
            self._send_txn,
            relay.metrics,
            relay.clock,
            config.federation_backoff_cap,
            config.federation_in_flight,
            probe=self._probe,
        )
        self.inbound = Inbound(relay, self.keyring, self.outbound)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(self.outbound.run)
                for domain, policy in self.policies.items():
                    if policy.allow:
                        nursery.start_soon(self._hello, domain)
                task_status.started()
        finally:
            with trio.CancelScope(shield=True):
                await self.peers.aclose()

    def _key_refused(self, domain: str, code: str, message: str) -> None:
        self.relay.metrics.count("federation_key_refusals", domain=domain, code=code)
        log.error(
            "REFUSED a key document of a peer domain",
            extra={"domain": domain, "code": code, "reason": message},
        )

    async def _hello(self, domain: str) -> None:
        """Tell ``domain`` we are up (a signed ``POST /federation/v1/hello``): a peer that
        has envelopes queued for us stops backing off and sends them now. Best effort, a
        few tries."""
        policy = self.policies[domain]
        for attempt in range(HELLO_TRIES):
            try:
                response = await self.peers.request("POST", domain, policy.urls(), HELLO_PATH)
            except FederationError:
                await trio.sleep(HELLO_PAUSE * (attempt + 1))
                continue
            if response.status_code == 200:
                self.outbound.heard_from(domain)
            return

    async def _probe(self, domain: str) -> bool:
        """Whether ``domain`` answers a signed hello now (the outbound senders' probe; the
        caller bounds the time)."""
        try:
            policy = self.keyring.policy(domain)
            response = await self.peers.request("POST", domain, policy.urls(), HELLO_PATH)
        except FederationError:
            return False
        return response.status_code == 200

    # --- for this domain's clients --------------------------------------------------------

    async def forward(self, frame: Forward) -> Sent:
        domain = frame.domain.lower()
        if domain == self.domain:
            raise NodeError(errors.PROTO_UNEXPECTED, "Forward is for other domains; use Send")
        with _as_node_error():
            policy = self.keyring.policy(domain)
        limit = min(
            policy.max_envelope_bytes, self.relay.config.max_envelope_bytes + LAYER_OVERHEAD
        )
        if len(frame.layer) > limit:
            raise NodeError(errors.SEND_TOO_LARGE, "routing layer too large")
        _check_layer(policy, frame.layer)
        expires_in = self.relay.expiry(frame.ttl, 0)
        item = OutboundItem(domain, frame.eid, self.relay.now_ms() + expires_in, frame.layer)
        with trio.CancelScope(shield=True):
            stored = await self.outbound.queue(item)
        if stored:
            self.relay.metrics.count("federation_queued", domain=domain)
        return Sent(frame.id, frame.eid, not stored)

    async def server_keys(self, domain: str) -> bytes:
        with _as_node_error():
            verified = await self.keyring.document(domain)
        return verified.raw

    async def remote_prekeys(self, address: str, domain: str) -> tuple[DeviceBundle, ...]:
        body = encode(RemotePrekeyRequest(address=address))
        with _as_node_error():
            policy = self.keyring.policy(domain)
            response = await self.peers.request("POST", domain, policy.urls(), PREKEYS_PATH, body)
        if response.status_code == 404:
            raise NodeError(errors.PREKEYS_NONE, "no device with published prekeys")
        if response.status_code != 200:
            raise NodeError(errors.FED_UNAVAILABLE, f"{domain} answered {response.status_code}")
        try:
            answer = decode(response.content, RemotePrekeyBundles)
        except WireError:
            raise NodeError(errors.FED_UNAVAILABLE, f"{domain} sent an invalid answer") from None
        if answer.address != address:
            raise NodeError(errors.FED_UNAVAILABLE, f"{domain} answered for another address")
        return answer.devices

    async def remote_blob(self, domain: str, blob: bytes) -> bytes | None:
        """A blob of ``domain``, fetched for a client; only from a peer whose key document
        this node trusts (as before sending to it), so a name a client made up is not
        fetched from."""
        with _as_node_error():
            policy = self.keyring.policy(domain)
            await self.keyring.document(domain)
            response = await self.peers.request(
                "GET", domain, policy.urls(), BLOBS_PATH + blob.hex()
            )
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise NodeError(errors.FED_UNAVAILABLE, f"{domain} answered {response.status_code}")
        return response.content

    # --- the outbound senders' transport ------------------------------------------------

    async def _send_txn(self, domain: str, path: str, body: bytes) -> bytes:
        policy = self.keyring.policy(domain)
        await self.keyring.document(domain)  # the peer must be trusted before we send
        response = await self.peers.request("PUT", domain, policy.urls(), path, body)
        if response.status_code != 200:
            raise _refusal(domain, response.status_code, response.content)
        return response.content


def _refusal(domain: str, status: int, content: bytes) -> FederationError:
    """The peer's refusal of a transaction; :class:`ClockSkew` when it says our request
    time is outside its window (``skew_ms`` in its answer: our clock minus its clock)."""
    answer = _problem(content)
    code = str(answer.get("code", ""))
    skew = answer.get("skew_ms")
    if status == 401 and code == errors.FED_AUTH and type(skew) is int:
        return ClockSkew(
            skew,
            f"{domain} refused the transaction: our request time is "
            f"{describe_skew(skew)} (HTTP 401 {code})",
        )
    return FederationError(f"{domain} refused the transaction: HTTP {status} {code}")


def _problem(content: bytes) -> dict[str, object]:
    try:
        answer = json.loads(content)
    except ValueError:
        return {}
    return answer if isinstance(answer, dict) else {}


def _check_layer(policy: PeerPolicy, layer: bytes) -> None:
    """Queue only what the peer can take: a sealed routing layer (its inside is the peer's
    to open) of a suite its policy allows, never other bytes shipped in its place."""
    try:
        sealed = decode(layer, SealedRoutingLayer)
    except WireError:
        raise NodeError(errors.PROTO_MALFORMED, "not a sealed routing layer") from None
    with _as_node_error():
        policy.check_suite(sealed.suite)


@contextlib.contextmanager
def _as_node_error() -> Iterator[None]:
    """A federation failure met on a client's behalf becomes a NodeError with its code."""
    try:
        yield
    except FederationError as exc:
        raise _translate(exc) from None


def _translate(exc: FederationError) -> NodeError:
    if isinstance(exc, PolicyRefused):
        return NodeError(errors.FED_POLICY, exc.message)
    if isinstance(exc, KeyDocumentError):
        return NodeError(exc.code, exc.message)
    return NodeError(errors.FED_UNAVAILABLE, exc.message)
