"""Both sides of a node-to-node media link's handshake over its QUIC control stream
(DESIGN section 9; issue 17, "node-to-node links authenticate both ends"), as trio
functions over one :class:`~transport.QuicChannel` (``node.calls.links`` calls them)::

    connecting node  (prove_link)               accepting node  (accept_link)
    LinkHello{origin, target}   ------------->  the target must be this domain
                                <-------------  LinkChallenge (32 fresh random bytes)
    LinkProof (trust.peerlink.prove) -------->  checked against the origin's key document,
                                                verified and trusted by the keyring
                                <-------------  LinkReady, or LinkRejected{code} and a close

TLS has already authenticated the accepting node by the pin its key document lists
(``trust.media``); the proof authenticates the connecting node by its server signing key,
bound to the challenge, to that pin and to both domains (``trust.peerlink``). Each side
gives the whole exchange ``limit`` seconds.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from typing import Protocol

import trio

from federation.keyring import VerifiedDocument
from node.errors import CALL_UNREACHABLE, FED_AUTH, NodeError
from suites import Suite
from suites.sig import SigPrivateKey
from transport import QuicChannel, TransportError
from trust import peerlink
from trust.errors import LinkRefused
from wire import WireError, decode, encode
from wire.media_link import (
    MAX_LINK_CONTROL,
    LinkHello,
    LinkReady,
    LinkRejected,
    decode_handshake_answer,
    decode_hello,
)
from wire.server import LinkChallenge


class LinkSigner(Protocol):
    """What signs this node's link proof: its current server keys (``node.keys``)."""

    @property
    def suite(self) -> Suite: ...
    @property
    def sig_key(self) -> SigPrivateKey: ...
    @property
    def sig_key_id(self) -> bytes: ...


class Refused(Exception):
    """An inbound link refused during its handshake, with the stable code the peer is
    told (``fed.auth``, or the keyring's ``fed.policy`` / ``fed.key_document`` / ...)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message = code, message


Documents = Callable[[str], Awaitable[VerifiedDocument]]
"""A domain's key document, verified and trusted; :class:`NodeError` with its code else."""


async def accept_link(
    channel: QuicChannel,
    first: bytes,
    *,
    domain: str,
    pin: bytes,
    fresh: bytes,
    now_ms: Callable[[], int],
    documents: Documents,
    limit: float,
    replicas: bool = False,
) -> str:
    """The peer's domain once the link that opened with ``first`` (a ``LinkHello``) is
    proved for this node (``domain``, its QUIC ``pin``), with the challenge ``fresh``
    (``trust.peerlink.CHALLENGE_SIZE`` random bytes); ``LinkReady`` is sent. Else
    :class:`Refused`; the caller tells the peer and closes. With ``replicas`` (cluster
    mode), a hello from ``domain`` itself is another replica of this domain: its proof is
    checked against this domain's own key document, which all replicas share."""
    hello = decode_hello(first)  # the shell only hands over what decodes as one
    origin = hello.origin.lower()
    if hello.target.lower() != domain or (origin == domain and not replicas):
        raise Refused(FED_AUTH, f"this node serves {domain}")
    challenge = peerlink.issue(fresh, domain, pin, now_ms())
    data: bytes | None = None
    with trio.move_on_after(limit):
        try:
            await channel.send_control(challenge.message())
            data = await channel.receive_control()
        except TransportError:
            raise Refused(FED_AUTH, "the link closed during its handshake") from None
    if data is None:
        raise Refused(FED_AUTH, "no link proof in time")
    arrived = now_ms()
    try:
        proof = peerlink.read_proof(data)
        if proof.origin.lower() != origin:
            raise LinkRefused("the link proof is for another domain than its hello")
        verified = await documents(origin)
        challenge.check(proof, verified.doc, arrived)
    except (LinkRefused, NodeError) as exc:
        raise Refused(exc.code, exc.message) from None
    await send_quietly(channel, LinkReady())
    return origin


async def prove_link(
    channel: QuicChannel,
    *,
    origin: str,
    target: str,
    target_pin: bytes,
    signer: LinkSigner,
    limit: float,
) -> None:
    """The connecting side: say who we are (``origin``) and whom we mean (``target``,
    whose QUIC key we pinned as ``target_pin``), answer the challenge with ``signer``'s
    key. ``call.unreachable`` if the peer refuses, breaks the exchange or takes too long."""
    answer: LinkReady | LinkRejected | None = None
    with trio.move_on_after(limit):
        try:
            await channel.send_control(encode(LinkHello(origin, target)))
            challenge = _challenge(await channel.receive_control())
            proof = peerlink.prove(
                challenge,
                origin=origin,
                target=target,
                target_pin=target_pin,
                suite=signer.suite,
                sig_key=signer.sig_key,
                key_id=signer.sig_key_id,
            )
            await channel.send_control(proof)
            answer = decode_handshake_answer(await channel.receive_control())
        except (TransportError, WireError, LinkRefused):
            answer = LinkRejected(FED_AUTH, "the link handshake failed")
    if answer is None:
        raise NodeError(CALL_UNREACHABLE, f"{target} did not accept the media link in time")
    if isinstance(answer, LinkRejected):
        raise NodeError(CALL_UNREACHABLE, f"{target} refused the media link ({answer.code})")


async def send_quietly(channel: QuicChannel, message: LinkReady | LinkRejected) -> None:
    """Send a handshake answer; a peer that went already is no error (the close says it)."""
    with contextlib.suppress(TransportError):
        await channel.send_control(encode(message))


def _challenge(data: bytes) -> bytes:
    """The accepter's ``LinkChallenge`` as received; :class:`LinkRefused` if it sent a
    ``LinkRejected`` (or anything else) instead."""
    try:
        decode(data, LinkChallenge, max_size=MAX_LINK_CONTROL)
    except WireError:
        raise LinkRefused("the peer sent no link challenge") from None
    return data
