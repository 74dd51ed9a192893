"""Builders for node tests: a Relay on a MemoryStore with a fixed clock, and client devices
that register and authenticate through a Session exactly as a real client would."""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field

from client.entropy import SYSTEM_ENTROPY
from client.identity import Identity, PrekeyPool
from node.config import Config
from node.keys import ServerKeys, generate
from node.relay import Relay
from node.session import Session
from node.store import MemoryStore
from suites import get_suite, labels
from wire import decode, encode
from wire.relay import (
    PURPOSE_AUTH,
    PURPOSE_REGISTER,
    Auth,
    Authenticated,
    AuthPayload,
    Hello,
    Register,
    Registered,
)

DOMAIN = "relay.test"
PEER = "192.0.2.1"


@dataclass
class Clock:
    now: float = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@functools.cache
def server_keys(suite_name: str) -> ServerKeys:
    return generate(get_suite(suite_name))


def make_config(**changes: object) -> Config:
    base = Config(domain=DOMAIN, data_dir="unused", store="memory", suite="xwing")
    return base.replace(**changes)


def make_relay(clock: Clock | None = None, **changes: object) -> Relay:
    config = make_config(**changes)
    return Relay(
        config=config,
        store=MemoryStore(),
        keys=server_keys(config.suite),
        clock=clock or Clock(),
    )


@dataclass
class Device:
    """A client device: identity, prekeys, and once enrolled its address and mailbox."""

    identity: Identity
    name: str
    address: str = ""
    device: int = 0
    mailbox: bytes = b""
    pool: PrekeyPool | None = field(default=None, repr=False)

    @classmethod
    def create(cls, name: str, suite_name: str = "xwing") -> Device:
        return cls(Identity.generate(get_suite(suite_name), SYSTEM_ENTROPY), name)

    def prekeys(self) -> PrekeyPool:
        if self.pool is None:
            self.pool = PrekeyPool.create(self.identity, SYSTEM_ENTROPY)
        return self.pool

    def sign(self, purpose: int, nonce: bytes, address: str, device: int) -> bytes:
        payload = AuthPayload(purpose, DOMAIN, nonce, address, device)
        return self.identity.sign(encode(payload), labels.CTX_DEVICE_AUTH)

    def register_frame(self, hello: Hello, code: str, request_id: int = 1) -> Register:
        address = f"{self.name}@{hello.server}"
        sig = self.sign(PURPOSE_REGISTER, hello.nonce, address, 0)
        return Register(request_id, code, self.name, self.identity.public, sig)

    def auth_frame(self, hello: Hello, request_id: int = 1) -> Auth:
        sig = self.sign(PURPOSE_AUTH, hello.nonce, self.address, self.device)
        return Auth(request_id, self.address, self.device, sig)


async def call(session: Session, frame: object) -> list[object]:
    """Send one frame through the session's byte interface and decode what comes back."""
    return [decode(encode(f)) for f in await session.receive(encode(frame))]


async def enroll(relay: Relay, device: Device) -> Session:
    """Register ``device`` with a fresh invite; the returned session is authenticated."""
    code = await relay.add_invite(device.name, 3600)
    session = Session(relay, PEER)
    hello = session.hello()
    (reply,) = await call(session, device.register_frame(hello, code))
    assert isinstance(reply, Registered), reply
    device.address, device.device, device.mailbox = reply.address, reply.device, reply.mailbox
    return session


async def login(relay: Relay, device: Device, peer: str = PEER) -> tuple[Session, Authenticated]:
    session = Session(relay, peer)
    hello = session.hello()
    (reply,) = await call(session, device.auth_frame(hello))
    assert isinstance(reply, Authenticated), reply
    return session, reply


def token_for(device: Device) -> tuple[bytes, bytes]:
    """A delivery token and its verifier for ``device``."""
    token = hashlib.sha256(device.name.encode()).digest()[:16]
    return token, hashlib.sha256(labels.DELIVERY_TOKEN_HASH_INFO + token).digest()


def eid(n: int) -> bytes:
    """Envelope id number ``n`` (16 bytes)."""
    return n.to_bytes(16, "big")
