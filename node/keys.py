"""The node's server keys, its key document and the sender certificates it issues.

On first start :func:`load_or_create` generates, in the data directory, a hybrid signing
key of the domain's suite and a hybrid KEM key for the routing layer, and writes them to
``server-keys.json`` (mode 0600, written to a temporary file and renamed); later starts load
that file. A key's id is the first 16 bytes of SHA-256 of its public key.

:class:`ServerKeys` signs the :class:`~wire.server.ServerKeyDocument` (``valid_until`` =
now + the document lifetime, at most 7 days; cached and re-signed once a tenth of its life
has passed) and :class:`~wire.e2e.SenderCertificate` s, both under their contexts in
``suites.labels``. Private key bytes never leave this module except into that file, or
through :func:`key_file_bytes` into the Kubernetes Secret that ``sealrelay keys init --k8s``
prints.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from node.errors import ConfigError
from suites import Suite, get_suite, labels
from suites.kem import KemPrivateKey
from suites.sig import SigPrivateKey
from wire import encode
from wire.e2e import IdentityKey, SenderCertificate, SenderCertificateBody
from wire.server import (
    DocumentSignature,
    ServerKemKey,
    ServerKeyDocument,
    ServerKeyDocumentBody,
    ServerVerifyKeyEntry,
)

KEY_FILE: Final = "server-keys.json"
KEY_FILE_VERSION: Final = 1
KEY_ID_LEN: Final = 16
FILE_MODE: Final = 0o600


def key_id(public: bytes) -> bytes:
    """The first 16 bytes of SHA-256 of an encoded public key."""
    return hashlib.sha256(public).digest()[:KEY_ID_LEN]


@dataclass(eq=False)
class ServerKeys:
    """The domain's current signing and KEM keys (times in Unix milliseconds)."""

    suite: Suite
    sig_key: SigPrivateKey = field(repr=False)
    kem_key: KemPrivateKey = field(repr=False)
    _doc: ServerKeyDocument | None = field(default=None, repr=False)
    _doc_bytes: bytes = field(default=b"", repr=False)
    _doc_key: tuple[str, tuple[str, ...]] = field(default=("", ()), repr=False)

    @property
    def sig_public(self) -> bytes:
        return self.sig_key.public

    @property
    def sig_key_id(self) -> bytes:
        return key_id(self.sig_key.public)

    @property
    def kem_public(self) -> bytes:
        return self.kem_key.public

    @property
    def kem_key_id(self) -> bytes:
        return key_id(self.kem_key.public)

    def key_document(
        self, domain: str, endpoints: tuple[str, ...], now_ms: int, lifetime_s: int
    ) -> ServerKeyDocument:
        """The signed document, re-signed when a tenth of its life has passed."""
        doc = self._doc
        stale = doc is None or now_ms >= doc.body.issued + lifetime_s * 100
        if doc is None or stale or self._doc_key != (domain, endpoints):
            doc = self.sign_document(domain, endpoints, now_ms, lifetime_s)
            self._doc, self._doc_bytes = doc, encode(doc)
            self._doc_key = (domain, endpoints)
        return doc

    def key_document_bytes(
        self, domain: str, endpoints: tuple[str, ...], now_ms: int, lifetime_s: int
    ) -> bytes:
        self.key_document(domain, endpoints, now_ms, lifetime_s)
        return self._doc_bytes

    def sign_document(
        self, domain: str, endpoints: tuple[str, ...], now_ms: int, lifetime_s: int
    ) -> ServerKeyDocument:
        valid_until = now_ms + lifetime_s * 1000
        suite_id = self.suite.suite_id
        sig_entry = ServerVerifyKeyEntry(
            id=self.sig_key_id, suite=suite_id, public=self.sig_public, not_after=valid_until
        )
        kem_entry = ServerKemKey(
            id=self.kem_key_id, suite=suite_id, public=self.kem_public, not_after=valid_until
        )
        body = ServerKeyDocumentBody(
            server=domain,
            suite=suite_id,
            verify_keys=(sig_entry,),
            kem_keys=(kem_entry,),
            endpoints=endpoints,
            issued=now_ms,
            valid_until=valid_until,
        )
        signature = self.suite.sig.sign(self.sig_key, encode(body), labels.CTX_SERVER_KEY_DOCUMENT)
        sig = DocumentSignature(key_id=self.sig_key_id, signature=signature)
        return ServerKeyDocument(body=body, signatures=(sig,))

    def issue_certificate(
        self, address: str, device: int, identity: IdentityKey, now_ms: int, lifetime_s: int
    ) -> SenderCertificate:
        """A sender certificate for ``address``/``device`` expiring after ``lifetime_s``."""
        body = SenderCertificateBody(
            suite=self.suite.suite_id,
            address=address,
            device=device,
            identity=identity,
            expires=now_ms + lifetime_s * 1000,
            key_id=self.sig_key_id,
        )
        signature = self.suite.sig.sign(self.sig_key, encode(body), labels.CTX_SENDER_CERTIFICATE)
        return SenderCertificate(body=body, signature=signature)


def generate(suite: Suite) -> ServerKeys:
    sig_key, _ = suite.sig.generate()
    return ServerKeys(suite, sig_key, suite.kem.generate())


def load_or_create(data_dir: str | os.PathLike[str], suite_name: str) -> ServerKeys:
    """Load ``server-keys.json`` from ``data_dir``, creating the directory and the keys
    on first start. A file of another suite is refused (:class:`ConfigError`)."""
    suite = get_suite(suite_name)
    directory = Path(data_dir)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = directory / KEY_FILE
    if path.exists():
        return _load(path, suite)
    keys = generate(suite)
    _write(path, keys)
    return keys


def _load(path: Path, suite: Suite) -> ServerKeys:
    try:
        data = json.loads(path.read_text())
        version, name = data["version"], data["suite"]
        sig_bytes, kem_seed = bytes.fromhex(data["sig"]), bytes.fromhex(data["kem"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"cannot read server keys {path}: {type(exc).__name__}") from None
    if version != KEY_FILE_VERSION or name != suite.name:
        raise ConfigError(f"server keys {path} are for suite {name!r}, not {suite.name!r}")
    sig_key = suite.sig.private_key_from_bytes(sig_bytes)
    return ServerKeys(suite, sig_key, suite.kem.private_key_from_seed(kem_seed))


def key_file_bytes(keys: ServerKeys) -> bytes:
    """The content of ``server-keys.json`` for ``keys`` (private key bytes: a secret).

    What :func:`load_or_create` reads back; ``sealrelay keys init`` puts it in a file or a
    Kubernetes Secret."""
    data = {
        "version": KEY_FILE_VERSION,
        "suite": keys.suite.name,
        "sig": keys.suite.sig.private_key_bytes(keys.sig_key).hex(),
        "kem": keys.suite.kem.private_key_bytes(keys.kem_key).hex(),
    }
    return json.dumps(data).encode()


def write_key_file(data_dir: str | os.PathLike[str], keys: ServerKeys) -> Path:
    """Write ``server-keys.json`` into ``data_dir`` (created, mode 0700); refuses to replace
    an existing file (:class:`ConfigError`): those keys are the domain's identity."""
    directory = Path(data_dir)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = directory / KEY_FILE
    if path.exists():
        raise ConfigError(f"server keys {path} already exist; not replacing them")
    _write(path, keys)
    return path


def _write(path: Path, keys: ServerKeys) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with os.fdopen(fd, "wb") as f:
        f.write(key_file_bytes(keys))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
