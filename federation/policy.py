"""Per-peer federation policy (DESIGN section 6), from the node's ``[peers."DOMAIN"]`` tables.

    trust        "pinned" (default) or "tofu"
    pins         fingerprints ("sha256:<hex>") of the agency root key or of server verify
                 keys; required for "pinned"
    endpoints    base URLs of the peer's nodes, tried in turn (default: https://DOMAIN)
    allow        false denies the domain outright (default true)
    min_suite    the weakest suite accepted: "xwing" accepts both, "cnsa2" only cnsa2
    rate_per_s   envelopes per second accepted from the peer (token bucket, burst 2x)
    max_envelope_bytes  largest routing layer accepted from the peer
    notaries     for "tofu": domains asked to confirm a first-seen document

A domain without a table is unknown and refused, unless ``open_federation`` is set, when
it is treated as ``trust = "tofu"`` with the defaults.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from federation.errors import PolicyRefused
from suites import labels
from trust.limits import MAX_LAYER_BYTES

TRUST_MODES: Final = ("pinned", "tofu")
SUITE_STRENGTH: Final = {"xwing": 1, "cnsa2": 2}
SUITE_IDS: Final = {
    labels.SUITE_ID_CNSA2: labels.SUITE_CNSA2,
    labels.SUITE_ID_XWING: labels.SUITE_XWING,
}
_PIN: Final = re.compile(r"^sha256:[0-9a-f]{64}$")
_KEYS: Final = frozenset(
    (
        "trust",
        "pins",
        "endpoints",
        "allow",
        "min_suite",
        "rate_per_s",
        "max_envelope_bytes",
        "notaries",
    )
)


@dataclass(frozen=True)
class PeerPolicy:
    domain: str
    trust: str = "pinned"
    pins: tuple[str, ...] = ()
    endpoints: tuple[str, ...] = ()
    allow: bool = True
    min_suite: str = "cnsa2"
    rate_per_s: float = 5000.0
    max_envelope_bytes: int = MAX_LAYER_BYTES
    notaries: tuple[str, ...] = field(default=())

    def urls(self) -> tuple[str, ...]:
        return self.endpoints or (f"https://{self.domain}",)

    def check_suite(self, suite_id: int) -> None:
        name = SUITE_IDS.get(suite_id, "")
        if SUITE_STRENGTH.get(name, 0) < SUITE_STRENGTH[self.min_suite]:
            below = f"suite {name or suite_id} is below {self.min_suite}"
            raise PolicyRefused(f"{self.domain}: {below}")


def parse_peers(tables: Mapping[str, Any]) -> dict[str, PeerPolicy]:
    """``{domain: PeerPolicy}`` from the TOML ``peers`` table; ``ValueError`` naming the
    domain and key for anything invalid."""
    peers: dict[str, PeerPolicy] = {}
    for domain, table in tables.items():
        if not isinstance(table, Mapping):
            raise ValueError(f"peers.{domain}: expected a table")
        unknown = set(table) - _KEYS
        if unknown:
            raise ValueError(f"peers.{domain}: unknown key {sorted(unknown)[0]!r}")
        peers[domain.lower()] = _peer(domain.lower(), table)
    return peers


def _peer(domain: str, table: Mapping[str, Any]) -> PeerPolicy:
    policy = PeerPolicy(
        domain=domain,
        trust=_typed(domain, table, "trust", str, "pinned"),
        pins=tuple(_strings(domain, table, "pins")),
        endpoints=tuple(url.rstrip("/") for url in _strings(domain, table, "endpoints")),
        allow=_typed(domain, table, "allow", bool, True),
        min_suite=_typed(domain, table, "min_suite", str, "cnsa2"),
        rate_per_s=float(_typed(domain, table, "rate_per_s", (int, float), 5000.0)),
        max_envelope_bytes=_typed(domain, table, "max_envelope_bytes", int, MAX_LAYER_BYTES),
        notaries=tuple(_strings(domain, table, "notaries")),
    )
    if policy.trust not in TRUST_MODES:
        raise ValueError(f"peers.{domain}.trust: expected pinned or tofu")
    if policy.min_suite not in SUITE_STRENGTH:
        raise ValueError(f"peers.{domain}.min_suite: expected cnsa2 or xwing")
    if policy.trust == "pinned" and policy.allow and not policy.pins:
        raise ValueError(f"peers.{domain}: trust = 'pinned' needs pins")
    if any(not _PIN.match(pin) for pin in policy.pins):
        raise ValueError(f"peers.{domain}.pins: each pin is 'sha256:' and 64 lowercase hex")
    if policy.rate_per_s <= 0 or policy.max_envelope_bytes < 1024:
        raise ValueError(f"peers.{domain}: rate_per_s and max_envelope_bytes must be positive")
    return policy


def _typed(domain: str, table: Mapping[str, Any], key: str, kind: Any, default: Any) -> Any:
    value = table.get(key, default)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ValueError(f"peers.{domain}.{key}: wrong type")
    return value


def _strings(domain: str, table: Mapping[str, Any], key: str) -> list[str]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"peers.{domain}.{key}: expected a list of strings")
    return value
