"""Every domain-separation label of sealrelay, in one place.

A signature made for one purpose must never verify for another, and no two KDF calls may
share an input domain. So every signing context, KDF ``info`` string and version byte used
anywhere in the project is a named constant here; code never writes such a literal inline.

Suite-specific labels that come from external specifications (X-Wing's combiner label,
HPKE's ``"HPKE-v1"``) are kept here as well, with their source.
"""

from __future__ import annotations

from typing import Final

# --- Suite identifiers (carried in every key and message) --------------------------------
SUITE_CNSA2: Final = "cnsa2"
SUITE_XWING: Final = "xwing"
SUITE_ID_CNSA2: Final = 1
SUITE_ID_XWING: Final = 2

# --- RFC 9180 (HPKE) -----------------------------------------------------------------------
HPKE_VERSION_LABEL: Final = b"HPKE-v1"
HPKE_KEM_PREFIX: Final = b"KEM"
HPKE_SUITE_PREFIX: Final = b"HPKE"
HPKE_LABEL_EAE_PRK: Final = b"eae_prk"
HPKE_LABEL_SHARED_SECRET: Final = b"shared_secret"
HPKE_LABEL_DKP_PRK: Final = b"dkp_prk"
HPKE_LABEL_CANDIDATE: Final = b"candidate"
HPKE_LABEL_SK: Final = b"sk"
HPKE_LABEL_PSK_ID_HASH: Final = b"psk_id_hash"
HPKE_LABEL_INFO_HASH: Final = b"info_hash"
HPKE_LABEL_SECRET: Final = b"secret"
HPKE_LABEL_KEY: Final = b"key"
HPKE_LABEL_BASE_NONCE: Final = b"base_nonce"
HPKE_LABEL_EXP: Final = b"exp"
HPKE_LABEL_SEC: Final = b"sec"

# --- X-Wing (draft-connolly-cfrg-xwing-kem, section "Combiner") ---------------------------
XWING_COMBINER_LABEL: Final = b"\\.//^\\"

# --- draft-ietf-hpke-pq (hybrid and ML-KEM DeriveKeyPair) and draft-ietf-hpke-hpke ---------
# Single-stage KDF ``LabeledDerive`` label for DeriveKeyPair of the PQ and PQ/T hybrid KEMs.
HPKE_LABEL_DERIVE_KEY_PAIR: Final = b"DeriveKeyPair"

# --- draft-irtf-cfrg-concrete-hybrid-kems, "MLKEM1024-P384" (CG framework) ----------------
# The C2PRI combiner label of MLKEM1024-P384 (HPKE KEM 0x0051), hex 4d4c4b454d313032342d50333834.
MLKEM1024_P384_COMBINER_LABEL: Final = b"MLKEM1024-P384"

# --- RFC 9605 (SFrame), section 4.4.2 -------------------------------------------------------
SFRAME_KEY_LABEL: Final = b"SFrame 1.0 Secret key "
SFRAME_SALT_LABEL: Final = b"SFrame 1.0 Secret salt "

# --- Hybrid signatures (signing contexts prefix) -------------------------------------------
# Composite-signature message prefix, after draft-ietf-lamps-pq-composite-sigs: the ASCII
# string "CompositeAlgorithmSignatures2025" as the fixed prefix, then a per-suite label that
# names both component algorithms so one half cannot be lifted into another construction.
SIG_COMPOSITE_PREFIX: Final = b"CompositeAlgorithmSignatures2025"
SIG_LABEL_CNSA2: Final = b"sealrelay-sig-v1/MLDSA87-ECDSA-P384-SHA384"
SIG_LABEL_XWING: Final = b"sealrelay-sig-v1/MLDSA65-Ed25519-SHA256"

# --- Signing contexts (one per purpose; the sig API requires one) --------------------------
CTX_TEST: Final = b"sealrelay/test"

# --- Identity and prekeys (client/identity.py): signing contexts ---------------------------
CTX_IDENTITY_DH: Final = b"sealrelay/v1/identity-dh-key"
CTX_SIGNED_PREKEY: Final = b"sealrelay/v1/signed-dh-prekey"
CTX_KEM_PREKEY: Final = b"sealrelay/v1/one-time-kem-prekey"
CTX_LAST_RESORT_KEM_PREKEY: Final = b"sealrelay/v1/last-resort-kem-prekey"
CTX_SEALED_SENDER_KEY: Final = b"sealrelay/v1/sealed-sender-key"
CTX_SENDER_CERTIFICATE: Final = b"sealrelay/v1/sender-certificate"
CTX_DEVICE_AUTH: Final = b"sealrelay/v1/device-auth-challenge"
CTX_GROUP_CHANGE: Final = b"sealrelay/v1/group-change"
CTX_SENDER_KEY_MESSAGE: Final = b"sealrelay/v1/sender-key-message"
CTX_SERVER_KEY_DOCUMENT: Final = b"sealrelay/v1/server-key-document"
CTX_FEDERATION_REQUEST: Final = b"sealrelay/v1/federation-request"

