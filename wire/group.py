"""Group formats (DESIGN section 4, "Groups"; the protocol is in docs/groups.md).

Two families, both carried end to end only (inside pairwise sessions, or, for a sender-key
message, inside whatever sealed layer the transport puts around it):

- administration: a :class:`GroupChange` is a :class:`GroupChangeBody` (group id, suite,
  epoch, parent state hash, signer, one operation) signed by the signer's identity key under
  ``CTX_GROUP_CHANGE``. :class:`GroupStateBody` is what a state hash is computed over. The
  state holds key fingerprints, not keys, so a 1000-member state stays small (a cnsa2
  identity key is 2689 bytes).
- sender keys: a :class:`SenderKeyDistribution` hands a member's current chain (id,
  iteration, chain key, signing public key) to another member over a pairwise session; a
  :class:`SenderKeyMessage` is one group message, signed by the chain's signing key over a
  :class:`SenderKeySigned` under ``CTX_SENDER_KEY_MESSAGE``.

Signatures are over the canonical encoding of a payload message, never over ad-hoc
concatenations (as in ``wire.e2e``).
"""

from __future__ import annotations

from typing import Annotated, Final

from wire.e2e import Address, DeliveryToken, DeviceId, Key, Sig, Suite
from wire.schema import message
from wire.types import U32, Bytes16, MaxLen, MinLen

MAX_MEMBERS: Final = 1000
"""Members of one group (the creation change lists at most this many)."""
MAX_DEVICES: Final = 16
"""Devices of one account, so of one member; the node serves at most this many bundles of
an address (``trust.limits`` tells why 16)."""
MAX_GROUP_NAME: Final = 255
"""Bytes of UTF-8 in a group's name."""
MAX_HISTORY: Final = 65_536
"""Changes in one :class:`GroupHistory` (the decoder's array bound)."""
MAX_SKIPPED_KEYS: Final = 2000
"""Skipped message keys kept per receiving chain (``client.groups`` enforces it)."""

GroupId = Bytes16
ChainId = Bytes16
Hash = Annotated[bytes, MaxLen(64)]
ChainKey = Annotated[bytes, MinLen(32), MaxLen(64)]
GroupName = Annotated[str, MaxLen(MAX_GROUP_NAME)]
Body = Annotated[bytes, MaxLen(1 << 22)]


# --- members ------------------------------------------------------------------------------


@message("group.device")
class GroupDevice:
    """One device of a member: its device id and the fingerprint of its hybrid identity
    signing public key (``IdentityKey.sig``): ``Hash(GROUP_DEVICE_KEY_INFO || key)`` with
    the suite's hash. A change the device signs carries the key itself."""

    id: DeviceId
    fp: Hash


@message("group.member")
class GroupMember:
    """A member: an address and its devices (ids unique, at least one)."""

    address: Address
    devices: Annotated[tuple[GroupDevice, ...], MinLen(1), MaxLen(MAX_DEVICES)]

    def __post_init__(self) -> None:
        ids = [d.id for d in self.devices]
        if len(set(ids)) != len(ids):
            raise ValueError("device ids of a member must be unique")


@message("group.admin")
class GroupAdmin:
    """An admin and the epoch at which it became one (its seniority; lower is senior)."""

    address: Address
    since: U32


# --- operations (one per change) ----------------------------------------------------------


@message("group.op.create")
class OpCreate:
    """Epoch 0: the name and the first members; the signer is the first (only) admin."""

    name: GroupName
    members: Annotated[tuple[GroupMember, ...], MinLen(1), MaxLen(MAX_MEMBERS)]


@message("group.op.add")
class OpAdd:
    member: GroupMember


@message("group.op.remove")
class OpRemove:
    address: Address


@message("group.op.promote")
class OpPromote:
    address: Address


@message("group.op.leave")
class OpLeave:
    """The signer's own member leaves (the only change a non-admin may sign)."""

    address: Address


