"""Double Ratchet with a KEM ratchet (Signal, "The Double Ratchet Algorithm", revision 4,
sections 3 and 5; the KEM step is sealrelay's, described in docs/protocol.md).

Pure: randomness and time are injected. State lives in :class:`RatchetState`; ``encrypt`` and
``decrypt`` are the only transitions, and ``decrypt`` is transactional: a message that
fails to decrypt leaves the state exactly as it was.

KDFs (spec section 5.2, with the suite's hash):

- ``KDF_RK(rk, dh_out, kem_ss)``: HKDF(salt = rk, IKM = dh_out || kem_ss, info =
  ``RATCHET_ROOT_INFO``) split into the new root key and a chain key (HashLen each);
  ``kem_ss`` is empty in a step without a KEM ciphertext;
- ``KDF_CK(ck)``: message key HMAC(ck, 0x01), next chain key HMAC(ck, 0x02);
- message key to AEAD key and nonce: HKDF(IKM = mk, salt = 0^HashLen, info =
  ``RATCHET_MESSAGE_KEYS_INFO``), 32 + 12 bytes of AES-256-GCM key and nonce; the AEAD's
  associated data is ``AD || encode(header)``.

KEM ratchet. Each side holds one ratchet KEM key pair whose public key it has advertised
(header field ``kp``) and the peer's latest unused public key. When a side starts a new
sending chain (its DH ratchet step) and a KEM step is due (none yet, ``KEM_STEP_MESSAGES``
messages since the last one, or ``KEM_STEP_SECONDS`` elapsed), it encapsulates to the peer's
key and mixes the shared secret into that root step; every message of the chain carries the
ciphertext (``kc``), so any one of them lets the receiver follow. A peer key is used for one
encapsulation only; the side whose key was used makes a new one and advertises it (``kp``)
in its next chain. The DH ratchet alternates, so a KEM step needs the peer to have sent
since the last one: a strictly one-way stream makes its next KEM step at the peer's reply.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Final

from client.entropy import Entropy
from client.errors import DecryptionFailed, NoSession
from client.formats import RatchetHeader, RatchetMessage
from client.identity import new_dh_key, new_mlkem_key
from suites import Suite, SuiteError, labels
from suites.dh import DhPrivateKey
from suites.errors import DecryptionFailed as SuiteDecryptionFailed
from suites.kem import MlKemPrivateKey
from wire import encode

MAX_SKIP: Final = 1000
"""Messages that may be skipped within one chain and still decrypt later."""
MAX_STORED_SKIPPED: Final = 2000
"""Skipped message keys kept across chains; the oldest go first."""
KEM_STEP_MESSAGES: Final = 50
KEM_STEP_SECONDS: Final = 3600.0

_NONCE_LEN: Final = 12
_KEY_LEN: Final = 32


@dataclass(eq=False)
class RatchetState:
    """Everything a session remembers. ``skipped`` maps (ratchet key, n) to a message key."""

    suite: Suite
    ad: bytes
    rk: bytes
    dhs: DhPrivateKey
    dhr: bytes | None
    cks: bytes | None
    ckr: bytes | None
    ns: int
    nr: int
    pn: int
    kem_own: MlKemPrivateKey
    kem_peer: bytes | None
    advertise: bool
    send_kc: bytes | None
    send_kp: bytes | None
    kem_steps: int
    since_kem: int
    last_kem: float
    skipped: dict[tuple[bytes, int], bytes] = field(default_factory=dict)

    def clone(self) -> RatchetState:
        """An independent copy (tests use it to play an attacker holding stolen state)."""
        twin = copy.copy(self)
        twin.skipped = dict(self.skipped)
        return twin


def kdf_rk(suite: Suite, rk: bytes, dh_out: bytes, kem_ss: bytes) -> tuple[bytes, bytes]:
    n = suite.kdf.hash_len
    out = suite.kdf.derive(dh_out + kem_ss, rk, labels.RATCHET_ROOT_INFO, 2 * n)
    return out[:n], out[n:]


def kdf_ck(suite: Suite, ck: bytes) -> tuple[bytes, bytes]:
    """(next chain key, message key)."""
    return (
        suite.kdf.hmac(ck, labels.RATCHET_CK_CHAIN_SEED),
        suite.kdf.hmac(ck, labels.RATCHET_CK_MESSAGE_SEED),
    )


def _aead_keys(suite: Suite, mk: bytes) -> tuple[bytes, bytes]:
    out = suite.kdf.derive(
        mk, bytes(suite.kdf.hash_len), labels.RATCHET_MESSAGE_KEYS_INFO, _KEY_LEN + _NONCE_LEN
    )
    return out[:_KEY_LEN], out[_KEY_LEN:]


def _seal(state: RatchetState, mk: bytes, header: RatchetHeader, plaintext: bytes) -> bytes:
    key, nonce = _aead_keys(state.suite, mk)
    return state.suite.aead.seal(key, nonce, plaintext, state.ad + encode(header))


def _open(state: RatchetState, mk: bytes, msg: RatchetMessage) -> bytes:
    key, nonce = _aead_keys(state.suite, mk)
    try:
        return state.suite.aead.open(key, nonce, msg.c, state.ad + encode(msg.h))
    except SuiteDecryptionFailed:
        raise DecryptionFailed() from None


def init_initiator(
    suite: Suite, sk: bytes, ad: bytes, remote_ratchet_key: bytes, entropy: Entropy, now: float
) -> RatchetState:
    """Alice after PQXDH: her first sending chain from SK and Bob's signed prekey."""
    dhs = new_dh_key(suite, entropy)
    rk, cks = kdf_rk(suite, sk, suite.dh.exchange(dhs, remote_ratchet_key), b"")
    kem_own = new_mlkem_key(suite, entropy)
    return RatchetState(
        suite=suite,
        ad=ad,
        rk=rk,
        dhs=dhs,
        dhr=remote_ratchet_key,
        cks=cks,
        ckr=None,
        ns=0,
        nr=0,
        pn=0,
        kem_own=kem_own,
        kem_peer=None,
        advertise=False,
        send_kc=None,
        send_kp=suite.ratchet_kem.public_key_bytes(kem_own),
        kem_steps=0,
        since_kem=0,
        last_kem=now,
    )


