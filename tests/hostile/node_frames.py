"""Client frames to a node: the cases, and what each sends.

A case's input (:class:`FrameInput`) says which node, which member logs in first (or
none), frames sent before (their answers are not checked), and the hostile message, made
from the connection's ``Hello``. Registrations are attempted for ``newcomer`` with the
target's unspent code and a fresh identity, so a registration wrongly taken would spend it.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from client.entropy import SYSTEM_ENTROPY
from client.identity import Identity
from suites import get_suite, labels
from tests.hostile import mutate
from tests.hostile.nodeworld import ALPHA, BRAVO, CHARLIE, XRAY, Member, NodeWorld, Target
from tests.hostile.table import (
    BAD_POINT,
    CLIENT_FRAME,
    CROSS_PROTOCOL,
    REPLAY,
    SIZE_BOMB,
    STRIPPED_PQ,
    SWAPPED_KEY,
    WRONG_LENGTH,
    Case,
)
from wire import encode
from wire.e2e import IdentityKey, PrekeyUpload, SealedEnvelope
from wire.federation import SealedRoutingLayer, Transaction
from wire.relay import (
    PURPOSE_AUTH,
    PURPOSE_REGISTER,
    Auth,
    AuthPayload,
    Forward,
    Hello,
    PublishPrekeys,
    Register,
    Registered,
    RequestBlobUpload,
    Send,
    SetDeliveryToken,
)

MAX_FRAME: Final = 1_114_112
"""The node's default ``max_frame_bytes``."""
OVER_ENVELOPE: Final = 256 * 1024 + 1
"""One byte over the node's default ``max_envelope_bytes``."""

Make = Callable[[Hello], bytes | str]


@dataclass(frozen=True)
class FrameInput:
    domain: str
    login: Member | None
    make: Make
    before: tuple[Make, ...] = ()


FrameCase = Case[NodeWorld, FrameInput]

# --- builders of frames ----------------------------------------------------------------------


def auth(
    m: Member,
    hello: Hello,
    *,
    purpose: int = PURPOSE_AUTH,
    server: str | None = None,
    nonce: bytes | None = None,
    context: bytes = labels.CTX_DEVICE_AUTH,
    signer: Identity | None = None,
    edit: Callable[[bytes], bytes] = lambda sig: sig,
) -> bytes:
    """An Auth for ``m`` over this connection's challenge, with one thing changed."""
    a = m.account
    payload = AuthPayload(
        purpose, server or hello.server, nonce or hello.nonce, a.address, a.device
    )
    sig = (signer or m.identity).sign(encode(payload), context)
    return encode(Auth(1, a.address, a.device, edit(sig)))


def newcomer(t: Target) -> Identity:
    return Identity.generate(t.victim.suite, SYSTEM_ENTROPY)


def register(
    t: Target,
    hello: Hello,
    signer: Identity,
    identity: IdentityKey | None = None,
    *,
    purpose: int = PURPOSE_REGISTER,
    device: int = 0,
) -> bytes:
    """A Register of ``newcomer`` with the target's unspent code, presenting ``identity``
    (``signer``'s own unless given) and signed by ``signer``."""
    address = f"newcomer@{hello.server}"
    payload = AuthPayload(purpose, hello.server, hello.nonce, address, device)
    sig = signer.sign(encode(payload), labels.CTX_DEVICE_AUTH)
    return encode(Register(1, t.newcomer, "newcomer", identity or signer.public, sig))


def bound_identity(
    signer: Identity, *, sig: bytes | None = None, dh: bytes | None = None
) -> IdentityKey:
    """``signer``'s identity with its signing or DH key replaced, the DH key signed again by
    ``signer`` (as an attacker who owns the identity would)."""
    sig_pk = sig if sig is not None else signer.public.sig
    dh_pk = dh if dh is not None else signer.public.dh
    dh_sig = signer.sign(dh_pk, labels.CTX_IDENTITY_DH)
    return IdentityKey(suite=signer.public.suite, sig=sig_pk, dh=dh_pk, dh_sig=dh_sig)


def send(t: Target, body: bytes) -> bytes:
    v = t.victim.account
    return encode(Send(7, v.mailbox, secrets.token_bytes(16), v.token, 0, body))


# --- the cases -------------------------------------------------------------------------------


def _alpha(w: NodeWorld) -> Target:
    return w.target(ALPHA)


def _xray(w: NodeWorld) -> Target:
    return w.target(XRAY)


def _anon(domain: str, make: Make, before: tuple[Make, ...] = ()) -> FrameInput:
    return FrameInput(domain, None, make, before)


