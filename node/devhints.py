"""What ``sealrelay dev run`` and ``dev up`` print for people to copy: the commands to
enroll the accounts they invited and to send a first message.

Every command starts with :func:`command_name`: ``sealrelay`` when that name on the
``PATH`` is this installation's, else the path of this installation's ``sealrelay`` script
relative to the working directory when it lies inside it (``.venv/bin/sealrelay`` after
``make run``), else its absolute path, computed at run time.

The lines a script may parse (stable; ``CMD`` is the command name, no spaces in it)::

    CMD client register NAME@DOMAIN --node URL --code CODE --home DIR
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final

from node.config import Config
from node.devfed import DomainSetup

SCRIPT: Final = "sealrelay"


def command_name(
    executable: str = sys.executable, cwd: Path | None = None, path: str | None = None
) -> str:
    """How a person in ``cwd`` runs this installation's ``sealrelay``."""
    script = Path(executable).parent / SCRIPT
    on_path = shutil.which(SCRIPT, path=os.environ.get("PATH") if path is None else path)
    if on_path is not None and script.exists() and Path(on_path).samefile(script):
        return SCRIPT
    if not script.exists():
        return f"{executable} -m {SCRIPT}"
    here = Path.cwd() if cwd is None else cwd
    absolute = Path(os.path.abspath(script))
    if absolute.is_relative_to(os.path.abspath(here)):
        return str(absolute.relative_to(os.path.abspath(here)))
    return str(absolute)


def run_instructions(url: str, config: Config, codes: Mapping[str, str], cmd: str = "") -> str:
    """``dev run``'s hints for the node at ``url``; ``codes`` by account name (first start)."""
    cmd = cmd or command_name()
    domain, data = config.domain, config.data_dir
    home = Path(data).parent
    lines = [f"sealrelay node for {domain} at {url} (data in {data}); Ctrl-C stops."]
    if codes:
        lines.append("Enroll two accounts (codes valid 7 days, shown once):")
        lines += [
            _register(cmd, f"{name}@{domain}", url, code, home / name)
            for name, code in codes.items()
        ]
        lines += [
            "Then:",
            f'  {cmd} client send --home {home / "alice"} bob@{domain} "hello bob"',
            f"  {cmd} client receive --home {home / 'bob'} --wait 5",
        ]
    lines.append(f"More accounts: {cmd} admin invite NAME --data {data}")
    return "\n".join(lines)


def federation_instructions(
    base: Path, setups: Sequence[DomainSetup], codes: Mapping[str, str], cmd: str = ""
) -> str:
    """``dev up``'s hints; ``codes`` maps an account name to a code on the domain of the
    same position in ``setups`` (first start only)."""
    cmd = cmd or command_name()
    lines = [f"sealrelay local federation (data in {base}; Ctrl-C stops it):"]
    lines += [
        f"  {s.domain} at {s.url}, data {s.data_dir}, root {s.root_fingerprint[:23]}..."
        for s in setups
    ]
    if codes:
        lines.append("Enroll one account on each domain (codes valid 7 days, shown once):")
        lines += [
            _register(cmd, f"{name}@{s.domain}", s.url, code, base / name)
            for (name, code), s in zip(codes.items(), setups, strict=False)
        ]
        alice, bob = list(codes)[:2]
        lines += [
            "Then send across the domains:",
            f'  {cmd} client send --home {base / alice} {bob}@{setups[1].domain} "hello"',
            f"  {cmd} client receive --home {base / bob} --wait 10",
        ]
    lines.append(f"More accounts: {cmd} admin invite NAME --data {setups[0].data_dir}")
    return "\n".join(lines)


def _register(cmd: str, address: str, url: str, code: str, home: Path) -> str:
    return f"  {cmd} client register {address} --node {url} --code {code} --home {home}"
