"""Signed group changes: one state view, the rule table, signing and verification.

A :class:`GroupView` is one state of a group (members, admins, name, epoch) with its state
hash. :func:`verify_change` is the only transition: it checks a change against the view it
names as its parent and returns the next view, or raises. The rules of every operation are
in :data:`RULES`, one table:

=============  ==========  =================================================================
operation      signer      rule
=============  ==========  =================================================================
``create``     creator     epoch 0 only (the root of a group); the signer is among the members
``add``        admin       the address is not a member yet; at most ``MAX_MEMBERS``
``remove``     admin       the address is a member other than the signer (who uses ``leave``)
``promote``    admin       the address is a member and not an admin
``leave``      the member  ``address`` is the signer; the last admin may not leave others
``rename``     admin       any name
=============  ==========  =================================================================

Every change is checked in this order: suite and group id, epoch = parent epoch + 1, the
signer device is a member device of the parent, the key the change carries has that
device's fingerprint (``Hash(GROUP_DEVICE_KEY_INFO || key)``), the hybrid signature under
``CTX_GROUP_CHANGE`` over ``encode(body)`` (composite draft, see :mod:`suites.sig`), then
the row above. A change's id is ``Hash(GROUP_CHANGE_HASH_INFO || encode(body))`` and a state
hash is ``Hash(GROUP_STATE_HASH_INFO || encode(GroupStateBody))``, with the suite's hash.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

from client.entropy import Entropy
from client.groups.errors import ChangeRefused, ForgedChange, NotAdmin
from client.identity import Identity
from suites import Suite, SuiteError, get_suite_by_id, labels
from suites.kdf import constant_time_equal
from wire import encode
from wire.group import (
    MAX_MEMBERS,
    GroupAdmin,
    GroupChange,
    GroupChangeBody,
    GroupDevice,
    GroupMember,
    GroupOp,
    GroupStateBody,
    OpAdd,
    OpCreate,
    OpLeave,
    OpPromote,
    OpRemove,
    OpRename,
)

GROUP_ID_LEN: Final = 16

BAD_CHANGE: Final = "group.bad_change"
WRONG_GROUP: Final = "group.wrong_group"
BAD_EPOCH: Final = "group.bad_epoch"
UNKNOWN_SIGNER: Final = "group.unknown_signer"
LAST_ADMIN: Final = "group.last_admin"


@dataclass(frozen=True, eq=False)
class GroupView:
    """One state of a group. ``admins`` maps an admin to the epoch it became one."""

    suite: Suite
    group: bytes
    epoch: int
    head: bytes
    name: str
    members: Mapping[str, GroupMember]
    admins: Mapping[str, int]
    hash: bytes

    def device_fingerprint(self, address: str, device: int) -> bytes | None:
        """The key fingerprint of a member device, ``None`` if it is not one."""
        member = self.members.get(address)
        if member is None:
            return None
        return next((d.fp for d in member.devices if d.id == device), None)

    def is_admin(self, address: str) -> bool:
        return address in self.admins


def make_view(
    suite: Suite,
    group: bytes,
    epoch: int,
    head: bytes,
    name: str,
    members: Mapping[str, GroupMember],
    admins: Mapping[str, int],
) -> GroupView:
    """A view with its state hash computed."""
    body = GroupStateBody(
        v=suite.suite_id,
        group=group,
        epoch=epoch,
        head=head,
        name=name,
        members=tuple(members[a] for a in sorted(members)),
        admins=tuple(GroupAdmin(address=a, since=admins[a]) for a in sorted(admins)),
    )
    digest = suite.kdf.hash(labels.GROUP_STATE_HASH_INFO + encode(body))
    frozen_members = MappingProxyType(dict(members))
    frozen_admins = MappingProxyType(dict(admins))
    return GroupView(suite, group, epoch, head, name, frozen_members, frozen_admins, digest)


def change_id(suite: Suite, change: GroupChange) -> bytes:
    """The id of a change: the hash of its signed body (so re-signing gives the same id)."""
    return suite.kdf.hash(labels.GROUP_CHANGE_HASH_INFO + encode(change.body))


# --- the rule table -----------------------------------------------------------------------

_Next = tuple[str, dict[str, GroupMember], dict[str, int]]


def _add(view: GroupView, body: GroupChangeBody, op: OpAdd) -> _Next:
    address = op.member.address
    if address in view.members:
        raise ChangeRefused(f"{address} is already a member", BAD_CHANGE)
    if len(view.members) >= MAX_MEMBERS:
        raise ChangeRefused("the group is full", BAD_CHANGE)
    _check_fingerprints(view.suite, op.member)
    members = dict(view.members)
    members[address] = op.member
    return view.name, members, dict(view.admins)


def _remove(view: GroupView, body: GroupChangeBody, op: OpRemove) -> _Next:
    address = op.address
    if address not in view.members or address == body.signer:
        raise ChangeRefused("remove names a member other than the signer", BAD_CHANGE)
    return _without(view, address)


def _promote(view: GroupView, body: GroupChangeBody, op: OpPromote) -> _Next:
    address = op.address
    if address not in view.members or address in view.admins:
        raise ChangeRefused("promote names a member who is not an admin", BAD_CHANGE)
    admins = dict(view.admins)
    admins[address] = body.epoch
    return view.name, dict(view.members), admins


def _leave(view: GroupView, body: GroupChangeBody, op: OpLeave) -> _Next:
    if op.address != body.signer:
        raise ChangeRefused("a member can only sign its own leave", BAD_CHANGE)
    if view.admins.keys() == {body.signer} and len(view.members) > 1:
        raise ChangeRefused("the last admin must promote someone before leaving", LAST_ADMIN)
    return _without(view, body.signer)


def _rename(view: GroupView, body: GroupChangeBody, op: OpRename) -> _Next:
    return op.name, dict(view.members), dict(view.admins)


def _create(view: GroupView, body: GroupChangeBody, op: OpCreate) -> _Next:
    raise ChangeRefused("a group is created once, at epoch 0", BAD_CHANGE)


def _check_fingerprints(suite: Suite, member: GroupMember) -> None:
    if any(len(d.fp) != suite.kdf.hash_len for d in member.devices):
        raise ChangeRefused("a member device fingerprint has the wrong size", BAD_CHANGE)


def _without(view: GroupView, address: str) -> _Next:
    members = {a: m for a, m in view.members.items() if a != address}
    admins = {a: e for a, e in view.admins.items() if a != address}
    return view.name, members, admins


Rule = Callable[[GroupView, GroupChangeBody, Any], _Next]
RULES: Final[dict[type, tuple[bool, Rule]]] = {
    OpCreate: (True, _create),
    OpAdd: (True, _add),
    OpRemove: (True, _remove),
    OpPromote: (True, _promote),
    OpLeave: (False, _leave),
    OpRename: (True, _rename),
}
"""operation class -> (needs an admin signer, rule returning the next name/members/admins)."""


# --- verification -------------------------------------------------------------------------


def _check_signature(suite: Suite, fingerprint: bytes, change: GroupChange) -> None:
    """The change's key is the one ``fingerprint`` names and its signature verifies."""
    if not constant_time_equal(key_fingerprint(suite, change.key), fingerprint):
        raise ForgedChange()
    try:
        suite.sig.verify(change.key, encode(change.body), change.sig, labels.CTX_GROUP_CHANGE)
    except SuiteError:
        raise ForgedChange() from None


