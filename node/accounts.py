"""Enrollment codes, device authentication and delivery-token checks (pure functions).

Enrollment codes are 128 random bits, shown as base32 in groups of four separated by
dashes (``ABCD-EFGH-...``). The node stores only ``SHA-256(INVITE_CODE_HASH_INFO || code)``
of the 16 raw bytes; a code is bound to one account name and spent once (the store checks
both atomically). Input is accepted in any case and with or without dashes and spaces.

A device proves itself by signing :class:`~wire.relay.AuthPayload` (purpose, this node's
domain, this connection's challenge, its address and device) with its identity key under
``CTX_DEVICE_AUTH``. Delivery tokens and blob upload tokens are checked against stored
hashes in constant time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from typing import Final

from suites import Suite, SuiteError, labels
from suites.tokens import delivery_token_verifier as token_verifier
from wire import encode
from wire.e2e import IdentityKey, PrekeyUpload
from wire.relay import AuthPayload

CODE_BYTES: Final = 16
CODE_GROUP: Final = 4
NAME_RE: Final = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")


def format_code(raw: bytes) -> str:
    """``raw`` (16 bytes) as dash-separated base32 groups of four."""
    text = base64.b32encode(raw).decode("ascii").rstrip("=")
    return "-".join(text[i : i + CODE_GROUP] for i in range(0, len(text), CODE_GROUP))


def parse_code(text: str) -> bytes | None:
    """The 16 raw bytes of a code as a person typed it, or None if it is not one."""
    compact = "".join(text.split()).replace("-", "").upper()
    padded = compact + "=" * (-len(compact) % 8)
    try:
        raw = base64.b32decode(padded, casefold=False)
    except (binascii.Error, ValueError):
        return None
    if len(raw) != CODE_BYTES or format_code(raw).replace("-", "") != compact:
        return None
    return raw


def code_hash(raw: bytes) -> bytes:
    return hashlib.sha256(labels.INVITE_CODE_HASH_INFO + raw).digest()


def valid_name(name: str) -> bool:
    """Account names: 1..64 of lower-case letters, digits, ``.``, ``_``, ``-``."""
    return NAME_RE.fullmatch(name) is not None


def identity_ok(suite: Suite, identity: IdentityKey) -> bool:
    """The identity is of ``suite`` and its signing key signs its DH key."""
    if identity.suite != suite.suite_id:
        return False
    try:
        suite.sig.check_public(identity.sig)
        suite.dh.check_public(identity.dh)
        suite.sig.verify(identity.sig, identity.dh, identity.dh_sig, labels.CTX_IDENTITY_DH)
    except SuiteError:
        return False
    return True


def upload_keys_ok(suite: Suite, upload: PrekeyUpload) -> bool:
    """Every key of ``upload`` is a valid public key of ``suite``: its DH prekeys points of
    the group (on the curve, not of low order), its KEM prekeys ML-KEM keys, its
    sealed-sender key a hybrid KEM key with both halves. The signatures are the fetching
    client's to check (``client.identity.verify_bundle``); a key no peer could use is
    refused here, before the node serves it and spends a one-time key on it."""
    try:
        suite.dh.check_public(upload.signed_prekey.public)
        for one_time in upload.one_time:
            suite.dh.check_public(one_time.public)
        for kem_key in (upload.last_resort, *upload.kem_one_time):
            suite.ratchet_kem.check_public(kem_key.public)
        suite.kem.check_public(upload.sealed_key.public)
    except SuiteError:
        return False
    return True


def auth_signature_ok(
    suite: Suite, identity: IdentityKey, payload: AuthPayload, signature: bytes
) -> bool:
    """``signature`` is ``identity``'s signature over ``payload`` under CTX_DEVICE_AUTH."""
    try:
        suite.sig.verify(identity.sig, encode(payload), signature, labels.CTX_DEVICE_AUTH)
    except SuiteError:
        return False
    return True


def token_matches(token: bytes, verifier: bytes) -> bool:
    return hmac.compare_digest(token_verifier(token), verifier)


def blob_token_hash(token: bytes) -> bytes:
    return hashlib.sha256(labels.BLOB_UPLOAD_TOKEN_HASH_INFO + token).digest()
