"""The group transport wrap and its records (docs/groups.md section 8; the package
docstring tells the design): the padded :class:`GroupEnvelope` a sender-key message travels
in, the per-group record this device keeps (:class:`GroupNetRecord`, :class:`NetGroup`), and
the uploads of one group message (:func:`uploads`: one per destination domain)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Annotated, Final

from client.content import GroupKey
from client.entropy import Entropy
from client.groups import Group
from client.groups.state import MAX_RECORD_SIZE
from client.outbox import OutboxShared
from client.records import PeerKey
from client.routing import seal_for_domain
from suites import get_suite_by_id
from suites.errors import DecryptionFailed as AeadFailed
from suites.labels import GROUP_TRANSPORT_AAD
from suites.padding import PaddingError, unpad
from wire import U32, Bytes16, Bytes32, Len, MaxLen, WireError, decode, encode, message
from wire.e2e import Address, DeliveryToken, DeviceId
from wire.federation import MAX_GROUP_RECIPIENTS
from wire.group import MAX_TOKEN_ENTRIES, MemberToken
from wire.relay import MAX_SHARED_RECIPIENTS, SharedRecipient
from wire.server import ServerKeyDocument

TRANSPORT_KEY_LEN: Final = 32
NONCE_LEN: Final = 12
MAX_KEYS: Final = 8
"""Transport keys kept per group (the newest states'), so late messages still open."""
MAX_PENDING: Final = 64
"""Controls (distributions, keys) kept per group until the change they wait for arrives."""
MAX_BODY: Final = 1 << 21
MAX_REVOKE: Final = 8
"""Old group tokens of this device waiting to be revoked (a rotation each; more are
revoked at once when the next is drawn)."""


# --- records --------------------------------------------------------------------------------


@message("client.group-envelope")
class GroupEnvelope:
    """What the nodes carry for a group message (padded): opaque but for its size."""

    nonce: Annotated[bytes, Len(NONCE_LEN)]
    c: Annotated[bytes, MaxLen(MAX_BODY)]


@message("client.group-transport-key")
class TransportKey:
    head: Annotated[bytes, MaxLen(64)]
    epoch: U32
    key: Bytes32


@message("client.group-pending")
class PendingControl:
    """A control (an encoded ``GroupControl``) or a ``GroupKey`` that came before the change
    it needs, from ``sender``/``device``."""

    sender: Address
    device: DeviceId
    control: Annotated[bytes, MaxLen(MAX_RECORD_SIZE)] | None
    key: GroupKey | None


@message("client.group-net")
class GroupNetRecordV1:
    """A group record written before group tokens (read, never written)."""

    group_id: Bytes16
    group: Annotated[bytes, MaxLen(MAX_RECORD_SIZE)] | None
    keys: Annotated[tuple[TransportKey, ...], MaxLen(MAX_KEYS)]
    pending: Annotated[tuple[PendingControl, ...], MaxLen(MAX_PENDING)]
    distributed: tuple[PeerKey, ...]


@message("client.group-token-mark")
class TokenMark:
    """An admin's publication bookkeeping for one member device: ``entry`` is the number
    of the publication that first carried its current token, ``told`` the newest
    publication it was sent."""

    address: Address
    device: DeviceId
    entry: U32
    told: U32


@message("client.group-tokens-state")
class TokenRecord:
    """This device's group token for the group and what it knows of the members' (docs/
    groups.md section 9)."""

    token: DeliveryToken | None
    serial: U32
    registered: bool
    reported: bool
    rotate: bool
    revoke: Annotated[tuple[DeliveryToken, ...], MaxLen(MAX_REVOKE)]
    confirmed: bool
    members: Annotated[tuple[MemberToken, ...], MaxLen(MAX_TOKEN_ENTRIES)]
    marks: Annotated[tuple[TokenMark, ...], MaxLen(MAX_TOKEN_ENTRIES)]
    published: U32


@message("client.group-net", version=2)
class GroupNetRecord:
    """One group of this device (``group`` is ``Group.to_bytes``; ``None`` until joined)."""

    group_id: Bytes16
    group: Annotated[bytes, MaxLen(MAX_RECORD_SIZE)] | None
    keys: Annotated[tuple[TransportKey, ...], MaxLen(MAX_KEYS)]
    pending: Annotated[tuple[PendingControl, ...], MaxLen(MAX_PENDING)]
    distributed: tuple[PeerKey, ...]
    """Member devices that have this device's current sending chain."""
    tokens: TokenRecord


Device = tuple[str, int]


@dataclass
class GroupTokenState:
    """This device's group token for one group and the members' tokens it knows.

    ``token`` is registered with the node (``registered``) before anyone learns it; then
    ``reported`` to the admins (or, on an admin, published). ``rotate`` is set by a removal:
    a new token is due, and the old ones are kept in ``revoke`` until an admin's publication
    carries the new one (``confirmed``). ``members`` maps member devices to their newest
    known token; on an admin, ``entry``/``told`` number what each publication carried
    (see ``tokens``)."""

    token: bytes | None = None
    serial: int = 0
    registered: bool = False
    reported: bool = False
    rotate: bool = False
    revoke: list[bytes] = field(default_factory=list)
    confirmed: bool = False
    members: dict[Device, MemberToken] = field(default_factory=dict)
    entry: dict[Device, int] = field(default_factory=dict)
    told: dict[Device, int] = field(default_factory=dict)
    published: int = 0

    def to_record(self) -> TokenRecord:
        devices = sorted(set(self.entry) | set(self.told))
        return TokenRecord(
            token=self.token,
            serial=self.serial,
            registered=self.registered,
            reported=self.reported,
            rotate=self.rotate,
            revoke=tuple(self.revoke[-MAX_REVOKE:]),
            confirmed=self.confirmed,
            members=tuple(self.members[d] for d in sorted(self.members)),
            marks=tuple(
                TokenMark(address=a, device=d, entry=self.entry.get((a, d), 0),
                          told=self.told.get((a, d), 0))
                for a, d in devices
            ),
            published=self.published,
        )  # fmt: skip

    @classmethod
    def from_record(cls, rec: TokenRecord) -> GroupTokenState:
        return cls(
            token=rec.token,
            serial=rec.serial,
            registered=rec.registered,
            reported=rec.reported,
            rotate=rec.rotate,
            revoke=list(rec.revoke),
            confirmed=rec.confirmed,
            members={(m.address, m.device): m for m in rec.members},
            entry={(m.address, m.device): m.entry for m in rec.marks if m.entry},
            told={(m.address, m.device): m.told for m in rec.marks if m.told},
            published=rec.published,
        )


@dataclass
class NetGroup:
    group_id: bytes
    group: Group | None
    keys: list[TransportKey] = field(default_factory=list)
    pending: list[PendingControl] = field(default_factory=list)
    distributed: set[tuple[str, int]] = field(default_factory=set)
    tokens: GroupTokenState = field(default_factory=GroupTokenState)

    def member_devices(self) -> list[tuple[str, int]]:
        """Every member device of the current state."""
        if self.group is None:
            return []
        return [
            (address, dev.id)
            for address, member in sorted(self.group.state.members.items())
            for dev in member.devices
        ]


# --- the wrap -------------------------------------------------------------------------------


def wrap(suite_id: int, key: bytes, message_bytes: bytes, nonce: bytes) -> bytes:
    """The padded upload body of a sender-key message under transport ``key``."""
    aead = get_suite_by_id(suite_id).aead
    c = aead.seal(key, nonce, message_bytes, GROUP_TRANSPORT_AAD)
    return get_suite_by_id(suite_id).pad(encode(GroupEnvelope(nonce=nonce, c=c)))


def parse(body: bytes) -> GroupEnvelope | None:
    """The group envelope in an envelope body, or ``None`` if it is not one."""
    try:
        return decode(unpad(body), GroupEnvelope, max_size=MAX_BODY + 1024)
    except (PaddingError, WireError):
        return None


def unwrap(suite_id: int, key: bytes, envelope: GroupEnvelope) -> bytes | None:
    try:
        return get_suite_by_id(suite_id).aead.open(
            key, envelope.nonce, envelope.c, GROUP_TRANSPORT_AAD
        )
    except AeadFailed:
        return None


def uploads(
    home: str,
    recipients: dict[str, list[tuple[bytes, bytes | None]]],
    docs: dict[str, ServerKeyDocument],
    body: bytes,
    ttl: int,
    now_ms: int,
    entropy: Entropy,
) -> Iterator[OutboxShared]:
    """One upload per destination domain (split past the per-upload recipient bound): the
    ``home`` domain's as ``SendShared``, another's as a routing layer sealed to it."""
    home = home.lower()
    for domain, members in sorted(recipients.items()):
        step = MAX_SHARED_RECIPIENTS if domain == home else MAX_GROUP_RECIPIENTS
        for start in range(0, len(members), step):
            chunk = members[start : start + step]
            eid = entropy.random_bytes(16)
            shared = tuple(SharedRecipient(mailbox=m, token=t) for m, t in chunk)
            if domain == home:
                yield OutboxShared(eid=eid, ttl=ttl, recipients=shared, body=body, domain="")
                continue
            layer = seal_for_domain(
                docs[domain], now_ms, recipients=chunk, eid=eid, ttl=ttl, body=body
            )
            yield OutboxShared(eid=eid, ttl=ttl, recipients=shared, body=layer, domain=domain)


def describe(ng: NetGroup) -> dict[str, object]:
    """The JSON object ``group list`` prints for one group."""
    assert ng.group is not None  # noqa: S101 - listed groups are joined
    state = ng.group.state
    return {
        "group": ng.group_id.hex(),
        "name": state.name,
        "epoch": state.epoch,
        "members": sorted(state.members),
        "admins": sorted(state.admins),
        "member": ng.group.is_member,
    }
