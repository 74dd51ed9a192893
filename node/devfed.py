"""A local federation on loopback, for people to try and for tests (``sealrelay dev up``).

:func:`prepare` lays out, under one directory, for each domain: a data directory with
server keys certified by that domain's own (development) root key and that root's
peer-roots statement naming every other domain's root (what the domain's clients trust,
``node.peerroots``), the root key itself in ``<domain>-root/``, and ``<domain>.toml``
whose ``[peers]`` tables pin every other domain's root fingerprint and point at its
loopback port. Running the nodes is then
``sealrelay node serve --config <domain>.toml ...`` each. A second call reuses what exists
(keys and roots are never replaced), so a restarted federation keeps its identities.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from node.errors import ConfigError
from node.keys import KEY_FILE, load_or_create, replace_key_file
from node.peerroots import (
    DEFAULT_STATEMENT_DAYS,
    PEER_ROOTS_FILE,
    load_statement,
    make_statement,
    write_statement,
)
from node.rootkeys import DEFAULT_CERT_DAYS, ROOT_SECRET_FILE, certify, create_root, load_root
from suites import rootsig
from wire.server import PeerRootsStatement

DEV_DOMAINS: Final = ("alpha.localhost", "bravo.localhost", "charlie.localhost")
LOOPBACK: Final = "127.0.0.1"


@dataclass(frozen=True)
class DomainSetup:
    domain: str
    port: int
    data_dir: Path
    config: Path
    root_fingerprint: str

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"


def prepare(
    base: Path,
    domains: tuple[str, ...] | list[str],
    ports: list[int],
    *,
    suite: str = "cnsa2",
    extra: str = "",
) -> list[DomainSetup]:
    """Keys, roots and configurations for ``domains`` on ``ports`` (same order).

    ``extra`` is appended to every configuration's top-level keys (tests use it for
    shorter retry caps and the like)."""
    base.mkdir(parents=True, exist_ok=True, mode=0o700)
    setups = [
        _domain(base, domain, port, suite) for domain, port in zip(domains, ports, strict=True)
    ]
    for setup in setups:
        peers = [other for other in setups if other.domain != setup.domain]
        setup.config.write_text(_config_text(setup, peers, suite, extra))
        _peer_roots(base, setup, peers)
    return setups


def _peer_roots(base: Path, setup: DomainSetup, peers: list[DomainSetup]) -> None:
    """Sign the domain's peer-roots statement with its root, naming every peer's root,
    unless the one in place already does and is in the first half of its life."""
    wanted = {peer.domain: (peer.root_fingerprint,) for peer in peers}
    now = int(time.time() * 1000)
    with contextlib.suppress(ConfigError):
        held = load_statement(setup.data_dir / PEER_ROOTS_FILE)
        if held is not None and _current(held, setup, wanted, now):
            return
    root = load_root(base / f"{setup.domain}-root")
    statement = make_statement(root, setup.domain, wanted, now, DEFAULT_STATEMENT_DAYS)
    write_statement(setup.data_dir, statement)


def _current(
    held: PeerRootsStatement, setup: DomainSetup, wanted: dict[str, tuple[str]], now: int
) -> bool:
    body = held.body
    listed = {peer.domain: peer.roots for peer in body.peers}
    return (
        rootsig.fingerprint(held.root_public) == setup.root_fingerprint
        and listed == wanted
        and now < body.issued + (body.valid_until - body.issued) // 2
    )


def _domain(base: Path, domain: str, port: int, suite: str) -> DomainSetup:
    data_dir = base / domain
    root_dir = base / f"{domain}-root"
    first = not (data_dir / KEY_FILE).exists()
    keys = load_or_create(data_dir, suite)
    root = load_root(root_dir) if (root_dir / ROOT_SECRET_FILE).exists() else create_root(root_dir)
    if first or not keys.certifications:
        now = int(time.time() * 1000)
        replace_key_file(data_dir, certify(keys, domain, root, now, DEFAULT_CERT_DAYS))
    return DomainSetup(
        domain, port, data_dir, base / f"{domain}.toml", rootsig.fingerprint(root[0])
    )


def _config_text(setup: DomainSetup, peers: list[DomainSetup], suite: str, extra: str) -> str:
    lines = [
        f"domain = {json.dumps(setup.domain)}",
        f"suite = {json.dumps(suite)}",
        'store = "sqlite"',
        f"public_url = {json.dumps(setup.url)}",
        extra,
        "",
    ]
    for peer in peers:
        lines += [
            f"[peers.{json.dumps(peer.domain)}]",
            'trust = "pinned"',
            f"pins = [{json.dumps(peer.root_fingerprint)}]",
            f"endpoints = [{json.dumps(peer.url)}]",
            f"min_suite = {json.dumps(suite)}",
            "",
        ]
    return "\n".join(lines)
