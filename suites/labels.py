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
