"""The node's server keys, its key document and the sender certificates it issues.

On first start :func:`load_or_create` generates, in the data directory, a hybrid signing
key of the domain's suite, a hybrid KEM key for the routing layer and the node's QUIC
identity (``transport.identity.QuicIdentity``: an ECDSA P-384 key and a self-signed
certificate over it, for call media; DESIGN section 9), and writes them to
``server-keys.json`` (mode 0600, written to a temporary file and renamed); later starts load
that file. A key's id is the first 16 bytes of SHA-256 of its public key.

The QUIC identity: one current key, listed (as the SHA-256 pin of its SubjectPublicKeyInfo,
with the UDP port) in the key document when the node is given a media port
(``ServerKeys.key_document(..., media_port=...)``); clients and peer nodes pin it from the
document (``trust.media``). It rotates with the server keys (:meth:`ServerKeys.rotated`, that
is ``sealrelay keys rotate``): the new document lists only the new pin, and a party still
holding the old document fails the pin check, fetches the document again and reconnects.
A key file of version 1 or 2 has no QUIC identity: loading it makes a fresh one, and
:func:`load_or_create` writes it back (file version 3) unless the file is a link (a mounted
Kubernetes Secret: regenerate the Secret from a rotated or new key file to share one
QUIC key between replicas and restarts).

:class:`ServerKeys` signs the :class:`~wire.server.ServerKeyDocument` (``valid_until`` =
now + the document lifetime, at most 7 days; cached and re-signed once a tenth of its life
has passed) and :class:`~wire.e2e.SenderCertificate` s, both under their contexts in
``suites.labels``. Private key bytes never leave this module except into that file, or
through :func:`key_file_bytes` into the Kubernetes Secret that ``sealrelay keys init --k8s``
prints.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from node.errors import ConfigError
from suites import Suite, SuiteError, get_suite, labels
from suites.kem import KemPrivateKey
from suites.sig import SigPrivateKey
from transport.identity import QuicIdentity
from trust.certificates import sign_certificate
from trust.media import check_media
from wire import WireError, decode, encode
from wire.e2e import IdentityKey, SenderCertificate, SenderCertificateBody
from wire.server import (
    DocumentSignature,
    RootCertification,
    ServerKemKey,
    ServerKeyDocument,
    ServerKeyDocumentBody,
    ServerKeyDocumentBodyV2,
    ServerMedia,
    ServerVerifyKeyEntry,
)

KEY_FILE: Final = "server-keys.json"
KEY_FILE_VERSION: Final = 3
KEY_FILE_VERSIONS: Final = (1, 2, KEY_FILE_VERSION)
"""Version 3 added the QUIC identity (``quic``); older files load without one."""
RELOAD_INTERVAL: Final = 2.0  # seconds between checks of the key file by a running node
KEY_ID_LEN: Final = 16
FILE_MODE: Final = 0o600


def key_id(public: bytes) -> bytes:
    """The first 16 bytes of SHA-256 of an encoded public key."""
    return hashlib.sha256(public).digest()[:KEY_ID_LEN]


@dataclass(frozen=True, eq=False)
class RetiredKeys:
    """A previous generation of keys, kept after a rotation until ``not_after`` (Unix ms):
    its verify key still checks what it signed and co-signs the key document (carrying
    peers' trust over to the new key), its KEM key still opens routing layers sealed to it."""

    sig_key: SigPrivateKey = field(repr=False)
    kem_key: KemPrivateKey = field(repr=False)
    not_after: int


@dataclass(eq=False)
class ServerKeys:
    """The domain's current signing and KEM keys, the retired ones still in their overlap,
    the agency root's certifications of verify keys (times in Unix milliseconds), and the
    node's current QUIC identity (a fresh one unless given)."""

    suite: Suite
    sig_key: SigPrivateKey = field(repr=False)
    kem_key: KemPrivateKey = field(repr=False)
    retired: tuple[RetiredKeys, ...] = ()
    certifications: tuple[RootCertification, ...] = ()
    quic: QuicIdentity = field(default_factory=QuicIdentity.generate, repr=False)
    _doc: ServerKeyDocument | None = field(default=None, repr=False)
    _doc_bytes: bytes = field(default=b"", repr=False)
    _doc_key: tuple[str, tuple[str, ...], int | None] = field(default=("", (), None), repr=False)

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

    @property
    def quic_pin(self) -> bytes:
        """SHA-256 of the QUIC certificate key's SubjectPublicKeyInfo (32 bytes)."""
        return self.quic.pin.sha256

    def kem_private(self, kid: bytes) -> KemPrivateKey | None:
        """The KEM private key (current or retired) with id ``kid``."""
        for key in (self.kem_key, *(r.kem_key for r in self.retired)):
            if key_id(key.public) == kid:
                return key
        return None

    def key_document(
        self,
        domain: str,
        endpoints: tuple[str, ...],
        now_ms: int,
        lifetime_s: int,
        media_port: int | None = None,
    ) -> ServerKeyDocument:
        """The signed document, re-signed when a tenth of its life has passed."""
        doc = self._doc
        stale = doc is None or now_ms >= doc.body.issued + lifetime_s * 100
        if doc is None or stale or self._doc_key != (domain, endpoints, media_port):
            doc = self.sign_document(domain, endpoints, now_ms, lifetime_s, media_port)
            self._doc, self._doc_bytes = doc, encode(doc)
            self._doc_key = (domain, endpoints, media_port)
        return doc

    def key_document_bytes(
        self,
        domain: str,
        endpoints: tuple[str, ...],
        now_ms: int,
        lifetime_s: int,
        media_port: int | None = None,
    ) -> bytes:
        self.key_document(domain, endpoints, now_ms, lifetime_s, media_port)
        return self._doc_bytes

    def sign_document(
        self,
        domain: str,
        endpoints: tuple[str, ...],
        now_ms: int,
        lifetime_s: int,
        media_port: int | None = None,
    ) -> ServerKeyDocument:
        """The document listing the current keys (``not_after`` = ``valid_until``) and the
        retired ones still in their overlap, signed by all of them; with ``media_port``,
        a version 2 body that also lists the QUIC endpoint (that UDP port and the pin of
        :attr:`quic`), else a version 1 body as before."""
        valid_until = now_ms + lifetime_s * 1000
        suite_id = self.suite.suite_id
        live = [r for r in self.retired if r.not_after > now_ms]
        generations = [(self.sig_key, self.kem_key, valid_until)]
        generations += [(r.sig_key, r.kem_key, r.not_after) for r in live]
        fields = (
            domain,
            suite_id,
            tuple(
                ServerVerifyKeyEntry(key_id(s.public), suite_id, s.public, t)
                for s, _, t in generations
            ),
            tuple(ServerKemKey(key_id(k.public), suite_id, k.public, t) for _, k, t in generations),
            endpoints,
            now_ms,
            valid_until,
        )
        body: ServerKeyDocumentBody | ServerKeyDocumentBodyV2 = (
            ServerKeyDocumentBody(*fields)
            if media_port is None
            else ServerKeyDocumentBodyV2(*fields, ServerMedia(media_port, self.quic_pin))
        )
        check_media(body)  # never sign what peers refuse (a port of 0: bind first)
        message = encode(body)
        sigs = tuple(
            DocumentSignature(
                key_id(s.public),
                self.suite.sig.sign(s, message, labels.CTX_SERVER_KEY_DOCUMENT),
            )
            for s, _, _ in generations
        )
        verify_keys = {s.public for s, _, _ in generations}
        certs = tuple(c for c in self.certifications if c.body.verify_key in verify_keys)
        return ServerKeyDocument(body=body, signatures=sigs, certifications=certs)

    def rotated(self, now_ms: int, overlap_s: int) -> ServerKeys:
        """New current keys; the current ones retire, kept for ``overlap_s`` seconds."""
        fresh = generate(self.suite)
        keep = tuple(r for r in self.retired if r.not_after > now_ms)
        retiring = RetiredKeys(self.sig_key, self.kem_key, now_ms + overlap_s * 1000)
        return ServerKeys(
            self.suite,
            fresh.sig_key,
            fresh.kem_key,
            (retiring, *keep),
            self.certifications,
            fresh.quic,
        )

    def certified(self, cert: RootCertification) -> ServerKeys:
        """These keys with ``cert`` added (replacing one by the same root for the same key)."""
        same = (cert.root_public, cert.body.verify_key)
        others = tuple(c for c in self.certifications if (c.root_public, c.body.verify_key) != same)
        return ServerKeys(
            self.suite, self.sig_key, self.kem_key, self.retired, (*others, cert), self.quic
        )

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
        return sign_certificate(self.suite, self.sig_key, body)


def generate(suite: Suite) -> ServerKeys:
    sig_key, _ = suite.sig.generate()
    return ServerKeys(suite, sig_key, suite.kem.generate(), quic=QuicIdentity.generate())


def load_or_create(data_dir: str | os.PathLike[str], suite_name: str) -> ServerKeys:
    """Load ``server-keys.json`` from ``data_dir``, creating the directory and the keys
    on first start. A file of another suite is refused (:class:`ConfigError`)."""
    suite = get_suite(suite_name)
    directory = Path(data_dir)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = directory / KEY_FILE
    if path.exists():
        keys, has_quic = _load(path, suite)
        if not has_quic and not path.is_symlink():
            _upgrade(path, keys)
        return keys
    keys = generate(suite)
    _write(path, keys)
    return keys


def load(path: Path, suite: Suite | None = None) -> ServerKeys:
    """The keys in ``path`` (file version 1, 2 or 3); of ``suite`` if given. A file
    without a QUIC identity (before version 3) gets a fresh one, not written back."""
    return _load(path, suite)[0]


def _load(path: Path, suite: Suite | None) -> tuple[ServerKeys, bool]:
    """The keys in ``path``, and whether the file holds their QUIC identity."""
    try:
        data = json.loads(path.read_text())
        version, name = data["version"], data["suite"]
        file_suite = get_suite(name)
        quic = data.get("quic")
        identity = (
            QuicIdentity.from_pem(quic["certificate"].encode(), quic["key"].encode())
            if quic is not None
            else QuicIdentity.generate()
        )
        keys = ServerKeys(
            file_suite,
            file_suite.sig.private_key_from_bytes(bytes.fromhex(data["sig"])),
            file_suite.kem.private_key_from_seed(bytes.fromhex(data["kem"])),
            tuple(
                RetiredKeys(
                    file_suite.sig.private_key_from_bytes(bytes.fromhex(old["sig"])),
                    file_suite.kem.private_key_from_seed(bytes.fromhex(old["kem"])),
                    int(old["not_after"]),
                )
                for old in data.get("retired", [])
            ),
            tuple(
                decode(bytes.fromhex(c), RootCertification) for c in data.get("certifications", [])
            ),
            identity,
        )
    except (OSError, ValueError, KeyError, TypeError, SuiteError, WireError) as exc:
        raise ConfigError(f"cannot read server keys {path}: {type(exc).__name__}") from None
    if version not in KEY_FILE_VERSIONS or (version == KEY_FILE_VERSION) != (quic is not None):
        raise ConfigError(f"server keys {path} have file version {version}")
    if suite is not None and name != suite.name:
        raise ConfigError(f"server keys {path} are for suite {name!r}, not {suite.name!r}")
    return keys, quic is not None


def key_file_bytes(keys: ServerKeys) -> bytes:
    """The content of ``server-keys.json`` for ``keys`` (private key bytes: a secret).

    What :func:`load_or_create` reads back; ``sealrelay keys init`` puts it in a file or a
    Kubernetes Secret."""
    sig, kem = keys.suite.sig, keys.suite.kem
    data = {
        "version": KEY_FILE_VERSION,
        "suite": keys.suite.name,
        "sig": sig.private_key_bytes(keys.sig_key).hex(),
        "kem": kem.private_key_bytes(keys.kem_key).hex(),
        "retired": [
            {
                "sig": sig.private_key_bytes(r.sig_key).hex(),
                "kem": kem.private_key_bytes(r.kem_key).hex(),
                "not_after": r.not_after,
            }
            for r in keys.retired
        ],
        "certifications": [encode(c).hex() for c in keys.certifications],
        "quic": {
            "certificate": keys.quic.certificate_pem.decode(),
            "key": keys.quic.private_key_pem.decode(),
        },
    }
    return json.dumps(data).encode()


def replace_key_file(data_dir: str | os.PathLike[str], keys: ServerKeys) -> Path:
    """Write ``keys`` over ``server-keys.json`` atomically (rotation, certification); a
    running node picks the new file up within ``RELOAD_INTERVAL``."""
    path = Path(data_dir) / KEY_FILE
    _write(path, keys)
    return path


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


def _upgrade(path: Path, keys: ServerKeys) -> None:
    """Write ``keys`` over an older ``path`` (file version 3: their QUIC identity then
    survives restarts); if the file cannot be replaced (read-only), keep going with the
    identity in memory."""
    try:
        _write(path, keys)
    except OSError:
        with contextlib.suppress(OSError):
            path.with_suffix(".tmp").unlink(missing_ok=True)


def _write(path: Path, keys: ServerKeys) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with os.fdopen(fd, "wb") as f:
        f.write(key_file_bytes(keys))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
