"""The client's login to its home node (DESIGN section 5): the first frame a node sends
(``Hello``) and the request that answers it, ``Register`` (enrolment with a one-time code)
or ``Auth`` (an enrolled device), each signed over ``AuthPayload`` with the device's
identity key under the label ``CTX_DEVICE_AUTH``. ``client.net.handshake`` sends it on a
connection; ``client.net`` re-exports these names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from client.errors import NetworkError
from client.identity import Identity
from client.websocket import Transport
from suites import labels
from wire import WireError, decode, encode
from wire.relay import (
    PROTOCOL_VERSION,
    PURPOSE_AUTH,
    PURPOSE_REGISTER,
    Auth,
    AuthPayload,
    Hello,
    Register,
)


def auth_signature(
    identity: Identity, purpose: int, hello: Hello, address: str, device: int
) -> bytes:
    payload = AuthPayload(
        purpose=purpose, server=hello.server, nonce=hello.nonce, address=address, device=device
    )
    return identity.sign(encode(payload), labels.CTX_DEVICE_AUTH)


@dataclass(frozen=True)
class RegisterLogin:
    """Enroll ``name`` with a one-time ``code``."""

    identity: Identity
    name: str
    code: str

    def request(self, hello: Hello) -> Register:
        address = f"{self.name}@{hello.server}"
        sig = auth_signature(self.identity, PURPOSE_REGISTER, hello, address, 0)
        return Register(
            id=0, code=self.code, name=self.name, identity=self.identity.public, sig=sig
        )


@dataclass(frozen=True)
class AuthLogin:
    """Authenticate an enrolled device."""

    identity: Identity
    address: str
    device: int

    def request(self, hello: Hello) -> Auth:
        sig = auth_signature(self.identity, PURPOSE_AUTH, hello, self.address, self.device)
        return Auth(id=0, address=self.address, device=self.device, sig=sig)


class Login(Protocol):
    def request(self, hello: Hello) -> Register | Auth: ...


async def read_hello(transport: Transport) -> Hello:
    try:
        hello = decode(await transport.receive(), Hello)
    except WireError:
        raise NetworkError("the node's first frame is not a Hello") from None
    if hello.v != PROTOCOL_VERSION:
        raise NetworkError(f"the node speaks protocol version {hello.v}")
    return hello
