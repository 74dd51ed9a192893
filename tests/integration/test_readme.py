"""The README's Quickstart and Federation sections, run as written.

The commands come from README.md at test time: every fenced ``sh`` block under the
"## Quickstart" and "## Federation" headings, one command per line (a trailing backslash
joins lines; comments stay, bash drops them). A command that starts a node in the
foreground (``make run``, ``sealrelay dev up``) is started as a background process, as the
README says to start it in a terminal of its own; the rest run, in README order, as one
bash script (so ``export`` carries over), each preceded by a marker line that splits the
output per command. ``set -e``: the first command that fails fails the test.

What is replaced, and nothing else:

- ``make run`` is the Makefile's ``run`` recipe with its variables expanded
  (``.venv/bin/sealrelay dev run``): ``make`` itself would first check the virtual
  environment against pyproject.toml and might reinstall it.
- Ports. The README names fixed loopback ports (7480; 7481 and 7482), which another test
  or a developer's node may hold. The test keeps the README's text and moves the nodes to
  free ports through documented flags (``dev run --listen``, ``dev up --base-port``, added
  right after the subcommand so a trailing comment stays a comment), then replaces
  ``127.0.0.1:7480`` (7481, 7482) in the client commands with the ports chosen. Each
  replacement must happen, so a README that stops naming them fails here, not silently.
- ``CODE-FOR-<NAME>`` placeholders: in a command ``client register NAME@DOMAIN ... --code
  PLACEHOLDER``, the code the node printed in its own ``register NAME@DOMAIN ... --code
  CODE`` line for that same address. The node's lines are read token by token (shlex), not
  by position, so the program name printed before ``client register`` (bare or
  ``.venv/bin/sealrelay``) and invites for more addresses do not matter.
- Paths: the commands run in a fresh temporary directory holding only ``.venv`` (a link to
  the environment running the tests) and a copy of README.md (the Quickstart attaches
  it), so ``.sealrelay/...`` lands there. ``PATH`` has no directory with a ``sealrelay``
  in it and ``SEALRELAY_*`` variables are cleared: a bare ``sealrelay`` or a command that
  relies on the developer's environment fails.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final

import pytest

ROOT: Final = Path(__file__).resolve().parents[2]
README: Final = ROOT / "README.md"
CODES_TIMEOUT: Final = 90.0
"""Seconds for a node command to print its enrollment codes (it first makes keys)."""
SCRIPT_TIMEOUT: Final = 300.0
STOP_TIMEOUT: Final = 30.0
MARKER: Final = "@@readme-command "
PLACEHOLDER: Final = re.compile(r"CODE-FOR-[A-Z]+")
LOOPBACK: Final = "127.0.0.1"


# --- reading the README and the Makefile ------------------------------------------------


def section(text: str, heading: str) -> str:
    """The text under the "## " heading that starts with ``heading``, up to the next one."""
    parts = re.split(r"^## ", text, flags=re.MULTILINE)
    (found,) = [p for p in parts if p.startswith(heading)]
    return found


def sh_commands(text: str) -> list[str]:
    """The commands of the fenced ``sh`` blocks, in order (continuation lines joined)."""
    blocks = re.findall(r"^```sh\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)
    commands: list[str] = []
    for block in blocks:
        joined = block.replace("\\\n", " ")
        commands += [line for line in joined.splitlines() if line.strip()]
    return commands


def make_recipe(target: str) -> list[str]:
    """The recipe of a Makefile target, with ``$(VAR)`` expanded from ``VAR := value``
    (an undefined variable is empty, as in make)."""
    text = (ROOT / "Makefile").read_text()
    variables = dict(re.findall(r"^(\w+)\s*[:?]?=\s*(.*?)\s*$", text, flags=re.MULTILINE))
    match = re.search(rf"^{target}:.*\n((?:\t.*\n)+)", text, flags=re.MULTILINE)
    assert match, f"no {target} target in the Makefile"

    def expand(line: str) -> str:
        while "$(" in line:
            line = re.sub(r"\$\((\w+)\)", lambda m: variables.get(m.group(1), ""), line)
        return line

    return [" ".join(expand(line).split()) for line in match.group(1).splitlines()]


# --- the environment the commands run in ------------------------------------------------


def free_ports(count: int) -> int:
    """The first of ``count`` consecutive loopback ports that are free right now."""
    for _ in range(200):
        with socket.socket() as probe:
            probe.bind((LOOPBACK, 0))
            first: int = probe.getsockname()[1]
        if first + count > 65535:
            continue
        sockets = [socket.socket() for _ in range(count)]
        try:
            for offset, sock in enumerate(sockets):
                sock.bind((LOOPBACK, first + offset))
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
        return first
    raise AssertionError(f"no {count} consecutive free ports")


def clean_environment(home: Path) -> dict[str, str]:
    """os.environ without SEALRELAY_* and without any PATH entry holding a sealrelay."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEALRELAY_")}
    entries = env.get("PATH", "").split(os.pathsep)
    env["PATH"] = os.pathsep.join(e for e in entries if e and not (Path(e) / "sealrelay").exists())
    env["HOME"] = str(home)
    env.pop("VIRTUAL_ENV", None)
    return env


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A directory laid out like a clone after ``make run`` or ``make test``, for what the
    README's commands touch: ``.venv`` and README.md."""
    venv = Path(sys.prefix)
    assert (venv / "bin" / "sealrelay").exists(), "the tests run outside the project's venv"
    cwd = tmp_path / "clone"
    cwd.mkdir()
    (cwd / ".venv").symlink_to(venv, target_is_directory=True)
    shutil.copy(README, cwd / "README.md")
    (tmp_path / "home").mkdir()
    return cwd