def verify_change(parent: GroupView, change: GroupChange) -> GroupView:
    """The view ``change`` leads to from ``parent``; :class:`ChangeRefused` (or a subclass)
    if any rule of the module docstring fails. ``parent.hash`` must equal ``body.parent``
    (the caller looked the parent up by it)."""
    body, suite = change.body, parent.suite
    if body.v != suite.suite_id or body.group != parent.group:
        raise ChangeRefused("change for another group or suite", WRONG_GROUP)
    if body.epoch != parent.epoch + 1:
        raise ChangeRefused("epoch is not the parent's plus one", BAD_EPOCH)
    fingerprint = parent.device_fingerprint(body.signer, body.device)
    if fingerprint is None:
        raise ChangeRefused("the signer is not a member device", UNKNOWN_SIGNER)
    _check_signature(suite, fingerprint, change)
    needs_admin, rule = RULES[type(body.op)]
    if needs_admin and not parent.is_admin(body.signer):
        raise NotAdmin()
    name, members, admins = rule(parent, body, body.op)
    return make_view(
        suite, parent.group, body.epoch, change_id(suite, change), name, members, admins
    )


def verify_create(change: GroupChange) -> GroupView:
    """The first view of a group from its creation change (epoch 0, no parent)."""
    body = change.body
    try:
        suite = get_suite_by_id(body.v)
    except SuiteError:
        raise ChangeRefused("unknown suite", WRONG_GROUP) from None
    op = body.op
    if not isinstance(op, OpCreate) or body.epoch != 0 or body.parent:
        raise ChangeRefused("not a creation change", BAD_CHANGE)
    members = {m.address: m for m in op.members}
    if len(members) != len(op.members):
        raise ChangeRefused("a member is listed twice", BAD_CHANGE)
    for member in op.members:
        _check_fingerprints(suite, member)
    creator = members.get(body.signer)
    fp = next((d.fp for d in creator.devices if d.id == body.device), None) if creator else None
    if fp is None:
        raise ChangeRefused("the creator is not a member device", UNKNOWN_SIGNER)
    _check_signature(suite, fp, change)
    head = change_id(suite, change)
    return make_view(suite, body.group, 0, head, op.name, members, {body.signer: 0})