# --- PQXDH (Signal PQXDH specification, section 2.2 / 3.3) ---------------------------------
PQXDH_INFO: Final = b"sealrelay-pqxdh-v1"
# "F": a run of 0xFF bytes as long as the curve's scalar encoding, prepended to the KDF input
# so that it never collides with an XEdDSA/ECDSA-style first block (PQXDH section 2.2).
PQXDH_F_BYTE: Final = 0xFF

# --- Double Ratchet (Signal Double Ratchet specification, section 5.2) ----------------------
RATCHET_ROOT_INFO: Final = b"sealrelay-ratchet-root-v1"
RATCHET_MESSAGE_KEYS_INFO: Final = b"sealrelay-ratchet-message-keys-v1"
RATCHET_CK_MESSAGE_SEED: Final = b"\x01"
RATCHET_CK_CHAIN_SEED: Final = b"\x02"

# --- Sealed sender ---------------------------------------------------------------------------
SEALED_SENDER_INFO: Final = b"sealrelay-sealed-sender-v1"

# --- Delivery tokens and safety numbers ----------------------------------------------------
DELIVERY_TOKEN_HASH_INFO: Final = b"sealrelay-delivery-token-v1"
# Node-side secrets kept only as SHA-256(label || secret) (node/accounts.py).
INVITE_CODE_HASH_INFO: Final = b"sealrelay-invite-code-v1"
BLOB_UPLOAD_TOKEN_HASH_INFO: Final = b"sealrelay-blob-upload-token-v1"
SAFETY_NUMBER_VERSION: Final = b"\x00\x01"
SAFETY_NUMBER_ITERATIONS: Final = 5200

# --- Client state at rest ------------------------------------------------------------------
STORE_KEY_INFO: Final = b"sealrelay-client-store-v1"
STORE_CHECK_RECORD: Final = b"sealrelay-client-store-check"

# --- Sealed sender: HPKE associated data prefix and payload kinds -----------------------------
SEALED_SENDER_AAD: Final = b"sealrelay-sealed-envelope-v1"
PAYLOAD_PREKEY_MESSAGE: Final = 1
PAYLOAD_RATCHET_MESSAGE: Final = 2

# --- Client state at rest: file format (client/store/sqlite.py) ------------------------------
# Version of the encrypted SQLite layout; a file with another version is refused.
STORE_FORMAT_VERSION: Final = 1
# The KDF named in the store's clear ``meta`` table.
STORE_KDF_SCRYPT: Final = "scrypt"

# --- Attachments (client/attachments.py) ------------------------------------------------------
# HKDF info deriving the chunk key and base nonce from an attachment's 32-byte key, and the
# prefix of every chunk's associated data (then u64 index and a final-chunk flag byte).
ATTACHMENT_KEYS_INFO: Final = b"sealrelay-attachment-keys-v1"
ATTACHMENT_CHUNK_AAD: Final = b"sealrelay-attachment-chunk-v1"

# --- federation (DESIGN section 6) -------------------------------------------------------
CTX_ROOT_CERTIFICATION: Final = b"sealrelay/v1/root-certification"
"""SLH-DSA context of an agency root's certification of a server verify key."""
CTX_PEER_ROOTS: Final = b"sealrelay/v1/peer-roots"
"""SLH-DSA context of an agency root's statement naming the peer domains' root
fingerprints its own clients may trust (``wire.server.PeerRootsStatement``)."""
CTX_NOTARY: Final = b"sealrelay/v1/notary-statement"
"""Signature context of a notary's statement about another domain's key document."""
CTX_PEER_LINK: Final = b"sealrelay/v1/peer-link-proof"
"""Signing context of a node's proof, on a node-to-node QUIC link, that it holds its
domain's server key (``trust.peerlink``, ``wire.server.LinkProofBody``)."""
ROUTING_LAYER_INFO: Final = b"sealrelay-routing-layer-v1"
"""HPKE ``info`` of the routing layer; the AAD is this label plus the destination domain."""
ROOT_KEY_ALGORITHM: Final = "slh-dsa-sha2-256s"
"""The agency root key's algorithm (FIPS 205 SLH-DSA-SHA2-256s, from pqcrypto)."""
FINGERPRINT_PREFIX: Final = "sha256:"
"""A pinned key's fingerprint: this prefix and the hex SHA-256 of its encoded public key."""