@message("group.op.rename")
class OpRename:
    name: GroupName


GroupOp = OpCreate | OpAdd | OpRemove | OpPromote | OpLeave | OpRename


# --- changes and state --------------------------------------------------------------------


@message("group.change-body")
class GroupChangeBody:
    """What the signer signs. ``parent`` is the state hash the change applies to (empty for
    the creation, epoch 0); ``epoch`` is the parent's epoch plus one."""

    v: Suite
    group: GroupId
    epoch: U32
    parent: Hash
    signer: Address
    device: DeviceId
    op: OpCreate | OpAdd | OpRemove | OpPromote | OpLeave | OpRename


@message("group.change")
class GroupChange:
    """A signed change: ``key`` is the signer device's identity signing public key (its
    fingerprint must be the one the parent state holds for that device) and ``sig`` its
    hybrid signature over ``encode(body)`` under ``CTX_GROUP_CHANGE``."""

    body: GroupChangeBody
    key: Key
    sig: Sig


@message("group.history")
class GroupHistory:
    """Changes of one group (any order): a welcome for a new member, or a stored group."""

    changes: Annotated[tuple[GroupChange, ...], MinLen(1), MaxLen(MAX_HISTORY)]


@message("group.state")
class GroupStateBody:
    """The input of a state hash: everything a state is, members and admins sorted by
    address, and ``head`` the id of the change that produced it."""

    v: Suite
    group: GroupId
    epoch: U32
    head: Hash
    name: GroupName
    members: Annotated[tuple[GroupMember, ...], MaxLen(MAX_MEMBERS)]
    admins: Annotated[tuple[GroupAdmin, ...], MaxLen(MAX_MEMBERS)]


# --- group delivery tokens (issue 20; docs/groups.md section 9) -------------------------------

MAX_TOKEN_ENTRIES: Final = MAX_MEMBERS * MAX_DEVICES
"""Member device tokens in one :class:`GroupTokens` (one per member device at most)."""
MailboxId = Bytes16


@message("group.member-token")
class MemberToken:
    """The group delivery token a member device registered with its node
    (``SetGroupToken``) for one group, and the mailbox it opens. ``serial`` counts the
    owner's tokens for the group: a higher serial replaces a lower one (a rotation)."""

    address: Address
    device: DeviceId
    mailbox: MailboxId
    token: DeliveryToken
    serial: U32


@message("group.tokens")
class GroupTokens:
    """Member tokens of group ``group``, a pairwise payload: a member's report of its own
    token (to the admins), or an admin's publication of the members' tokens (to the member
    devices of the current state only)."""

    group: GroupId
    tokens: Annotated[tuple[MemberToken, ...], MinLen(1), MaxLen(MAX_TOKEN_ENTRIES)]


# --- sender keys --------------------------------------------------------------------------


@message("group.sk-dist")
class SenderKeyDistribution:
    """A member's sending chain as of ``iteration``: whoever holds it can read that chain's
    messages from ``iteration`` on, and none before. ``sig_public`` is the chain's signing
    public key (the suite's hybrid signature)."""

    v: Suite
    group: GroupId
    chain: ChainId
    iteration: U32
    key: ChainKey
    sig_public: Key


@message("group.sk-signed")
class SenderKeySigned:
    """What a sender-key message's signature covers."""

    v: Suite
    group: GroupId
    chain: ChainId
    iteration: U32
    c: Body


@message("group.sk-msg")
class SenderKeyMessage:
    """One group message: AES-256-GCM ciphertext of the padded content under the message key
    of ``iteration`` in chain ``chain``, signed by the chain's signing key."""

    v: Suite
    group: GroupId
    chain: ChainId
    iteration: U32
    c: Body
    sig: Sig


@message("group.sk-aad")
class SenderKeyAad:
    """The associated data of a sender-key message's AEAD."""

    v: Suite
    group: GroupId
    chain: ChainId
    iteration: U32