# --- making changes -----------------------------------------------------------------------


def key_fingerprint(suite: Suite, key: bytes) -> bytes:
    """``Hash(GROUP_DEVICE_KEY_INFO || key)``: how a state names a device's signing key."""
    return suite.kdf.hash(labels.GROUP_DEVICE_KEY_INFO + key)


def member_of(suite: Suite, address: str, devices: Mapping[int, bytes]) -> GroupMember:
    """A member entry from ``{device id: identity signing public key}``."""
    entries = tuple(
        GroupDevice(id=i, fp=key_fingerprint(suite, devices[i])) for i in sorted(devices)
    )
    return GroupMember(address=address, devices=entries)


def sign_change(identity: Identity, body: GroupChangeBody) -> GroupChange:
    sig = identity.sign(encode(body), labels.CTX_GROUP_CHANGE)
    return GroupChange(body=body, key=identity.public.sig, sig=sig)


def make_change(
    parent: GroupView, identity: Identity, address: str, device: int, op: GroupOp
) -> GroupChange:
    """A change of ``parent`` signed by ``identity`` (the device ``address``/``device``)."""
    body = GroupChangeBody(
        v=parent.suite.suite_id,
        group=parent.group,
        epoch=parent.epoch + 1,
        parent=parent.hash,
        signer=address,
        device=device,
        op=op,
    )
    return sign_change(identity, body)


def create_group(
    identity: Identity,
    address: str,
    device: int,
    name: str,
    others: tuple[GroupMember, ...],
    entropy: Entropy,
) -> GroupChange:
    """The creation change of a new group (random 16-byte id): the creator (this device
    only) and ``others``; the creator is the only admin."""
    creator = member_of(identity.suite, address, {device: identity.public.sig})
    body = GroupChangeBody(
        v=identity.suite.suite_id,
        group=entropy.random_bytes(GROUP_ID_LEN),
        epoch=0,
        parent=b"",
        signer=address,
        device=device,
        op=OpCreate(name=name, members=(creator, *others)),
    )
    return sign_change(identity, body)
