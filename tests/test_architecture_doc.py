"""``docs/architecture.md`` stays true where that is cheap to check (issue 16, item 6).

- every file named in the table "Where each rule lives" exists, as does every other file
  or directory the doc names;
- the storage ports the doc names are exactly the ``Protocol`` classes of
  ``node/store/ports.py``, with their method counts;
- every connection state of ``node/conn/state.py`` appears in the doc, and the doc's two
  transition tables are the ones rendered from that file's data (which is the authority).
"""

from __future__ import annotations

import re
import typing
from collections.abc import Iterable, Mapping
from enum import Enum
from pathlib import Path
from typing import Final, TypeVar

from node.conn import state
from node.store import ports

ROOT: Final = Path(__file__).resolve().parents[1]
DOC: Final = ROOT / "docs" / "architecture.md"
RULES_HEADING: Final = "## Where each rule lives"
PORTS_HEADING: Final = "## Storage ports"
ILLEGAL: Final = "—"
S = TypeVar("S", bound=Enum)
E = TypeVar("E", bound=Enum)


def _doc() -> str:
    return DOC.read_text(encoding="utf-8")


def _section(heading: str) -> str:
    """The text under ``heading`` up to the next second-level heading."""
    text = _doc()
    start = text.index(heading + "\n") + len(heading)
    end = text.find("\n## ", start)
    return text[start:] if end < 0 else text[start:end]


def _table_rows(section: str) -> list[list[str]]:
    """The cells of each body row of the Markdown tables in ``section``."""
    rows = []
    for line in section.splitlines():
        if not line.startswith("|") or set(line) <= set("|-: "):
            continue
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return [row for row in rows[1:] if row != rows[0]]


def render_matrix(states: Iterable[S], events: Iterable[E], table: Mapping[tuple[S, E], S]) -> str:
    """A transition table as a Markdown matrix: a row per state, a column per event, the
    next state in each cell (``—`` where the pair is illegal)."""
    cols = list(events)
    lines = [
        "| state | " + " | ".join(e.name for e in cols) + " |",
        "|---|" + "---|" * len(cols),
    ]
    for s in states:
        cells = [table[(s, e)].name if (s, e) in table else ILLEGAL for e in cols]
        lines.append(f"| {s.name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def login_table() -> str:
    events = [state.Event.LOGIN, state.Event.LOGGED_IN, state.Event.LOGIN_REFUSED]
    return render_matrix(state.Login, events, state.LOGIN_TRANSITIONS)


def link_table() -> str:
    login_events = {state.Event.LOGIN, state.Event.LOGGED_IN, state.Event.LOGIN_REFUSED}
    events = [e for e in state.Event if e not in login_events]
    return render_matrix(state.Link, events, state.LINK_TRANSITIONS)


def test_rule_table_names_existing_files() -> None:
    rows = _table_rows(_section(RULES_HEADING))
    assert len(rows) >= 10
    for row in rows:
        paths = re.findall(r"`([^`]+)`", row[1])
        assert paths, f"no file in row {row}"
        for path in paths:
            assert (ROOT / path).is_file(), f"{path} (rule {row[0]!r}) does not exist"


def test_every_path_named_exists() -> None:
    """Any `dir/file.py` or `dir/` the doc names in backticks, table or prose."""
    paths = re.findall(r"`([a-z_]+(?:/[a-z_0-9]+)*(?:\.py|\.toml|\.md|/))`", _doc())
    assert len(paths) > 30
    for path in paths:
        assert (ROOT / path).exists(), path


def test_rule_table_covers_the_issue() -> None:
    rules = " ".join(row[0].lower() for row in _table_rows(_section(RULES_HEADING)))
    for topic in (
        "key document",
        "sender certificate",
        "routing layer",
        "limit",
        "error code",
        "padding",
        "replay",
    ):
        assert topic in rules, topic


def _protocols() -> dict[str, int]:
    """The Protocol classes defined in ports.py (not Store, the sum), with method counts."""
    found = {}
    for name, obj in vars(ports).items():
        if (
            isinstance(obj, type)
            and obj.__module__ == ports.__name__
            and typing.Protocol in obj.__bases__
            and name != "Store"
        ):
            methods = [n for n, v in vars(obj).items() if callable(v) and not n.startswith("_")]
            found[name] = len(methods)
    return found


def test_ports_named_are_the_protocols() -> None:
    rows = _table_rows(_section(PORTS_HEADING))
    named = {row[0].strip("`"): int(row[1]) for row in rows}
    assert named == _protocols()
    assert set(named) == {port.__name__ for port in ports.PORTS}
    assert "`Store`" in _doc()
    assert "`Storage`" in _doc()


def test_every_connection_state_is_named() -> None:
    text = _doc()
    for enum in (state.ConnState, state.Login, state.Link, state.Event):
        for member in enum:
            assert re.search(rf"\b{member.name}\b", text), f"{enum.__name__}.{member.name}"


def test_transition_tables_match_the_data() -> None:
    text = _doc()
    assert login_table() in text, "login table:\n" + login_table()
    assert link_table() in text, "link table:\n" + link_table()


def test_close_codes_match() -> None:
    text = _doc()
    for event, code in state.CLOSE_CODES.items():
        assert f"| {event.name} | {code} |" in text, event
