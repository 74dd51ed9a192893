"""The ``sealrelay keys`` commands, called by ``sealrelay.cli`` with parsed arguments.

    sealrelay keys init --domain D [--suite cnsa2|xwing] [--data DIR]
                        [--k8s] [--name sealrelay-server-keys] [--namespace NS]
        generates the domain's server keys (a hybrid signing key of the suite and a hybrid
        KEM key, as ``node serve`` does on first start); writes ``server-keys.json`` (mode
        0600) into DIR when ``--data`` is given, refusing to replace an existing file; with
        ``--k8s`` prints a Kubernetes Secret holding ``server-keys.json`` on stdout. Without
        ``--data`` or ``--k8s`` it refuses (the keys would be thrown away).

The key ids go to stderr as one JSON line, so stdout stays a manifest that can be piped
into ``kubectl apply -f -``. The keys themselves are never logged.

Exit status: 0 on success, 2 for invalid arguments or an existing key file (a
:class:`~node.errors.ConfigError`, printed by ``sealrelay.cli`` as one line).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Final

from node.config import SUITES
from node.errors import ConfigError
from node.k8s import secret_manifest
from node.keys import KEY_FILE, generate, key_file_bytes, write_key_file
from suites import get_suite

EXIT_OK: Final = 0


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
    written = str(write_key_file(args.data, keys)) if args.data is not None else None
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
