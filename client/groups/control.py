"""Group control messages inside pairwise sessions (a proposal for ``client.content``).

A :class:`GroupControl` is what a device sends to another member device over their pairwise
session for a group: a signed change, a welcome (the group's history) or its sender-key
distribution. It is a sibling of ``client.content.Content``: a receiver decodes a pairwise
plaintext as ``decode(plaintext, (Content, GroupControl))`` and hands a ``GroupControl`` to
:meth:`client.groups.Group.receive_control` (or to ``Group.join`` for a welcome to a group
it does not have yet).
"""

from __future__ import annotations

from client.groups.errors import GroupError
from wire import Bytes16, WireError, decode, encode, message
from wire.group import GroupChange, GroupHistory, SenderKeyDistribution


@message("client.group-control")
class GroupControl:
    """``group`` is the group id (so a receiver finds the group before decoding further)."""

    group: Bytes16
    body: GroupChange | GroupHistory | SenderKeyDistribution


class BadControl(GroupError):
    code = "group.bad_control"


def pack_control(group: bytes, inner: bytes) -> bytes:
    """Wrap the bytes ``Group`` produced (a change, a welcome or a distribution)."""
    try:
        body = decode(inner, (GroupChange, GroupHistory, SenderKeyDistribution))
    except WireError:
        raise BadControl("not a group change, welcome or distribution") from None
    return encode(GroupControl(group=group, body=body))


def unpack_control(plaintext: bytes) -> GroupControl:
    """The control message in a pairwise plaintext; :class:`BadControl` if it is not one."""
    try:
        return decode(plaintext, GroupControl)
    except WireError:
        raise BadControl("not a group control message") from None