def bash() -> str:
    found = shutil.which("bash")
    assert found, "bash is missing"
    return found


# --- a node started as the README says -------------------------------------------------


@dataclass
class Foreground:
    """A README command that runs until Ctrl-C, started in its own process group."""

    command: str
    cwd: Path
    env: dict[str, str]
    proc: subprocess.Popen[str] | None = None
    lines: queue.Queue[str | None] = field(default_factory=queue.Queue)
    output: list[str] = field(default_factory=list)
    stderr: IO[str] | None = None

    def start(self) -> None:
        self.stderr = (self.cwd.parent / "node-stderr.log").open("a")
        self.proc = subprocess.Popen(
            [bash(), "-c", self.command],
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
            start_new_session=True,
        )
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc is not None
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def codes(self, wanted: set[str]) -> dict[str, str]:
        """Enrollment codes by address, once every address in ``wanted`` has one."""
        found: dict[str, str] = {}
        while not wanted <= set(found):
            try:
                line = self.lines.get(timeout=CODES_TIMEOUT)
            except queue.Empty:
                raise AssertionError(f"no codes for {wanted - set(found)}: {self.log()}") from None
            if line is None:
                raise AssertionError(f"{self.command!r} exited: {self.log()}")
            self.output.append(line)
            found.update(register_codes(line))
        return found

    def log(self) -> str:
        errors = (self.cwd.parent / "node-stderr.log").read_text()[-3000:]
        return "".join(self.output) + "\n" + errors

    def stop(self) -> None:
        """Ctrl-C to the whole process group, as in a terminal; SIGKILL if it hangs."""
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        if self.stderr is not None:
            self.stderr.close()


def register_codes(line: str) -> dict[str, str]:
    """``{address: code}`` from a printed ``... client register ADDRESS ... --code CODE``."""
    try:
        tokens = shlex.split(line)
    except ValueError:
        return {}
    if "register" not in tokens or "--code" not in tokens:
        return {}
    address = tokens[tokens.index("register") + 1]
    return {address: tokens[tokens.index("--code") + 1]}


@pytest.fixture
def started() -> Iterator[list[Foreground]]:
    nodes: list[Foreground] = []
    yield nodes
    for node in nodes:
        node.stop()


# --- running a section --------------------------------------------------------------------


@dataclass
class Section:
    foreground: list[str]
    commands: list[str]


