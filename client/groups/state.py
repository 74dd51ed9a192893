"""A group's state as every member computes it: a tree of verified changes and one rule
that picks the current state from it (docs/groups.md, "Ordering").

Each change names its parent state hash and has epoch = parent epoch + 1, so the verified
changes form a tree rooted at the creation change. A change whose parent is not known yet
waits in a bounded buffer and is verified when the parent arrives. The current state is a
function of the *set* of verified changes, never of their arrival order:

1. **Revocation.** A change signed by member ``m`` is *void* when another verified change
   that is not void itself removes ``m``, was signed by a strictly more senior admin, and is
   concurrent with it (neither is an ancestor of the other). Seniority is the epoch at which
   the signer became admin (0 for the creator), then the address; a non-admin signer (a
   ``leave``) is the most junior. Changes are decided in order of their signer's seniority,
   so the rule is well founded. Descendants of a void change are void. This is what stops a
   removed admin from re-signing a change on an old state where it was still admin.
2. **Fork choice.** From the root, repeatedly step to the non-void child with the lowest
   change id. The last change reached is the head; its state is the group's state.

Changes that left the chosen branch are reported in :attr:`ApplyResult.dropped` so the
application can re-issue its own on the new head ("re-base").
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

from client.groups.changes import GroupView, change_id, verify_change, verify_create
from client.groups.errors import ChangeRefused
from suites import Suite
from wire import WireError, decode, encode
from wire.group import GroupChange, GroupHistory, GroupMember, OpRemove

MAX_PENDING: Final = 1000
"""Changes whose parent is unknown that a member keeps, waiting for the parent."""
MAX_RECORD_SIZE: Final = 64 * 1024 * 1024
"""Largest stored group (:meth:`GroupState.to_bytes`) :meth:`GroupState.from_bytes` reads."""

TOO_MANY_PENDING: Final = "group.too_many_pending"
_JUNIOR: Final = 2**32  # seniority of a signer who is not an admin

Status = Literal["applied", "buffered", "duplicate"]


@dataclass(eq=False)
class _Node:
    change: GroupChange
    id: bytes
    view: GroupView
    parent: _Node | None
    depth: int
    rank: tuple[int, str]
    children: list[_Node] = field(default_factory=list)

    def ancestors(self) -> Iterator[_Node]:
        node = self.parent
        while node is not None:
            yield node
            node = node.parent


@dataclass(frozen=True)
class ApplyResult:
    """What one :meth:`GroupState.apply` did.

    ``added`` / ``removed``: addresses that joined / left the current state; ``dropped``:
    changes that were on the chosen branch and are no longer; ``refused``: buffered changes
    (by id) refused with a code when their parent arrived.
    """

    status: Status
    added: frozenset[str] = frozenset()
    removed: frozenset[str] = frozenset()
    dropped: tuple[GroupChange, ...] = ()
    refused: tuple[tuple[bytes, str], ...] = ()


def _is_ancestor(a: _Node, b: _Node) -> bool:
    """True when ``a`` is a proper ancestor of ``b``."""
    node = b.parent
    while node is not None and node.depth >= a.depth:
        if node is a:
            return True
        node = node.parent
    return False


def _concurrent(a: _Node, b: _Node) -> bool:
    return a is not b and not _is_ancestor(a, b) and not _is_ancestor(b, a)


class GroupState:
    """Every verified change of one group, and the state the ordering rule picks."""

    def __init__(self, create: GroupChange) -> None:
        view = verify_create(create)
        self._root = _Node(create, view.head, view, None, 0, (0, create.body.signer))
        self._by_state: dict[bytes, _Node] = {view.hash: self._root}
        self._by_id: dict[bytes, _Node] = {view.head: self._root}
        self._pending: dict[bytes, dict[bytes, GroupChange]] = {}  # parent hash -> id -> change
        self._head = self._root

    # --- reading --------------------------------------------------------------------------

    @property
    def view(self) -> GroupView:
        """The current state."""
        return self._head.view

    @property
    def suite(self) -> Suite:
        return self._root.view.suite

    @property
    def group_id(self) -> bytes:
        return self._root.view.group

    @property
    def name(self) -> str:
        return self.view.name

    @property
    def epoch(self) -> int:
        return self.view.epoch

    @property
    def hash(self) -> bytes:
        return self.view.hash

    @property
    def members(self) -> Mapping[str, GroupMember]:
        return self.view.members

    @property
    def admins(self) -> frozenset[str]:
        return frozenset(self.view.admins)

    def pending_count(self) -> int:
        return sum(len(v) for v in self._pending.values())

    def chain(self) -> tuple[GroupChange, ...]:
        """The changes from the creation to the current state (the chosen branch only)."""
        nodes = [self._head, *self._head.ancestors()]
        return tuple(n.change for n in reversed(nodes))

    # --- applying -------------------------------------------------------------------------

    def apply(self, change: GroupChange) -> ApplyResult:
        """Verify and add ``change``; :class:`ChangeRefused` leaves the state as it was."""
        status, refused = self._add(change)
        if status != "applied":
            return ApplyResult(status)
        return self._choose(self._head, refused)

    def merge(self, changes: Iterable[GroupChange]) -> ApplyResult:
        """Apply several changes in any order at once (a welcome, a stored history): the
        ones refused are reported in ``refused``, not raised."""
        old, refused = self._head, []
        for change in sorted(changes, key=lambda c: c.body.epoch):
            try:
                refused.extend(self._add(change)[1])
            except ChangeRefused as exc:
                refused.append((change_id(self.suite, change), exc.code))
        return self._choose(old, refused)

    def _add(self, change: GroupChange) -> tuple[Status, list[tuple[bytes, str]]]:
        """Attach ``change`` (and what waited for it) to the tree, or buffer it."""
        cid = change_id(self.suite, change)
        parent_hash = change.body.parent
        if cid in self._by_id or cid in self._pending.get(parent_hash, {}):
            return "duplicate", []
        parent = self._by_state.get(parent_hash)
        if parent is None:
            self._buffer(cid, change)
            return "buffered", []
        self._attach(parent, cid, change)
        return "applied", self._drain(cid)

    def _buffer(self, cid: bytes, change: GroupChange) -> None:
        if change.body.group != self.group_id or change.body.v != self.suite.suite_id:
            raise ChangeRefused("change for another group or suite", "group.wrong_group")
        if change.body.epoch == 0:
            raise ChangeRefused("a group is created once", "group.bad_change")
        if self.pending_count() >= MAX_PENDING:
            raise ChangeRefused("too many changes wait for their parent", TOO_MANY_PENDING)
        self._pending.setdefault(change.body.parent, {})[cid] = change

    def _attach(self, parent: _Node, cid: bytes, change: GroupChange) -> _Node:
        view = verify_change(parent.view, change)
        signer = change.body.signer
        rank = (parent.view.admins.get(signer, _JUNIOR), signer)
        node = _Node(change, cid, view, parent, parent.depth + 1, rank)
        parent.children.append(node)
        self._by_id[cid] = node
        self._by_state[view.hash] = node
        return node

    def _drain(self, cid: bytes) -> list[tuple[bytes, str]]:
        """Attach buffered descendants of the node just added; collect the refused ones."""
        refused: list[tuple[bytes, str]] = []
        ready = [self._by_id[cid]]
        while ready:
            node = ready.pop()
            for child_id, child in sorted(self._pending.pop(node.view.hash, {}).items()):
                try:
                    ready.append(self._attach(node, child_id, child))
                except ChangeRefused as exc:
                    refused.append((child_id, exc.code))
        return refused

    def _choose(self, old: _Node, refused: list[tuple[bytes, str]]) -> ApplyResult:
        void = self._void()
        head = self._root
        while True:
            live = [c for c in head.children if c.id not in void]
            if not live:
                break
            head = min(live, key=lambda c: c.id)
        self._head = head
        on_new = {n.id for n in (head, *head.ancestors())}
        dropped = tuple(n.change for n in (old, *old.ancestors()) if n.id not in on_new)
        before, after = old.view.members.keys(), head.view.members.keys()
        return ApplyResult(
            "applied",
            added=frozenset(after - before),
            removed=frozenset(before - after),
            dropped=tuple(reversed(dropped)),
            refused=tuple(refused),
        )

    def _void(self) -> set[bytes]:
        """Ids of the void changes (rule 1 of the module docstring)."""
        nodes = sorted((n for n in self._by_id.values() if n is not self._root), key=_order)
        removals: dict[str, list[_Node]] = {}  # removed address -> the removals naming it
        for node in nodes:
            op = node.change.body.op
            if isinstance(op, OpRemove):
                removals.setdefault(op.address, []).append(node)
        void: set[bytes] = set()
        for node in nodes:  # most senior signer first: a removal is decided before it counts
            candidates = removals.get(node.change.body.signer, ())
            if any(_voids(r, node, void) for r in candidates):
                void.add(node.id)
        for node in sorted(nodes, key=lambda n: n.depth):  # parents before children
            if node.parent is not None and node.parent.id in void:
                void.add(node.id)
        return void

    # --- persistence ----------------------------------------------------------------------

    def history(self) -> GroupHistory:
        """Every change this member holds (verified ones parents first, then buffered)."""
        nodes = sorted(self._by_id.values(), key=lambda n: (n.depth, n.id))
        waiting = [c for by_id in self._pending.values() for _, c in sorted(by_id.items())]
        return GroupHistory(changes=tuple(n.change for n in nodes) + tuple(waiting))

    def to_bytes(self) -> bytes:
        return encode(self.history())

    @classmethod
    def from_changes(cls, changes: Iterable[GroupChange]) -> GroupState:
        """The state a member reaches from ``changes`` in any order (one creation change
        among them); changes that are refused are left out, as a member would."""
        items = sorted(changes, key=lambda c: c.body.epoch)
        creates = [c for c in items if c.body.epoch == 0]
        if len(creates) != 1:
            raise ChangeRefused("a history holds exactly one creation change", "group.bad_change")
        state = cls(creates[0])
        state.merge(items)
        return state

    @classmethod
    def from_bytes(cls, data: bytes) -> GroupState:
        """Inverse of :meth:`to_bytes` (signatures are verified again)."""
        try:
            history = decode(data, GroupHistory, max_size=MAX_RECORD_SIZE)
        except WireError:
            raise ChangeRefused("not a group history", "group.bad_record") from None
        return cls.from_changes(history.changes)


def _order(node: _Node) -> tuple[tuple[int, str], bytes]:
    return node.rank, node.id


def _voids(removal: _Node, node: _Node, void: set[bytes]) -> bool:
    """True when ``removal`` (of ``node``'s signer; decided, not void) revokes ``node``."""
    return (
        removal.rank < node.rank
        and removal.id not in void
        and not any(a.id in void for a in removal.ancestors())
        and _concurrent(removal, node)
    )