def init_responder(
    suite: Suite, sk: bytes, ad: bytes, ratchet_key: DhPrivateKey, entropy: Entropy, now: float
) -> RatchetState:
    """Bob after PQXDH: his signed prekey is his first ratchet key; he sends after he
    has received."""
    return RatchetState(
        suite=suite,
        ad=ad,
        rk=sk,
        dhs=ratchet_key,
        dhr=None,
        cks=None,
        ckr=None,
        ns=0,
        nr=0,
        pn=0,
        kem_own=new_mlkem_key(suite, entropy),
        kem_peer=None,
        advertise=True,
        send_kc=None,
        send_kp=None,
        kem_steps=0,
        since_kem=0,
        last_kem=now,
    )


def encrypt(state: RatchetState, plaintext: bytes) -> RatchetMessage:
    """Encrypt the next message of the current sending chain (spec section 3.4)."""
    if state.cks is None:
        raise NoSession("this side has not received a message yet and cannot send")
    header = RatchetHeader(
        dh=state.suite.dh.public_key_bytes(state.dhs),
        pn=state.pn,
        n=state.ns,
        kc=state.send_kc,
        kp=state.send_kp,
    )
    state.cks, mk = kdf_ck(state.suite, state.cks)
    state.ns += 1
    state.since_kem += 1
    return RatchetMessage(h=header, c=_seal(state, mk, header, plaintext))


@dataclass
class _Plan:
    """The changes a decryption would make, applied only once the AEAD verified."""

    skipped: _Skipped
    rk: bytes | None = None
    ckr: bytes = b""
    nr: int = 0
    kem_used: bool = False


_Skipped = list[tuple[tuple[bytes, int], bytes]]


def _skip(suite: Suite, dh: bytes, ck: bytes, start: int, until: int) -> tuple[bytes, _Skipped]:
    """Message keys ``start..until-1`` of a chain, and the chain key after them."""
    if until - start > MAX_SKIP:
        raise DecryptionFailed()
    keys: _Skipped = []
    for n in range(start, until):
        ck, mk = kdf_ck(suite, ck)
        keys.append(((dh, n), mk))
    return ck, keys


