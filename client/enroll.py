"""Enrolling a new account: the registration flow, start to saved state.

1. fetch the home node's server key document and verify its self-signatures; the
   agency roots that certify it are pinned with it (``client.domaintrust``: no root, no
   other domain);
2. generate the identity, the prekeys and the account's delivery token;
3. on one connection: ``Register`` (signed challenge, one-time code), ``PublishPrekeys``,
   ``SetDeliveryToken`` (its verifier only), ``SetIntroductions`` (accept first contact
   from senders without the token, unless ``introductions=False``), ``GetCertificate``;
4. check the certificate against the document just pinned, then save the device and the
   account data in one store transaction.

A crash before step 4 leaves nothing saved (the code is spent: ask for another).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import trio

from client import nodehttp
from client.domaintrust import home_roots
from client.entropy import SYSTEM_ENTROPY, Entropy
from client.errors import CertificateError, ClientError, NetworkError, SuiteMismatch
from client.identity import Identity, PrekeyPool
from client.net import (
    Connection,
    Connector,
    Push,
    RegisterLogin,
    read_hello,
    serving,
    websocket_connector,
)
from client.persist import save_account_info, save_device, save_home_roots
from client.records import AccountInfo
from client.sealed import domain_of, verify_certificate
from client.serverkeys import PinnedKeyring, verify_document
from client.session import Device
from client.store.base import StateStore
from suites import get_suite
from suites.tokens import delivery_token_verifier
from wire.e2e import DELIVERY_TOKEN_LEN, SenderCertificate
from wire.relay import (
    CertificateIssued,
    GetCertificate,
    PublishPrekeys,
    Registered,
    SetDeliveryToken,
    SetIntroductions,
)
from wire.server import ServerKeyDocument


async def enroll(
    store: StateStore,
    address: str,
    node_url: str,
    code: str,
    suite_name: str,
    *,
    entropy: Entropy = SYSTEM_ENTROPY,
    clock: Callable[[], float] = time.time,
    connector: Connector | None = None,
    introductions: bool = True,
) -> Device:
    """Register ``address`` on the node at ``node_url`` and save the new device.

    ``introductions`` (default on) asks the node to accept ``Introduce`` frames to the
    account, so that a first message from someone without its delivery token arrives."""
    name, _, _ = address.rpartition("@")
    domain = domain_of(address)
    doc_bytes = await nodehttp.fetch_document(node_url)
    doc = verify_document(doc_bytes, domain, int(clock() * 1000))
    roots = home_roots(doc, int(clock() * 1000))
    suite = get_suite(suite_name)
    if doc.body.suite != suite.suite_id:
        raise SuiteMismatch(f"{domain} uses another suite than {suite_name}")
    identity = Identity.generate(suite, entropy)
    pool = PrekeyPool.create(identity, entropy)
    token = entropy.random_bytes(DELIVERY_TOKEN_LEN)
    connect = connector or websocket_connector(node_url)
    registered, certificate = await _register(
        connect, identity, pool, name, code, token, domain, introductions
    )
    keyring = PinnedKeyring()
    keyring.pin(doc)
    device = Device(
        address=registered.address,
        device_id=registered.device,
        identity=identity,
        pool=pool,
        keyring=keyring,
        certificate=certificate,
        entropy=entropy,
        clock=clock,
    )
    check_certificate(device, doc)
    info = AccountInfo(node_url, doc_bytes, registered.mailbox, token)
    with store.transaction():
        save_device(store, device)
        save_account_info(store, info)
        save_home_roots(store, roots)
    return device


async def _register(
    connect: Connector,
    identity: Identity,
    pool: PrekeyPool,
    name: str,
    code: str,
    token: bytes,
    domain: str,
    introductions: bool,
) -> tuple[Registered, SenderCertificate]:
    pushes_send, _pushes = trio.open_memory_channel[Push](1024)
    async with connect() as transport:
        conn = Connection(transport, await read_hello(transport), pushes_send)
        if conn.hello.server != domain:
            raise NetworkError(f"the node serves {conn.hello.server!r}, not {domain!r}")
        async with serving(conn):
            registered = await conn.request(RegisterLogin(identity, name, code).request(conn.hello))
            if not isinstance(registered, Registered):
                raise NetworkError("unexpected answer to Register")
            await conn.request(PublishPrekeys(id=0, upload=pool.upload()))
            await conn.request(SetDeliveryToken(id=0, verifier=delivery_token_verifier(token)))
            if introductions:
                await conn.request(SetIntroductions(id=0, accept=True))
            issued = await conn.request(GetCertificate(id=0))
    if not isinstance(issued, CertificateIssued):
        raise NetworkError("unexpected answer to GetCertificate")
    return registered, issued.certificate


def check_certificate(device: Device, doc: ServerKeyDocument) -> None:
    """Raise unless ``device.certificate`` verifies against the pinned keys and names
    this device (its address, id and identity) in the domain of ``doc``."""
    cert = device.certificate
    verify_certificate(device.suite, cert, device.keyring, int(device.clock() * 1000))
    body = cert.body
    if (
        body.address != device.address
        or body.device != device.device_id
        or body.identity != device.identity.public
    ):
        raise CertificateError("the node certified another device")
    if doc.body.server.lower() != domain_of(device.address):
        raise ClientError("the node registered an address of another domain")