def split_section(heading: str) -> Section:
    """The section's commands: those that start a node in the foreground, and the rest."""
    commands = sh_commands(section(README.read_text(), heading))
    runs_node = re.compile(r"^make run\b|^\S*sealrelay dev (run|up)\b")
    foreground = [c for c in commands if runs_node.match(c.strip())]
    return Section(foreground, [c for c in commands if c not in foreground])


def node_command(readme_command: str, first_port: int) -> str:
    """What actually starts the node: ``make run`` as its recipe; the README's own
    command otherwise; with the documented flag for free ports after the subcommand."""
    command = readme_command
    if re.match(r"^make run\b", command.strip()):
        (recipe,) = make_recipe("run")
        command = command.replace("make run", recipe, 1)
    if " dev run" in command:
        return command.replace(" dev run", f" dev run --listen {LOOPBACK}:{first_port}", 1)
    assert " dev up" in command, command
    return command.replace(" dev up", f" dev up --base-port {first_port}", 1)


def substitute(command: str, ports: dict[int, int], codes: dict[str, str]) -> str:
    named = re.compile(rf"{re.escape(LOOPBACK)}:({'|'.join(map(str, ports))})\b")
    command = named.sub(lambda m: f"{LOOPBACK}:{ports[int(m.group(1))]}", command)  # one pass
    placeholder = PLACEHOLDER.search(command)
    if placeholder:
        tokens = shlex.split(command, comments=True)
        assert tokens[tokens.index("--code") + 1] == placeholder.group(0), command
        command = command.replace(placeholder.group(0), codes[registered_address(command)], 1)
    return command


def registered_address(command: str) -> str:
    """The address a README ``client register ADDRESS ...`` command enrolls."""
    tokens = shlex.split(command, comments=True)
    return tokens[tokens.index("register") + 1]