def _plan_same_chain(state: RatchetState, header: RatchetHeader) -> tuple[_Plan, bytes]:
    if state.ckr is None or header.n < state.nr:
        raise DecryptionFailed()
    ck, keys = _skip(state.suite, header.dh, state.ckr, state.nr, header.n)
    ck, mk = kdf_ck(state.suite, ck)
    return _Plan(skipped=keys, ckr=ck, nr=header.n + 1), mk


def _plan_new_chain(state: RatchetState, header: RatchetHeader) -> tuple[_Plan, bytes]:
    suite = state.suite
    keys: _Skipped = []
    if state.ckr is not None and state.dhr is not None:
        _, keys = _skip(suite, state.dhr, state.ckr, state.nr, max(header.pn, state.nr))
    kem_ss = b""
    try:
        if header.kc is not None:
            kem_ss = suite.ratchet_kem.decapsulate(state.kem_own, header.kc)
        dh_out = suite.dh.exchange(state.dhs, header.dh)
    except SuiteError:
        raise DecryptionFailed() from None
    rk, ckr = kdf_rk(suite, state.rk, dh_out, kem_ss)
    ckr, new_keys = _skip(suite, header.dh, ckr, 0, header.n)
    ckr, mk = kdf_ck(suite, ckr)
    plan = _Plan(
        skipped=keys + new_keys, rk=rk, ckr=ckr, nr=header.n + 1, kem_used=header.kc is not None
    )
    return plan, mk


def decrypt(state: RatchetState, msg: RatchetMessage, entropy: Entropy, now: float) -> bytes:
    """Decrypt a message (spec section 3.5); :class:`DecryptionFailed` leaves state untouched.

    Replays, messages beyond the skip window and any tampering all fail the same way.
    """
    header = msg.h
    stored = state.skipped.get((header.dh, header.n))
    if stored is not None:
        plaintext = _open(state, stored, msg)
        del state.skipped[(header.dh, header.n)]
        state.since_kem += 1
        return plaintext
    if header.dh == state.dhr:
        plan, mk = _plan_same_chain(state, header)
    else:
        plan, mk = _plan_new_chain(state, header)
    plaintext = _open(state, mk, msg)
    _commit(state, header, plan, entropy, now)
    return plaintext


def _commit(
    state: RatchetState, header: RatchetHeader, plan: _Plan, entropy: Entropy, now: float
) -> None:
    state.skipped.update(plan.skipped)
    while len(state.skipped) > MAX_STORED_SKIPPED:
        del state.skipped[next(iter(state.skipped))]
    state.since_kem += 1
    if plan.rk is not None:
        state.pn, state.ns, state.dhr = state.ns, 0, header.dh
        state.rk = plan.rk
        if plan.kem_used:
            _kem_key_used(state, entropy, now)
        if header.kp is not None:
            state.kem_peer = header.kp
        _start_sending_chain(state, entropy, now)
    state.ckr, state.nr = plan.ckr, plan.nr


def _kem_key_used(state: RatchetState, entropy: Entropy, now: float) -> None:
    """The peer encapsulated to our key: replace it, advertise the new one."""
    state.kem_own = new_mlkem_key(state.suite, entropy)
    state.advertise = True
    state.kem_steps += 1
    state.since_kem = 0
    state.last_kem = now


def _kem_step_due(state: RatchetState, now: float) -> bool:
    if state.kem_peer is None:
        return False
    return (
        state.kem_steps == 0
        or state.since_kem >= KEM_STEP_MESSAGES
        or now - state.last_kem >= KEM_STEP_SECONDS
    )


def _start_sending_chain(state: RatchetState, entropy: Entropy, now: float) -> None:
    """The sending half of a DH ratchet step, with a KEM step when one is due."""
    suite = state.suite
    if state.dhr is None:
        raise NoSession("no peer ratchet key yet")
    state.dhs = new_dh_key(suite, entropy)
    kem_ss = b""
    state.send_kc = None
    if state.kem_peer is not None and _kem_step_due(state, now):
        state.send_kc, kem_ss = entropy.mlkem_encapsulate(suite.ratchet_kem, state.kem_peer)
        state.kem_peer = None
        state.kem_steps += 1
        state.since_kem = 0
        state.last_kem = now
    state.send_kp = suite.ratchet_kem.public_key_bytes(state.kem_own) if state.advertise else None
    state.advertise = False
    state.rk, state.cks = kdf_rk(suite, state.rk, suite.dh.exchange(state.dhs, state.dhr), kem_ss)
