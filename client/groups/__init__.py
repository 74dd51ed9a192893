"""Group messaging, client side (DESIGN section 4 "Groups"; docs/groups.md).

- :mod:`client.groups.changes`: one state view, the rule table, signing and checking changes;
- :mod:`client.groups.state`: the tree of changes and the ordering rule (:class:`GroupState`);
- :mod:`client.groups.senderkeys`: sender-key chains and messages (:class:`SenderKeys`);
- :mod:`client.groups.group`: both for one device (:class:`Group`), the API a shell drives;
- :mod:`client.groups.control`: the pairwise payload carrying changes, welcomes and
  distributions (:class:`GroupControl`);
- :mod:`client.groups.records`, :mod:`client.groups.errors`.

Pure: randomness comes in as an :class:`~client.entropy.Entropy`; nothing here reads a clock
or touches the network or the disk.
"""

from client.groups.changes import (
    RULES,
    GroupView,
    change_id,
    create_group,
    key_fingerprint,
    make_change,
    member_of,
    verify_change,
)
from client.groups.control import BadControl, GroupControl, pack_control, unpack_control
from client.groups.errors import (
    ChangeRefused,
    DistributionRefused,
    ForgedChange,
    GroupError,
    NotAdmin,
    NotMember,
    RotationNeeded,
    SenderKeyError,
    TooLarge,
)
from client.groups.group import Group
from client.groups.senderkeys import MAX_SKIP, GroupMessage, SenderKeys
from client.groups.state import MAX_PENDING, ApplyResult, GroupState

__all__ = [
    "MAX_PENDING",
    "MAX_SKIP",
    "RULES",
    "ApplyResult",
    "BadControl",
    "ChangeRefused",
    "DistributionRefused",
    "ForgedChange",
    "Group",
    "GroupControl",
    "GroupError",
    "GroupMessage",
    "GroupState",
    "GroupView",
    "NotAdmin",
    "NotMember",
    "RotationNeeded",
    "SenderKeyError",
    "SenderKeys",
    "TooLarge",
    "change_id",
    "create_group",
    "key_fingerprint",
    "make_change",
    "member_of",
    "pack_control",
    "unpack_control",
    "verify_change",
]