def run_script(commands: list[str], cwd: Path, env: dict[str, str]) -> list[str]:
    """Run the commands as one bash script; each command's stdout, in order."""
    script = ["set -e -o pipefail"]
    for i, command in enumerate(commands):
        script += [f"printf '\\n{MARKER}%d\\n' {i}", command]
    done = subprocess.run(
        [bash(), "-c", "\n".join(script)],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,  # a passphrase prompt fails instead of waiting
        capture_output=True,
        text=True,
        timeout=SCRIPT_TIMEOUT,
        check=False,
    )
    outputs = re.split(rf"\n{re.escape(MARKER)}\d+\n", done.stdout)[1:]
    assert done.returncode == 0, (
        f"command {len(outputs) - 1} failed ({done.returncode}): "
        f"{commands[len(outputs) - 1]}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )
    assert len(outputs) == len(commands)
    return outputs


def run_section(
    heading: str, readme_ports: list[int], cwd: Path, started: list[Foreground]
) -> tuple[list[str], list[str]]:
    """Start the section's node, run its other commands; (commands as run, outputs)."""
    env = clean_environment(cwd.parent / "home")
    part = split_section(heading)
    (readme_node,) = part.foreground
    first = free_ports(len(readme_ports))
    ports = {p: first + i for i, p in enumerate(readme_ports)}
    node = Foreground(node_command(readme_node, first), cwd, env)
    started.append(node)
    node.start()
    for readme_port in readme_ports:
        assert any(f"{LOOPBACK}:{readme_port}" in c for c in part.commands), readme_port
    wanted = {registered_address(c) for c in part.commands if PLACEHOLDER.search(c)}
    assert wanted, f"no enrollment in {heading}"
    codes = node.codes(wanted)
    commands = [substitute(c, ports, codes) for c in part.commands]
    assert not [c for c in commands if PLACEHOLDER.search(c)]
    return commands, run_script(commands, cwd, env)


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def output_of(commands: list[str], outputs: list[str], *words: str) -> str:
    """The output of the one command that holds all ``words``."""
    (found,) = [out for c, out in zip(commands, outputs, strict=True) if all(w in c for w in words)]
    return found


# --- the tests -----------------------------------------------------------------------------


def test_quickstart_as_written(workdir: Path, started: list[Foreground]) -> None:
    commands, outputs = run_section("Quickstart", [7480], workdir, started)
    assert any(c.startswith("export SEALRELAY_PASSPHRASE=") for c in commands)
    (hello,) = json_lines(output_of(commands, outputs, "receive", ".sealrelay/bob"))
    assert (hello["from"], hello["text"]) == ("alice@localhost", "hello bob")
    (hi,) = json_lines(output_of(commands, outputs, "receive", ".sealrelay/alice"))
    assert (hi["from"], hi["text"], hi["expire"]) == ("bob@localhost", "hi alice", 60)
    (attachment,) = hi["attachments"]
    assert attachment["name"] == "README.md"
    assert attachment["error"] is None
    saved = workdir / attachment["path"]
    assert saved.resolve().is_relative_to((workdir / ".sealrelay" / "inbox").resolve())
    assert saved.read_bytes() == README.read_bytes()
    assert attachment["sha256"] == hashlib.sha256(README.read_bytes()).hexdigest()
    (verified,) = json_lines(output_of(commands, outputs, "verify"))
    assert verified["address"] == "bob@localhost"
    assert re.fullmatch(r"\d{60}", verified["safety_number"]), verified
    # "compare it with bob's": bob's side shows the same number
    bob = run_script(
        [
            commands[0],
            ".venv/bin/sealrelay client verify --home .sealrelay/bob alice@localhost",
        ],
        workdir,
        clean_environment(workdir.parent / "home"),
    )
    (theirs,) = json_lines(bob[1])
    assert theirs["safety_number"] == verified["safety_number"]


def test_federation_as_written(workdir: Path, started: list[Foreground]) -> None:
    commands, outputs = run_section("Federation", [7481, 7482], workdir, started)
    (message,) = json_lines(output_of(commands, outputs, "receive", "federation/bob"))
    assert (message["from"], message["text"]) == ("alice@alpha.localhost", "hello across domains")
    # the two domains really are two nodes on the ports the test chose
    assert len({c.split("--node ")[1].split()[0] for c in commands if "--node " in c}) == 2
    # the call: Alice's side answered, ran media over QUIC and hung up; Bob's side (the
    # background command's file) got every frame she sent
    alice = json_lines(output_of(commands, outputs, "client call", "federation/alice"))
    events = [line["event"] for line in alice if "event" in line]
    assert events == ["ringing", "answered", "ended"], alice
    summary = alice[-1]
    assert summary["transport"] == "quic", summary
    assert summary["frames_received"] > 0, summary
    assert summary["decrypt_failures"] == 0, summary
    bob = wait_for_summary(workdir / ".sealrelay/federation/bob-call.jsonl")
    assert bob["frames_received"] > 0, bob
    assert bob["decrypt_failures"] == 0, bob


def wait_for_summary(path: Path, within: float = 30.0) -> dict[str, Any]:
    """The summary line of a call command running in the background: it writes it after
    the hang-up reaches it, which may be after the caller's command returned."""
    deadline = time.monotonic() + within
    while True:
        lines = json_lines(path.read_text()) if path.exists() else []
        if lines and "frames_received" in lines[-1]:
            return lines[-1]
        assert time.monotonic() < deadline, f"no call summary in {path.name}: {lines}"
        time.sleep(0.2)


def test_the_extraction_reads_what_the_readme_shows() -> None:
    """The parts the tests above rely on: both sections have exactly one node command and
    client commands with placeholders; a code is read from a printed register line."""
    for heading in ("Quickstart", "Federation"):
        part = split_section(heading)
        assert len(part.foreground) == 1, part.foreground
        assert all(c.startswith((".venv/bin/sealrelay ", "export ")) for c in part.commands)
    (recipe,) = make_recipe("run")
    assert recipe.split()[:3] == [".venv/bin/sealrelay", "dev", "run"]
    line = (
        "  .venv/bin/sealrelay client register bob@x.test --node http://h:1 --code AB-CD --home h"
    )
    assert register_codes(line) == {"bob@x.test": "AB-CD"}
    assert register_codes("sealrelay node for x at http://h:1") == {}
