"""An agency's offline root key and its certifications of server keys (DESIGN section 6).

    public, secret = create_root(directory)      root-key.json (0600) + root.pub.json
    root = load_root(directory)                  (public, secret)
    keys = certify(keys, domain, root, now_ms, days)   certifies the current verify key

``root.pub.json`` is what peers pin: ``{"algorithm", "public" (base64), "fingerprint"}``,
the fingerprint being ``sha256:`` and the hex SHA-256 of the raw public key. The secret
file belongs on an offline machine; a node never needs it (``sealrelay keys certify`` runs
there, and the certified ``server-keys.json`` travels to the node).
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Final

from node.errors import ConfigError
from node.keys import ServerKeys
from suites import labels, rootsig
from wire import encode
from wire.server import RootCertification, RootCertificationBody

ROOT_SECRET_FILE: Final = "root-key.json"  # noqa: S105 - a file name
ROOT_PUBLIC_FILE: Final = "root.pub.json"
DEFAULT_CERT_DAYS: Final = 365


def public_document(public: bytes) -> dict[str, str]:
    return {
        "algorithm": rootsig.ALGORITHM,
        "public": base64.b64encode(public).decode(),
        "fingerprint": rootsig.fingerprint(public),
    }


def create_root(directory: Path) -> tuple[bytes, bytes]:
    """A new root key pair written into ``directory``; refuses to replace one."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    secret_path = directory / ROOT_SECRET_FILE
    if secret_path.exists():
        raise ConfigError(f"a root key exists in {directory}; not replacing it")
    public, secret = rootsig.generate()
    data = {**public_document(public), "secret": base64.b64encode(secret).decode()}
    fd = os.open(secret_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f)
    (directory / ROOT_PUBLIC_FILE).write_text(json.dumps(public_document(public), indent=2) + "\n")
    return public, secret


def load_root(directory: Path) -> tuple[bytes, bytes]:
    try:
        data = json.loads((directory / ROOT_SECRET_FILE).read_text())
        public, secret = base64.b64decode(data["public"]), base64.b64decode(data["secret"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"cannot read the root key in {directory}: {type(exc).__name__}"
        ) from None
    if data.get("algorithm") != rootsig.ALGORITHM:
        raise ConfigError(f"the root key in {directory} is not {rootsig.ALGORITHM}")
    return public, secret


def load_root_public(path: Path) -> bytes:
    """The raw public key of a ``root.pub.json`` (its fingerprint field is not trusted)."""
    try:
        data = json.loads(path.read_text())
        public = base64.b64decode(data["public"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"cannot read {path}: {type(exc).__name__}") from None
    if len(public) != rootsig.PUBLIC_KEY_SIZE:
        raise ConfigError(f"{path} does not hold an {rootsig.ALGORITHM} public key")
    return public


def certify(
    keys: ServerKeys, domain: str, root: tuple[bytes, bytes], now_ms: int, days: int
) -> ServerKeys:
    """``keys`` with a root certification of their current verify key for ``domain``."""
    public, secret = root
    body = RootCertificationBody(
        server=domain.lower(),
        verify_key=keys.sig_public,
        issued=now_ms,
        not_after=now_ms + days * 86_400_000,
    )
    signature = rootsig.sign(secret, encode(body), labels.CTX_ROOT_CERTIFICATION)
    cert = RootCertification(
        body=body, algorithm=rootsig.ALGORITHM, root_public=public, signature=signature
    )
    return keys.certified(cert)