def _as_sender(t: Target, make: Make) -> FrameInput:
    return FrameInput(t.domain, t.sender, make)


def _register_case(
    pick: Callable[[NodeWorld], Target], edit: Callable[[Identity], IdentityKey]
) -> Callable[[NodeWorld], FrameInput]:
    def build(w: NodeWorld) -> FrameInput:
        t = pick(w)
        signer = newcomer(t)
        identity = edit(signer)
        return _anon(t.domain, lambda h: register(t, h, signer, identity))

    return build


def _victim_auth(
    pick: Callable[[NodeWorld], Target], **changes: object
) -> Callable[[NodeWorld], FrameInput]:
    def build(w: NodeWorld) -> FrameInput:
        t = pick(w)
        return _anon(t.domain, lambda h: auth(t.victim, h, **changes))  # type: ignore[arg-type]

    return build


def _sig_edit(edit: Callable[..., bytes]) -> Callable[[NodeWorld], FrameInput]:
    def build(w: NodeWorld) -> FrameInput:
        t = _alpha(w)
        suite = t.victim.suite
        return _anon(t.domain, lambda h: auth(t.victim, h, edit=lambda s: edit(suite, s)))

    return build


def _xwing_identity(w: NodeWorld) -> FrameInput:
    t = _alpha(w)
    signer = Identity.generate(get_suite(labels.SUITE_XWING), SYSTEM_ENTROPY)
    return _anon(t.domain, lambda h: register(t, h, signer))


def _kem_as_dh(signer: Identity) -> IdentityKey:
    return bound_identity(signer, dh=signer.suite.kem.generate().public)


def _spent_challenge(w: NodeWorld) -> FrameInput:
    t = _alpha(w)
    old = t.victim.hello.nonce  # the challenge of the connection it registered on
    return _anon(t.domain, lambda h: auth(t.victim, h, nonce=old))


def _register_after_failed_auth(w: NodeWorld) -> FrameInput:
    t = _alpha(w)
    signer = newcomer(t)
    bad = _anon(t.domain, lambda h: auth(t.victim, h, edit=lambda s: s[:-1]))
    return _anon(t.domain, lambda h: register(t, h, signer), before=(bad.make,))


def _auth_twice(w: NodeWorld) -> FrameInput:
    t = _alpha(w)
    return FrameInput(t.domain, t.victim, lambda h: auth(t.victim, h))


def _auth_payload_as_register(w: NodeWorld) -> FrameInput:
    t = _alpha(w)
    signer = newcomer(t)
    return _anon(t.domain, lambda h: register(t, h, signer, purpose=PURPOSE_AUTH))


def _prekey_signature_as_auth(w: NodeWorld) -> FrameInput:
    t = _alpha(w)
    stolen = t.victim.pool.signed_prekey_public().signature  # made under CTX_SIGNED_PREKEY
    return _anon(t.domain, lambda h: auth(t.victim, h, edit=lambda _: stolen))


def _other_device_signs(w: NodeWorld) -> FrameInput:
    t = _alpha(w)
    return _anon(t.domain, lambda h: auth(t.victim, h, signer=t.sender.identity))


def _response_as_request(w: NodeWorld) -> FrameInput:
    t = _alpha(w)
    v = t.victim.account
    return _as_sender(t, lambda h: encode(Registered(9, v.address, v.device, v.mailbox)))


def _hello_as_request(w: NodeWorld) -> FrameInput:
    return _anon(ALPHA, lambda h: encode(h))


def _transaction_as_frame(w: NodeWorld) -> FrameInput:
    return _as_sender(_alpha(w), lambda h: encode(Transaction(BRAVO, ALPHA, ())))


def _array_bomb(w: NodeWorld) -> FrameInput:
    return _anon(ALPHA, lambda h: b"\xdd\xff\xff\xff\xff" + bytes(16))  # array32 of 2^32-1


def _nesting_bomb(w: NodeWorld) -> FrameInput:
    return _anon(ALPHA, lambda h: b"\x91" * 100_000 + b"\xc0")


def _frame_over_limit(w: NodeWorld) -> FrameInput:
    return _anon(ALPHA, lambda h: os.urandom(MAX_FRAME + 1))


def _body_over_limit(w: NodeWorld) -> FrameInput:
    t = _alpha(w)
    return _as_sender(t, lambda h: send(t, os.urandom(OVER_ENVELOPE)))


def _blob_bomb(w: NodeWorld) -> FrameInput:
    return _as_sender(_alpha(w), lambda h: encode(RequestBlobUpload(8, 2**63, 0)))


