"""The two cipher suites of DESIGN section 3, each as one :class:`Suite` object.

=============  ==================================  ==================================
part           ``cnsa2`` (default)                 ``xwing``
=============  ==================================  ==================================
kem / HPKE     MLKEM1024-P384 (HPKE KEM 0x0051)    X-Wing (HPKE KEM 0x647a)
dh             P-384                               X25519
ratchet_kem    ML-KEM-1024                         ML-KEM-768
sig            ML-DSA-87 + ECDSA-P384-SHA384       ML-DSA-65 + Ed25519
aead           AES-256-GCM                         AES-256-GCM
kdf            HKDF-SHA-384                        HKDF-SHA-256
=============  ==================================  ==================================
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from suites import labels, padding
from suites.aead import Aead
from suites.dh import Dh
from suites.errors import UnknownSuite
from suites.hpke import Hpke
from suites.kdf import Kdf
from suites.kem import HybridKem, MlKem
from suites.sig import HybridSig


@dataclass(frozen=True, eq=False)
class Suite:
    """Every primitive a protocol needs, for one suite."""

    name: str
    suite_id: int
    kem: HybridKem
    hpke: Hpke
    sig: HybridSig
    dh: Dh
    ratchet_kem: MlKem
    kdf: Kdf
    aead: Aead
    buckets: tuple[int, ...] = field(default=padding.BUCKETS)

    def pad(self, data: bytes) -> bytes:
        """``data`` padded to its bucket (:mod:`suites.padding`)."""
        return padding.pad(data)

    def unpad(self, data: bytes) -> bytes:
        return padding.unpad(data)

    def __repr__(self) -> str:
        return f"Suite({self.name!r})"


def _build(name: str) -> Suite:
    if name == labels.SUITE_CNSA2:
        kem = HybridKem(name)
        return Suite(
            name=name,
            suite_id=labels.SUITE_ID_CNSA2,
            kem=kem,
            hpke=Hpke.for_suite(name, kem),
            sig=HybridSig(name),
            dh=Dh(name, "p384"),
            ratchet_kem=MlKem(name, 1024),
            kdf=Kdf("sha384"),
            aead=Aead("aes-256-gcm"),
        )
    kem = HybridKem(name)
    return Suite(
        name=name,
        suite_id=labels.SUITE_ID_XWING,
        kem=kem,
        hpke=Hpke.for_suite(name, kem),
        sig=HybridSig(name),
        dh=Dh(name, "x25519"),
        ratchet_kem=MlKem(name, 768),
        kdf=Kdf("sha256"),
        aead=Aead("aes-256-gcm"),
    )


DEFAULT_SUITE: Final = labels.SUITE_CNSA2
SUITE_NAMES: Final = (labels.SUITE_CNSA2, labels.SUITE_XWING)
_SUITES: dict[str, Suite] = {}


def get_suite(name: str = DEFAULT_SUITE) -> Suite:
    """The suite called ``name`` (``"cnsa2"`` or ``"xwing"``); :class:`UnknownSuite` otherwise."""
    if name not in SUITE_NAMES:
        raise UnknownSuite(f"unknown suite {name!r}")
    suite = _SUITES.get(name)
    if suite is None:
        suite = _SUITES[name] = _build(name)
    return suite


def get_suite_by_id(suite_id: int) -> Suite:
    """The suite whose wire id is ``suite_id``."""
    for name in SUITE_NAMES:
        suite = get_suite(name)
        if suite.suite_id == suite_id:
            return suite
    raise UnknownSuite(f"unknown suite id {suite_id!r}")
