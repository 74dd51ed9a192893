"""The node's commands, called by ``sealrelay.cli`` with parsed arguments (exit status back).

    sealrelay node serve --domain D --listen HOST:PORT --data DIR [--config FILE]
        serves until SIGTERM/SIGINT; once listening prints one JSON line on stdout:
        {"event": "listening", "url": "http://HOST:PORT", "domain": D}
    sealrelay admin invite NAME --data DIR [--ttl SECONDS]
        prints a one-time enrollment code for NAME alone on stdout line 1 (works while the
        node runs: it opens the data directory's store directly)
    sealrelay dev run [--data DIR] [--domain D] [--listen HOST:PORT]
        ``make run``: keys and store on first start, invites for alice and bob, the client
        commands to try, then serves

Exit status: 0 after a clean shutdown, 2 for invalid configuration or arguments, 1 when
the node failed (for example the port is taken).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Final

import trio

from node import accounts, devfed, heap, logs
from node.config import ENV_PREFIX, Config, load_config, parse_listen, parse_sentinels
from node.errors import ConfigError
from node.keys import KEY_FILE
from node.server import NodeHandle, run_node
from node.store import Store, open_store

log = logging.getLogger("sealrelay.node.cli")

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_CONFIG: Final = 2
DEV_USERS: Final = ("alice", "bob")
DEV_INVITE_TTL: Final = 7 * 86400


def serve(args: argparse.Namespace) -> int:
    try:
        config = _config(args)
    except ConfigError as exc:
        return _config_error(exc)
    return _run(config, _announce)


def admin_invite(args: argparse.Namespace) -> int:
    if not accounts.valid_name(args.name):
        return _config_error(ConfigError(f"invalid account name {args.name!r}"))
    if args.ttl <= 0:
        return _config_error(ConfigError("--ttl must be positive"))
    Path(args.data).mkdir(parents=True, exist_ok=True, mode=0o700)
    code = trio.run(_add_invite, args.data, args.name, args.ttl)
    print(code, flush=True)
    return EXIT_OK


def dev_run(args: argparse.Namespace) -> int:
    try:
        config = _config(args, store="sqlite")
    except ConfigError as exc:
        return _config_error(exc)
    first_start = not (Path(config.data_dir) / KEY_FILE).exists()

    async def welcome(handle: NodeHandle) -> None:
        _announce(handle)
        codes = {}
        if first_start:
            for name in DEV_USERS:
                codes[name] = await handle.relay.add_invite(name, DEV_INVITE_TTL)
        print(_instructions(handle, config, codes), flush=True)

    return _run(config, welcome)


def _config(args: argparse.Namespace, **extra: Any) -> Config:
    host, port = parse_listen(args.listen)
    overrides = {"domain": args.domain, "data_dir": args.data, "listen_host": host}
    return load_config(
        getattr(args, "config", None), overrides={**overrides, "listen_port": port, **extra}
    )


def _run(config: Config, on_listening: Any) -> int:
    logs.setup(config.log_level)
    try:
        trio.run(_main, config, on_listening)
    except ConfigError as exc:
        return _config_error(exc)
    except OSError as exc:
        log.error("node failed", extra={"error": f"{type(exc).__name__}: {exc.strerror}"})
        return EXIT_FAILED
    return EXIT_OK


async def _main(config: Config, on_listening: Any) -> None:
    async with trio.open_nursery() as nursery:
        handle: NodeHandle = await nursery.start(run_node, config)
        heap.settle()  # startup objects frozen before the first client's request (node.heap)
        result = on_listening(handle)
        if result is not None:
            await result


def _announce(handle: NodeHandle) -> None:
    line = {"event": "listening", "url": handle.url, "domain": handle.relay.domain}
    print(json.dumps(line), flush=True)


async def _add_invite(data_dir: str, name: str, ttl: int) -> str:
    store = await _invite_store(data_dir)
    try:
        raw = secrets.token_bytes(accounts.CODE_BYTES)
        expires = int(time.time() * 1000) + ttl * 1000
        await store.add_invite(accounts.code_hash(raw), name, expires)
    finally:
        await store.aclose()
    return accounts.format_code(raw)


async def _invite_store(data_dir: str) -> Store:
    """The node's SQLite file, or in cluster mode (``SEALRELAY_STORE=redis`` and the
    ``SEALRELAY_REDIS_*`` variables, as in the node's pods) the shared Redis."""
    if os.environ.get(ENV_PREFIX + "STORE") != "redis":
        return await open_store("sqlite", data_dir)
    domain = os.environ.get(ENV_PREFIX + "DOMAIN") or "invite.invalid"  # unused by invites
    c = load_config(overrides={"domain": domain, "data_dir": data_dir})
    return await open_store(
        "redis",
        redis_url=c.redis_url,
        redis_sentinels=parse_sentinels(c.redis_sentinels),
        redis_master=c.redis_master,
        durability=c.durability,
    )


