"""Every fuzz target, by name (see ``tests.fuzz.targets.base`` for what a target is)."""

from __future__ import annotations

from tests.fuzz.targets import calls, client, federation, links, node, session
from tests.fuzz.targets.base import Target

TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        *node.TARGETS,
        *session.TARGETS,
        *client.TARGETS,
        *federation.TARGETS,
        *calls.TARGETS,
        *links.TARGETS,
    )
}

__all__ = ["TARGETS", "Target"]
