"""Helpers for client-core tests that look inside sealed envelopes and ratchet states.

A test that plays an attacker who has stolen a device's keys (or a peer who builds its own
envelopes) opens an envelope with the recipient's sealed-sender key and seals a modified
payload again. Nothing here bypasses a check of the code under test: a resealed envelope
goes through ``Device.decrypt`` like any other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from client.formats import PrekeyMessage, RatchetMessage
from client.ratchet import RatchetState
from client.sealed import seal, unseal
from client.session import Device
from suites import labels
from wire import decode, encode
from wire.e2e import SealedContent, SenderDescriptor

SUITES = ["xwing", "cnsa2"]


@dataclass(frozen=True)
class Opened:
    """An envelope opened with the recipient's sealed-sender key."""

    content: SealedContent
    message: RatchetMessage
    prekey: PrekeyMessage | None


def open_envelope(recipient: Device, body: bytes) -> Opened:
    """The sealed content and the ratchet message inside ``body`` (sent to ``recipient``)."""
    content = unseal(recipient.suite, recipient._sealed_key, body)
    if content.k == labels.PAYLOAD_PREKEY_MESSAGE:
        pm = decode(content.p, PrekeyMessage)
        return Opened(content, pm.m, pm)
    assert content.k == labels.PAYLOAD_RATCHET_MESSAGE
    return Opened(content, decode(content.p, RatchetMessage), None)


def reseal(
    recipient: Device,
    payload: RatchetMessage | PrekeyMessage,
    sender: SenderDescriptor,
) -> bytes:
    """A well-formed envelope body to ``recipient`` carrying ``payload`` from ``sender``
    (anyone can make one: the sealed-sender key is public)."""
    kind = (
        labels.PAYLOAD_PREKEY_MESSAGE
        if isinstance(payload, PrekeyMessage)
        else labels.PAYLOAD_RATCHET_MESSAGE
    )
    return seal(recipient.suite, recipient.pool.sealed_key_public(), sender, kind, encode(payload))


def snapshot(state: RatchetState) -> tuple[Any, ...]:
    """Every field of a ratchet state, comparable with ``==`` (private keys by public key)."""
    suite = state.suite
    return (
        state.ad,
        state.rk,
        suite.dh.public_key_bytes(state.dhs),
        state.dhr,
        state.cks,
        state.ckr,
        state.ns,
        state.nr,
        state.pn,
        suite.ratchet_kem.public_key_bytes(state.kem_own),
        state.kem_peer,
        state.advertise,
        state.send_kc,
        state.send_kp,
        state.kem_steps,
        state.since_kem,
        state.last_kem,
        dict(state.skipped),
    )


def flip(data: bytes, index: int, mask: int = 0x01) -> bytes:
    """``data`` with one byte changed (``index`` may be negative)."""
    buf = bytearray(data)
    buf[index] ^= mask
    return bytes(buf)
