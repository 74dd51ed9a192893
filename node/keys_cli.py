"""The ``sealrelay keys`` commands, called by ``sealrelay.cli`` with parsed arguments.

    sealrelay keys init --domain D [--suite cnsa2|xwing] [--data DIR]
                        [--k8s] [--name sealrelay-server-keys] [--namespace NS]
        generates the domain's server keys (a hybrid signing key of the suite and a hybrid
        KEM key, as ``node serve`` does on first start); writes ``server-keys.json`` (mode
        0600) into DIR when ``--data`` is given, refusing to replace an existing file; with
        ``--k8s`` prints a Kubernetes Secret holding ``server-keys.json`` on stdout. Without
        ``--data`` or ``--k8s`` it refuses (the keys would be thrown away).

    sealrelay keys show URL
        fetches the node's key document (``GET URL/.well-known/sealrelay/server``, binary
        msgpack) and prints it as one JSON object: the domain, suite, endpoints, ``issued``
        and ``valid_until`` (UTC, ISO 8601), each key's id (hex), fingerprint and
        ``not_after``, the signing key ids, the root certifications, and the QUIC media
        endpoint of a version 2 document (``"media"``: its UDP ``port`` and the ``pin``,
        SHA-256 of its certificate key, in hex; ``null`` in a version 1 document, which
        lists none: ``trust.media``); ``"verified"``
        says whether its self-signatures check out (``federation.documents``), each
        certification's ``"verified"`` whether the root's signature does, and ``"error"``
        why not. Exit status 1 when it does not verify.

``keys init`` writes the key ids to stderr as one JSON line, so stdout stays a manifest
that can be piped into ``kubectl apply -f -``. The keys themselves are never logged.

Exit status: 0 on success, 2 for invalid arguments or an existing key file (a
:class:`~node.errors.ConfigError`, printed by ``sealrelay.cli`` as one line); ``keys show``
fails with ``keys.fetch`` or ``keys.document`` (status 1).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from typing import Any, Final

import httpx

from federation.documents import fingerprint, verify_certification, verify_document
from federation.errors import KeyDocumentError
from node.app import DOCUMENT_PATH
from node.config import SUITES
from node.errors import (
    KEYS_DOCUMENT,
    KEYS_FETCH,
    KEYS_FILES,
    CommandError,
    ConfigError,
    file_error,
)
from node.k8s import secret_manifest
from node.keys import KEY_FILE, generate, key_file_bytes, write_key_file
from suites import SuiteError, get_suite, get_suite_by_id
from trust.limits import MAX_DOCUMENT
from trust.media import media_endpoint
from wire import WireError, decode
from wire.server import RootCertification, ServerKeyDocument

EXIT_OK: Final = 0
EXIT_UNVERIFIED: Final = 1
SHOW_TIMEOUT: Final = 10.0
HTTP_OK: Final = 200
MAX_SHOWN_TIME: Final = 253402300799  # 9999-12-31T23:59:59Z, the last time ISO 8601 shows


def init(args: argparse.Namespace) -> int:
    domain: str = args.domain
    if not domain or "@" in domain or "/" in domain:
        raise ConfigError(f"invalid domain {domain!r}")
    if args.suite not in SUITES:
        raise ConfigError(f"invalid suite {args.suite!r}")
    if args.data is None and not args.k8s:
        raise ConfigError("keys init needs --data DIR, --k8s or both")
    keys = generate(get_suite(args.suite))
    content = key_file_bytes(keys)
    files = {KEY_FILE: content}
    manifest = secret_manifest(args.name, args.namespace, files, domain=domain) if args.k8s else ""
    try:
        written = str(write_key_file(args.data, keys)) if args.data is not None else None
    except OSError as exc:
        raise file_error(exc, KEYS_FILES) from None
    info = {
        "event": "server_keys",
        "domain": domain,
        "suite": keys.suite.name,
        "sig_key_id": keys.sig_key_id.hex(),
        "kem_key_id": keys.kem_key_id.hex(),
        "file": written,
    }
    print(json.dumps(info), file=sys.stderr, flush=True)
    if manifest:
        sys.stdout.write(manifest)
        sys.stdout.flush()
    return EXIT_OK


def show(args: argparse.Namespace) -> int:
    url = args.url.rstrip("/") + DOCUMENT_PATH
    try:
        response = httpx.get(url, timeout=SHOW_TIMEOUT, follow_redirects=False)
    except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:  # not a usable URL too
        raise CommandError(f"cannot fetch {url}: {exc}", KEYS_FETCH) from None
    if response.status_code != HTTP_OK:
        raise CommandError(f"{url} answered HTTP {response.status_code}", KEYS_FETCH)
    described = describe_document(response.content, int(time.time() * 1000))
    print(json.dumps({"url": url, **described}, indent=2), flush=True)
    return EXIT_OK if described["verified"] else EXIT_UNVERIFIED


def describe_document(data: bytes, now_ms: int) -> dict[str, Any]:
    """The encoded key document ``data`` as JSON-ready values, with whether it verifies
    at ``now_ms``; :class:`CommandError` (``keys.document``) if it does not decode."""
    try:
        doc = decode(data, ServerKeyDocument, max_size=MAX_DOCUMENT)
    except WireError:
        raise CommandError("the answer is not a server key document", KEYS_DOCUMENT) from None
    body = doc.body
    error = None
    try:
        verify_document(data, body.server, now_ms)
    except KeyDocumentError as exc:
        error = exc.message
    return {
        "domain": body.server,
        "suite": _suite_name(body.suite),
        "verified": error is None,
        "error": error,
        "issued": _utc(body.issued),
        "valid_until": _utc(body.valid_until),
        "endpoints": list(body.endpoints),
        "verify_keys": [_key(k.id, k.suite, k.public, k.not_after) for k in body.verify_keys],
        "kem_keys": [_key(k.id, k.suite, k.public, k.not_after) for k in body.kem_keys],
        "signed_by": [sig.key_id.hex() for sig in doc.signatures],
        "certifications": [_certification(c) for c in doc.certifications],
        "media": _media(doc),
    }


def _media(doc: ServerKeyDocument) -> dict[str, Any] | None:
    """The document's QUIC endpoint as listed (checked by ``verify_document``), or None."""
    endpoint = media_endpoint(doc)
    if endpoint is None:
        return None
    return {"port": endpoint.port, "pin": endpoint.pin.hex()}


def _key(kid: bytes, suite: int, public: bytes, not_after: int) -> dict[str, Any]:
    return {
        "id": kid.hex(),
        "suite": _suite_name(suite),
        "fingerprint": fingerprint(public),
        "not_after": _utc(not_after),
    }


def _certification(cert: RootCertification) -> dict[str, Any]:
    try:
        verify_certification(cert)
        verified = True
    except KeyDocumentError:
        verified = False
    return {
        "root": fingerprint(cert.root_public),
        "algorithm": cert.algorithm,
        "domain": cert.body.server,
        "verify_key": fingerprint(cert.body.verify_key),
        "issued": _utc(cert.body.issued),
        "not_after": _utc(cert.body.not_after),
        "verified": verified,
    }


def _suite_name(suite_id: int) -> str:
    try:
        return get_suite_by_id(suite_id).name
    except SuiteError:
        return f"unknown ({suite_id})"


def _utc(ms: int) -> str:
    seconds = min(ms / 1000, MAX_SHOWN_TIME)
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