# --- Groups: signed administration and sender keys (client/groups) ---------------------------
# Hash of a group change's signed body (its id) and of a group state (what a change names as
# its parent): HashSuite(label || encoding), so neither collides with any other hash input.
GROUP_CHANGE_HASH_INFO: Final = b"sealrelay-group-change-v1"
GROUP_STATE_HASH_INFO: Final = b"sealrelay-group-state-v1"
# A member device's key as the group state holds it: Hash(label || identity signing key).
GROUP_DEVICE_KEY_INFO: Final = b"sealrelay-group-device-key-v1"
# Sender-key chain step, as the Double Ratchet's KDF_CK but with its own inputs:
# message key = HMAC(ck, MESSAGE_SEED), next chain key = HMAC(ck, CHAIN_SEED).
SENDER_KEY_MESSAGE_SEED: Final = b"sealrelay-sender-key-message-key-v1"
SENDER_KEY_CHAIN_SEED: Final = b"sealrelay-sender-key-chain-key-v1"
# HKDF info turning a sender-key message key into the AES-256-GCM key and nonce (32 + 12).
SENDER_KEY_AEAD_INFO: Final = b"sealrelay-sender-key-aead-v1"
# AAD of the group transport wrap (client/groupnet.py): AEAD(transport key, nonce,
# SenderKeyMessage, aad = this label), so a wrapped group message is never taken for any other
# AEAD output under the same key.
GROUP_TRANSPORT_AAD: Final = b"sealrelay-group-transport-v1"

# --- Calls: media keys (client/calls/keys.py; DESIGN section 9) ------------------------------
# A 1:1 call's random secret is expanded per direction into a chain of epoch secrets:
# chain_0 = HKDF-SHA512(call secret, info = CALL_DIRECTION_INFO || direction byte),
# chain_n+1 = HKDF-SHA512(chain_n, info = CALL_NEXT_EPOCH_INFO), and each epoch's SFrame base
# key (RFC 9605 section 4.4.2 ``base_key``) = HKDF-SHA512(chain_n, info = CALL_SFRAME_BASE_INFO).
CALL_DIRECTION_INFO: Final = b"sealrelay-call-direction-v1"
CALL_NEXT_EPOCH_INFO: Final = b"sealrelay-call-next-epoch-v1"
CALL_SFRAME_BASE_INFO: Final = b"sealrelay-call-sframe-base-key-v1"

# --- Meetings: media keys and sender authentication (client/meetings/; DESIGN section 9) ----
# epoch_n+1 = HKDF-SHA512(epoch_n, info = MEETING_RATCHET_INFO || meeting id) on a join; each
# sender's SFrame base key = HKDF-SHA512(epoch_n, info = MEETING_SENDER_INFO || epoch u32 ||
# pid u32) (RFC 9605 section 4.4.2 ``base_key``); a participant's key fingerprint in a roster
# = SHA-384(MEETING_KEY_FP_INFO || identity signing key).
MEETING_RATCHET_INFO: Final = b"sealrelay-meeting-ratchet-v1"
MEETING_SENDER_INFO: Final = b"sealrelay-meeting-sender-base-key-v1"
MEETING_KEY_FP_INFO: Final = b"sealrelay-meeting-key-fingerprint-v1"
# One frame's digest in a signed frame list = SHA-384(MEETING_FRAME_DIGEST_INFO || SFrame
# ciphertext), truncated to 16 bytes.
MEETING_FRAME_DIGEST_INFO: Final = b"sealrelay-meeting-frame-digest-v1"
# A roster's hash (in the pairwise MeetingEpochKey) = SHA-384(MEETING_ROSTER_HASH_INFO ||
# encoded roster body); the key that seals an epoch's roster for its one shared upload =
# HKDF-SHA512(epoch secret, info = MEETING_ROSTER_KEY_INFO || epoch u32), 32 bytes, for
# AES-256-GCM with MEETING_ROSTER_AAD.
MEETING_ROSTER_HASH_INFO: Final = b"sealrelay-meeting-roster-hash-v1"
MEETING_ROSTER_KEY_INFO: Final = b"sealrelay-meeting-roster-key-v1"
MEETING_ROSTER_AAD: Final = b"sealrelay/v1/meeting-sealed-roster"
CTX_MEETING_ROSTER: Final = b"sealrelay/v1/meeting-roster"
CTX_MEETING_FRAMES: Final = b"sealrelay/v1/meeting-frames"
