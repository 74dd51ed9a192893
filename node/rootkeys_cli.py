"""``sealrelay keys`` commands for the agency root and key rotation (DESIGN section 6).

    sealrelay keys root-init --out DIR
        a new SLH-DSA root key: DIR/root-key.json (secret, 0600; keep it offline) and
        DIR/root.pub.json (what peer agencies pin); prints the fingerprint
    sealrelay keys certify --root DIR --data DIR --domain DOMAIN [--days N]
        certify the domain's current server verify key with the root (valid N days,
        default 365), written into DIR/server-keys.json; a running node reloads it
    sealrelay keys rotate --data DIR [--overlap SECONDS] [--root DIR --domain DOMAIN]
        new current keys; the old ones retire but keep co-signing the key document and
        verifying what they signed for the overlap (default 30 days, the longest TTL);
        with --root the new key is certified at once. A running node picks it up
    sealrelay keys peer-roots --root DIR --data DIR --domain DOMAIN --peer D=FP ... [--days N]
        the statement, signed with the root, naming each peer domain D and its root's
        fingerprint FP for the domain's own clients (valid N days, default 365), written
        into DIR/peer-roots.bin; a running node serves it at once. Without it, the
        domain's clients reach no other domain
    sealrelay keys fingerprint (--data DIR | --root-public FILE)
        the fingerprint to pin: of the current server verify key, or of a root.pub.json

Each prints one JSON object on stdout. Exit status 2 for invalid arguments or files.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

from node.errors import KEYS_FILES, ConfigError, file_error
from node.keys import KEY_FILE, load, replace_key_file
from node.peerroots import check_root_certifies, make_statement, parse_peer, write_statement
from node.rootkeys import DEFAULT_CERT_DAYS, certify, create_root, load_root, load_root_public
from suites import rootsig

EXIT_OK: Final = 0
DEFAULT_OVERLAP: Final = 30 * 86400


def root_init(args: argparse.Namespace) -> int:
    return _guard(_root_init, args)


def certify_keys(args: argparse.Namespace) -> int:
    return _guard(_certify, args)


def rotate(args: argparse.Namespace) -> int:
    return _guard(_rotate, args)


def fingerprint(args: argparse.Namespace) -> int:
    return _guard(_fingerprint, args)


def peer_roots(args: argparse.Namespace) -> int:
    return _guard(_peer_roots, args)


def _guard(command: Callable[[argparse.Namespace], None], args: argparse.Namespace) -> int:
    """Run ``command``; its :class:`ConfigError` reaches ``sealrelay.cli`` (one line)."""
    try:
        command(args)
    except OSError as exc:
        raise file_error(exc, KEYS_FILES) from None
    return EXIT_OK


def _print(data: dict[str, object]) -> None:
    print(json.dumps(data), flush=True)


def _root_init(args: argparse.Namespace) -> None:
    public, _ = create_root(Path(args.out))
    _print(
        {
            "root_public": str(Path(args.out) / "root.pub.json"),
            "fingerprint": rootsig.fingerprint(public),
        }
    )


def _now() -> int:
    return int(time.time() * 1000)


def _certify(args: argparse.Namespace) -> None:
    if args.days < 1:
        raise ConfigError("--days must be at least 1")
    path = Path(args.data) / KEY_FILE
    keys = certify(load(path), args.domain, load_root(Path(args.root)), _now(), args.days)
    replace_key_file(args.data, keys)
    _print(
        {
            "certified": keys.sig_key_id.hex(),
            "domain": args.domain.lower(),
            "root": rootsig.fingerprint(keys.certifications[-1].root_public),
            "not_after": keys.certifications[-1].body.not_after,
        }
    )


def _rotate(args: argparse.Namespace) -> None:
    if args.overlap < 0:
        raise ConfigError("--overlap must not be negative")
    if (args.root is None) != (args.domain is None):
        raise ConfigError("--root and --domain go together")
    path = Path(args.data) / KEY_FILE
    old = load(path)
    keys = old.rotated(_now(), args.overlap)
    if args.root is not None:
        keys = certify(keys, args.domain, load_root(Path(args.root)), _now(), DEFAULT_CERT_DAYS)
    replace_key_file(args.data, keys)
    _print({"new_key": keys.sig_key_id.hex(), "retired_key": old.sig_key_id.hex()})


def _fingerprint(args: argparse.Namespace) -> None:
    if args.root_public is not None:
        public = load_root_public(Path(args.root_public))
        _print({"fingerprint": rootsig.fingerprint(public), "kind": "root"})
        return
    if args.data is None:
        raise ConfigError("give --data DIR or --root-public FILE")
    keys = load(Path(args.data) / KEY_FILE)
    _print({"fingerprint": rootsig.fingerprint(keys.sig_public), "kind": "server-key"})


def _peer_roots(args: argparse.Namespace) -> None:
    peers: dict[str, list[str]] = {}
    for text in args.peer or ():
        domain, fp = parse_peer(text)
        peers.setdefault(domain, []).append(fp)
    if not peers:
        raise ConfigError("name at least one --peer DOMAIN=FINGERPRINT")
    root = load_root(Path(args.root))
    check_root_certifies(load(Path(args.data) / KEY_FILE), args.domain, root[0])
    data = make_statement(root, args.domain, peers, _now(), args.days)
    path = write_statement(args.data, data)
    _print({"statement": str(path), "domain": args.domain.lower(), "peers": sorted(peers)})