def _raw_send(field: str, value: object) -> Callable[[NodeWorld], FrameInput]:
    def build(w: NodeWorld) -> FrameInput:
        t = _alpha(w)
        return _as_sender(t, lambda h: mutate.with_field(_send_frame(t), (field,), value))

    return build


def _send_frame(t: Target) -> Send:
    v = t.victim.account
    return Send(7, v.mailbox, secrets.token_bytes(16), v.token, 0, b"x" * 1024)


def _short_verifier(w: NodeWorld) -> FrameInput:
    t = _alpha(w)
    frame = SetDeliveryToken(5, bytes(32))
    return FrameInput(
        t.domain, t.victim, lambda h: mutate.with_field(frame, ("verifier",), bytes(31))
    )


def _text_frame(w: NodeWorld) -> FrameInput:
    return _anon(ALPHA, lambda h: "relay.ping")


UploadEdit = Callable[[Target, PrekeyUpload], PrekeyUpload]
Build = Callable[[NodeWorld], FrameInput]


def _publish(pick: Callable[[NodeWorld], Target], edit: UploadEdit) -> Build:
    """The victim publishing its own prekeys with one thing changed."""

    def build(w: NodeWorld) -> FrameInput:
        t = pick(w)
        upload = edit(t, t.victim.pool.upload())
        return FrameInput(t.domain, t.victim, lambda h: encode(PublishPrekeys(6, upload)))

    return build


def _sealed_key_stripped(t: Target, u: PrekeyUpload) -> PrekeyUpload:
    k = u.sealed_key
    stripped = mutate.strip_pq_kem(t.victim.suite, k.public)
    return dataclasses.replace(u, sealed_key=dataclasses.replace(k, public=stripped))


def _one_time(edit: Callable[[bytes], bytes]) -> UploadEdit:
    def change(t: Target, u: PrekeyUpload) -> PrekeyUpload:
        first, *rest = u.one_time
        bad = dataclasses.replace(first, public=edit(first.public))
        return dataclasses.replace(u, one_time=(bad, *rest))

    return change


def _signed_prekey_low_order(t: Target, u: PrekeyUpload) -> PrekeyUpload:
    spk = dataclasses.replace(u.signed_prekey, public=mutate.X25519_P_MINUS_1)
    return dataclasses.replace(u, signed_prekey=spk)


def _hybrid_as_kem_prekey(t: Target, u: PrekeyUpload) -> PrekeyUpload:
    first, *rest = u.kem_one_time
    swapped = dataclasses.replace(first, public=u.sealed_key.public)
    return dataclasses.replace(u, kem_one_time=(swapped, *rest))


def _senders_identity(t: Target, u: PrekeyUpload) -> PrekeyUpload:
    return dataclasses.replace(u, identity=t.sender.identity.public)


def _too_many_one_time(w: NodeWorld) -> FrameInput:
    t = _alpha(w)
    upload = t.victim.pool.upload()
    keys = [mutate.raw(upload.one_time[0])] * 201
    frame = PublishPrekeys(6, upload)
    path = ("upload", "one_time")
    return FrameInput(t.domain, t.victim, lambda h: mutate.with_field(frame, path, keys))


def _forward(domain: str, layer: Callable[[NodeWorld], bytes]) -> Build:
    """The sender forwarding ``layer`` to ``domain`` (alpha queues it for that peer)."""

    def build(w: NodeWorld) -> FrameInput:
        t = _alpha(w)
        frame = Forward(9, domain, secrets.token_bytes(16), 0, layer(w))
        return _as_sender(t, lambda h: encode(frame))

    return build


def _sealed_envelope(w: NodeWorld) -> bytes:
    """An end-to-end sealed envelope, not a routing layer (both are HPKE-sealed bytes)."""
    return encode(SealedEnvelope(v=1, i=2, c=os.urandom(2048)))


def _xwing_layer(w: NodeWorld) -> bytes:
    """A routing layer of the xwing suite, where bravo's policy asks for cnsa2."""
    return encode(SealedRoutingLayer(suite=2, key_id=bytes(8), c=os.urandom(2048)))


def _c(name: str, category: str, what: str, code: str, build: Build) -> FrameCase:
    return Case(name, category, CLIENT_FRAME, what, code, build)


def _zero_identity_pq(signer: Identity) -> IdentityKey:
    return bound_identity(signer, sig=mutate.zero_pq_sig_key(signer.suite, signer.public.sig))


def _strip_identity_pq(signer: Identity) -> IdentityKey:
    return bound_identity(signer, sig=mutate.strip_pq_sig_key(signer.suite, signer.public.sig))