def _instructions(handle: NodeHandle, config: Config, codes: dict[str, str]) -> str:
    url, domain = handle.url, config.domain
    home = Path(config.data_dir).parent
    lines = [f"sealrelay node for {domain} at {url} (data in {config.data_dir}); Ctrl-C stops."]
    if codes:
        lines.append("Enroll two accounts (codes valid 7 days, shown once):")
        lines += [
            f"  sealrelay client register {name}@{domain} --node {url} --code {code}"
            f" --home {home / name}"
            for name, code in codes.items()
        ]
        lines += [
            "Then:",
            f'  sealrelay client send --home {home / "alice"} bob@{domain} "hello bob"',
            f"  sealrelay client receive --home {home / 'bob'} --wait 5",
        ]
    else:
        lines.append(f"More accounts: sealrelay admin invite NAME --data {config.data_dir}")
    return "\n".join(lines)


def _config_error(exc: ConfigError) -> int:
    print(f"sealrelay: {exc}", file=sys.stderr)
    return EXIT_CONFIG


def dev_up(args: argparse.Namespace) -> int:
    """``sealrelay dev up``: 2 or 3 domains on loopback, pinned to each other's roots, each
    a ``node serve`` process on the embedded default, until Ctrl-C."""
    base = Path(args.data)
    domains = devfed.DEV_DOMAINS[: args.domains]
    ports = [args.base_port + i for i in range(len(domains))]
    first_start = not (base / domains[0] / KEY_FILE).exists()
    setups = devfed.prepare(base, domains, ports)
    procs: list[subprocess.Popen[str]] = []
    try:
        for setup in setups:
            procs.append(_start_node(setup))
        codes = {}
        if first_start:
            for name, setup in zip(DEV_USERS, setups, strict=False):
                codes[name] = trio.run(_add_invite, str(setup.data_dir), name, DEV_INVITE_TTL)
        print(_federation_instructions(base, setups, codes), flush=True)
        for proc in procs:
            proc.wait()
    except KeyboardInterrupt:
        pass
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=15)
    return EXIT_OK


def _start_node(setup: devfed.DomainSetup) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "sealrelay", "node", "serve", "--domain", setup.domain]
    argv += ["--listen", f"{devfed.LOOPBACK}:{setup.port}", "--data", str(setup.data_dir)]
    argv += ["--config", str(setup.config)]
    log_file = setup.data_dir.with_name(setup.data_dir.name + ".log").open("a")
    proc = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
        argv, stdout=subprocess.PIPE, stderr=log_file, text=True
    )
    assert proc.stdout is not None  # noqa: S101
    for line in proc.stdout:
        if '"listening"' in line:
            break
    else:
        raise SystemExit(f"sealrelay: the node for {setup.domain} did not start; see its log")
    return proc


def _federation_instructions(
    base: Path, setups: list[devfed.DomainSetup], codes: dict[str, str]
) -> str:
    lines = ["sealrelay local federation (Ctrl-C stops it):"]
    lines += [f"  {s.domain} at {s.url}, root {s.root_fingerprint[:23]}..." for s in setups]
    if codes:
        alice, bob = setups[0], setups[1]
        lines += [
            "Enroll one account on each of the first two domains (codes shown once):",
            f"  sealrelay client register alice@{alice.domain} --node {alice.url}"
            f" --code {codes['alice']} --home {base / 'alice'}",
            f"  sealrelay client register bob@{bob.domain} --node {bob.url}"
            f" --code {codes['bob']} --home {base / 'bob'}",
            "Then send across the domains:",
            f'  sealrelay client send --home {base / "alice"} bob@{bob.domain} "hello from alpha"',
            f"  sealrelay client receive --home {base / 'bob'} --wait 10",
        ]
    else:
        lines.append("More accounts: sealrelay admin invite NAME --data DIR (the domain's data)")
    return "\n".join(lines)
