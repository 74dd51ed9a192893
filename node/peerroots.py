"""The agency root's peer-roots statement (``wire.server.PeerRootsStatement``): the peer
domains, and their roots' fingerprints, that the agency vouches for to its own clients
(``client/domaintrust.py``; docs/federation.md, "Setting up pinned federation").

    data = make_statement(root, domain, peers, now_ms, days)   signed with the offline root
    write_statement(data_dir, data)       DATA/peer-roots.bin, replaced atomically
    await read_statement(data_dir)        what the node serves (``GetPeerRoots``), or None
    parse_peer("DOMAIN=sha256:<hex>")     a ``--peer`` argument

The node only stores and serves the statement; its online keys cannot make one, so a
compromised node cannot add a domain or a root to what its clients trust. It reads the
file on every request (clients ask rarely), so a new statement needs no restart.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final

import trio

from node.errors import ConfigError
from node.keys import ServerKeys
from suites import labels, rootsig
from trust.limits import MAX_STATEMENT
from wire import WireError, decode, encode
from wire.server import MAX_PEER_ROOTS, PeerRoot, PeerRootsBody, PeerRootsStatement

PEER_ROOTS_FILE: Final = "peer-roots.bin"
FILE_MODE: Final = 0o600
DEFAULT_STATEMENT_DAYS: Final = 365
_FINGERPRINT = re.compile(re.escape(labels.FINGERPRINT_PREFIX) + "[0-9a-f]{64}")

log = logging.getLogger("sealrelay.node.peerroots")


def parse_peer(text: str) -> tuple[str, str]:
    """``DOMAIN=FINGERPRINT`` as ``(domain, fingerprint)``; :class:`ConfigError` if not."""
    domain, sep, fingerprint = text.partition("=")
    domain, fingerprint = domain.strip().lower(), fingerprint.strip().lower()
    if not sep or not domain or not _FINGERPRINT.fullmatch(fingerprint):
        raise ConfigError(f"--peer {text!r}: give DOMAIN={labels.FINGERPRINT_PREFIX}<64 hex>")
    return domain, fingerprint


def make_statement(
    root: tuple[bytes, bytes],
    domain: str,
    peers: Mapping[str, Sequence[str]],
    now_ms: int,
    days: int,
) -> bytes:
    """The encoded statement, signed by ``root`` (public, secret), that ``domain``'s
    clients may trust ``peers`` (domain to root fingerprints) for ``days``."""
    if days < 1:
        raise ConfigError("--days must be at least 1")
    domain = domain.lower()
    if domain in peers:
        raise ConfigError(f"{domain} is the home domain, not a peer")
    if any(not 1 <= len(roots) <= MAX_PEER_ROOTS for roots in peers.values()):
        raise ConfigError(f"each peer needs 1 to {MAX_PEER_ROOTS} root fingerprints")
    body = PeerRootsBody(
        server=domain,
        peers=tuple(PeerRoot(d, tuple(sorted(set(peers[d])))) for d in sorted(peers)),
        issued=now_ms,
        valid_until=now_ms + days * 86_400_000,
    )
    public, secret = root
    signature = rootsig.sign(secret, encode(body), labels.CTX_PEER_ROOTS)
    statement = PeerRootsStatement(body, rootsig.ALGORITHM, public, signature)
    return encode(statement)


def check_root_certifies(keys: ServerKeys, domain: str, root_public: bytes) -> None:
    """:class:`ConfigError` unless ``root_public`` certified ``keys``' current verify key
    for ``domain``: the clients pin the home root from that certification."""
    for cert in keys.certifications:
        body = cert.body
        if (
            cert.root_public == root_public
            and body.verify_key == keys.sig_public
            and body.server.lower() == domain.lower()
        ):
            return
    raise ConfigError(
        f"this root has not certified the current server key of {domain}: "
        "run `sealrelay keys certify` with it first"
    )


def write_statement(data_dir: str | os.PathLike[str], data: bytes) -> Path:
    path = Path(data_dir) / PEER_ROOTS_FILE
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def load_statement(path: Path) -> PeerRootsStatement | None:
    """The statement in ``path`` (``None`` if there is no file); :class:`ConfigError` if
    it does not decode."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {type(exc).__name__}") from None
    try:
        return decode(data, PeerRootsStatement, max_size=MAX_STATEMENT)
    except WireError:
        raise ConfigError(f"{path} does not hold a peer-roots statement") from None


async def read_statement(data_dir: str) -> bytes | None:
    """The encoded statement the node serves, ``None`` if there is none or it is unreadable
    (logged: the clients then reach no other domain)."""
    if not data_dir:
        return None
    path = Path(data_dir) / PEER_ROOTS_FILE
    try:
        statement = await trio.to_thread.run_sync(load_statement, path)
    except ConfigError as exc:
        log.error("peer-roots statement not served", extra={"error": str(exc)})
        return None
    return None if statement is None else encode(statement)