def _bad_dh(signer: Identity) -> IdentityKey:
    pk = signer.public.dh
    bad = mutate.X25519_ORDER_8 if len(pk) == 32 else mutate.off_curve(pk)
    return bound_identity(signer, dh=bad)


def _bad_sig_key(signer: Identity) -> IdentityKey:
    return bound_identity(signer, sig=mutate.bad_sig_classical_key(signer.suite, signer.public.sig))


def _swapped(signer: Identity) -> IdentityKey:
    p = signer.public
    return dataclasses.replace(p, sig=p.dh, dh=p.sig)


def _short_dh(signer: Identity) -> IdentityKey:
    return bound_identity(signer, dh=signer.public.dh[:-1])


# fmt: off
CASES: Final[tuple[FrameCase, ...]] = (
    # --- size bombs
    _c("frame-over-limit", SIZE_BOMB, "a frame one byte over max_frame_bytes",
       "proto.too_large", _frame_over_limit),
    _c("array-length-bomb", SIZE_BOMB, "msgpack array32 header claiming 2^32-1 elements",
       "proto.too_large", _array_bomb),
    _c("nesting-bomb", SIZE_BOMB, "100,000 nested one-element arrays",
       "proto.malformed", _nesting_bomb),
    _c("envelope-over-limit", SIZE_BOMB, "a Send whose body is over max_envelope_bytes",
       "send.too_large", _body_over_limit),
    _c("blob-size-bomb", SIZE_BOMB, "a blob upload grant asked for 2^63 bytes",
       "blob.too_large", _blob_bomb),
    _c("forward-layer-over-limit", SIZE_BOMB, "a routing layer over the envelope bound",
       "send.too_large", _forward(BRAVO, lambda w: os.urandom(OVER_ENVELOPE + 64 * 1024))),
    _c("publish-201-one-time-keys", SIZE_BOMB, "a prekey upload of 201 one-time keys",
       "proto.too_large", _too_many_one_time),
    # --- wrong lengths
    _c("publish-one-time-short", WRONG_LENGTH, "a one-time prekey one byte short",
       "prekeys.invalid", _publish(_alpha, _one_time(lambda k: k[:-1]))),
    _c("auth-signature-short", WRONG_LENGTH, "an Auth signature one byte short",
       "auth.failed", _victim_auth(_alpha, edit=lambda s: s[:-1])),
    _c("auth-signature-long", WRONG_LENGTH, "an Auth signature with one byte more",
       "auth.failed", _victim_auth(_alpha, edit=lambda s: s + b"\0")),
    _c("register-dh-short", WRONG_LENGTH, "an identity DH key one byte short (signed)",
       "auth.failed", _register_case(_alpha, _short_dh)),
    _c("send-token-15", WRONG_LENGTH, "a Send with a 15-byte delivery token",
       "proto.malformed", _raw_send("token", bytes(15))),
    _c("send-mailbox-17", WRONG_LENGTH, "a Send to a 17-byte mailbox id",
       "proto.too_large", _raw_send("mailbox", bytes(17))),
    _c("verifier-31", WRONG_LENGTH, "a SetDeliveryToken with a 31-byte verifier",
       "proto.malformed", _short_verifier),
    # --- swapped key types
    _c("register-keys-swapped", SWAPPED_KEY, "an identity with its signing and DH keys swapped",
       "auth.failed", _register_case(_alpha, _swapped)),
    _c("register-kem-as-dh", SWAPPED_KEY, "a hybrid KEM public key as the identity DH key",
       "auth.failed", _register_case(_alpha, _kem_as_dh)),
    _c("register-other-suite", SWAPPED_KEY, "an xwing identity registered at a cnsa2 node",
       "auth.failed", _xwing_identity),
    _c("auth-other-device-key", SWAPPED_KEY, "an Auth for one device signed by another",
       "auth.failed", _other_device_signs),
    _c("publish-hybrid-as-kem-prekey", SWAPPED_KEY, "the hybrid sealed key as a KEM prekey",
       "prekeys.invalid", _publish(_alpha, _hybrid_as_kem_prekey)),
    _c("publish-other-identity", SWAPPED_KEY, "prekeys under another device's identity",
       "auth.failed", _publish(_alpha, _senders_identity)),
    # --- stripped post-quantum halves
    _c("publish-sealed-key-mlkem-stripped", STRIPPED_PQ, "a sealed key without its ML-KEM half",
       "prekeys.invalid", _publish(_alpha, _sealed_key_stripped)),
    _c("register-mldsa-zeroed", STRIPPED_PQ, "an identity whose ML-DSA public key is zeroed",
       "auth.failed", _register_case(_alpha, _zero_identity_pq)),
    _c("register-mldsa-stripped", STRIPPED_PQ, "an identity with only the ECDSA public key",
       "auth.failed", _register_case(_alpha, _strip_identity_pq)),
    _c("xwing-register-mldsa-stripped", STRIPPED_PQ, "an identity with only the Ed25519 key",
       "auth.failed", _register_case(_xray, _strip_identity_pq)),
    _c("auth-mldsa-stripped", STRIPPED_PQ, "an Auth signature without its ML-DSA half",
       "auth.failed", _sig_edit(mutate.strip_pq_sig)),
    _c("auth-mldsa-zeroed", STRIPPED_PQ, "an Auth signature with its ML-DSA half zeroed",
       "auth.failed", _sig_edit(mutate.zero_pq_sig)),
    # --- low-order and off-curve points
    _c("register-dh-off-curve", BAD_POINT, "a P-384 identity DH key off the curve (signed)",
       "auth.failed", _register_case(_alpha, _bad_dh)),
    _c("register-ecdsa-off-curve", BAD_POINT, "an ECDSA half of the identity off the curve",
       "auth.failed", _register_case(_alpha, _bad_sig_key)),
    _c("xwing-register-dh-low-order", BAD_POINT, "an X25519 identity key of order 8 (signed)",
       "auth.failed", _register_case(_xray, _bad_dh)),
    _c("xwing-register-ed25519-small", BAD_POINT, "the Ed25519 identity point as signing half",
       "auth.failed", _register_case(_xray, _bad_sig_key)),
    _c("publish-one-time-off-curve", BAD_POINT, "a one-time P-384 prekey off the curve",
       "prekeys.invalid", _publish(_alpha, _one_time(mutate.off_curve))),
    _c("xwing-publish-signed-prekey-low-order", BAD_POINT, "a signed X25519 prekey of order 2",
       "prekeys.invalid", _publish(_xray, _signed_prekey_low_order)),
    # --- replays
    _c("auth-twice", REPLAY, "a second Auth on an authenticated connection",
       "auth.replayed", _auth_twice),
    _c("auth-spent-challenge", REPLAY, "an Auth over the challenge of an earlier connection",
       "auth.failed", _spent_challenge),
    _c("register-after-failed-auth", REPLAY, "a Register after a failed Auth spent the challenge",
       "auth.replayed", _register_after_failed_auth),
    # --- cross-protocol confusion
    _c("register-payload-as-auth", CROSS_PROTOCOL, "an AuthPayload for register presented as auth",
       "auth.failed", _victim_auth(_alpha, purpose=PURPOSE_REGISTER)),
    _c("auth-payload-as-register", CROSS_PROTOCOL, "a Register signing an auth payload",
       "auth.failed", _auth_payload_as_register),
    _c("auth-under-identity-context", CROSS_PROTOCOL, "an Auth signed under CTX_IDENTITY_DH",
       "auth.failed", _victim_auth(_alpha, context=labels.CTX_IDENTITY_DH)),
    _c("auth-for-another-server", CROSS_PROTOCOL, "an Auth payload naming another domain",
       "auth.failed", _victim_auth(_alpha, server=BRAVO)),
    _c("prekey-signature-as-auth", CROSS_PROTOCOL, "a signed prekey's signature as an Auth",
       "auth.failed", _prekey_signature_as_auth),
    _c("response-as-request", CROSS_PROTOCOL, "a Registered response sent as a request",
       "proto.unexpected", _response_as_request),
    _c("hello-as-request", CROSS_PROTOCOL, "the node's own Hello sent back",
       "proto.unexpected", _hello_as_request),
    _c("transaction-as-frame", CROSS_PROTOCOL, "a federation Transaction on the client socket",
       "proto.unexpected", _transaction_as_frame),
    _c("text-frame", CROSS_PROTOCOL, "a text WebSocket message",
       "proto.malformed", _text_frame),
    _c("envelope-forwarded-as-layer", CROSS_PROTOCOL, "a sealed envelope Forwarded as a layer",
       "proto.malformed", _forward(BRAVO, _sealed_envelope)),
    _c("forward-to-own-domain", CROSS_PROTOCOL, "a Forward to the node's own domain",
       "proto.unexpected", _forward(ALPHA, _xwing_layer)),
    _c("forward-to-a-stranger", CROSS_PROTOCOL, "a Forward to a domain that is no peer",
       "fed.policy", _forward(CHARLIE, _xwing_layer)),
    _c("forward-weaker-suite", SWAPPED_KEY, "a layer of the xwing suite for a cnsa2 peer",
       "fed.policy", _forward(BRAVO, _xwing_layer)),
)
# fmt: on
