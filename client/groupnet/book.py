"""This device's groups in the store (:class:`GroupBook`): the synchronous part of group
messaging, run inside the client's store transactions. It keeps one record per group
(``NS_GROUPS``), the group transport keys, the controls that came too early, applies the
pairwise :class:`~client.groups.GroupControl` / :class:`~client.content.GroupNote`, and
opens group envelopes (the package docstring tells the transport keys' rules)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from client.content import GroupKey, GroupNote
from client.entropy import Entropy
from client.errors import ClientError
from client.groupnet import tokens
from client.groupnet.transport import (
    MAX_KEYS,
    MAX_PENDING,
    TRANSPORT_KEY_LEN,
    GroupEnvelope,
    GroupNetRecord,
    GroupNetRecordV1,
    GroupTokenState,
    NetGroup,
    PendingControl,
    TransportKey,
    unwrap,
)
from client.groups import (
    Group,
    GroupControl,
    GroupError,
    GroupMessage,
    NotMember,
    change_id,
    key_fingerprint,
)
from client.groups.state import MAX_RECORD_SIZE
from client.records import PeerKey
from client.session import Device
from client.store.base import NS_GROUP_MESSAGES, NS_GROUPS, StateStore
from wire import decode, encode
from wire.group import (
    GroupChange,
    GroupHistory,
    GroupTokens,
    OpLeave,
    OpRemove,
    SenderKeyDistribution,
)

log = logging.getLogger(__name__)


class GroupUnavailable(ClientError):
    """No such group here, or this device may not send in it (not a member, no key yet)."""

    code = "group.unavailable"


class GroupPending(Exception):
    """A group envelope that may open later (its key or distribution has not come yet)."""


# --- the book -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What a control did: ``changed`` the group state or keys; ``refused`` a code."""

    group_id: bytes
    changed: bool
    refused: str | None = None


class GroupBook:
    """This device's groups in the store (one record each, cached)."""

    def __init__(self, store: StateStore, device: Device, entropy: Entropy) -> None:
        self._store = store
        self._device = device
        self._entropy = entropy
        self._cache: dict[bytes, NetGroup] = {}
        self.refused: list[tuple[bytes, str]] = []
        """(group id, code) of every control refused since this book was made."""
        self.wake_tokens: Callable[[], None] = lambda: None
        """Called when a group needs token work (a join, a removal, tokens received)."""

    @property
    def _me(self) -> tuple[str, int]:
        return self._device.address, self._device.device_id

    # --- storage ---

    def get(self, group_id: bytes) -> NetGroup | None:
        if group_id in self._cache:
            return self._cache[group_id]
        raw = self._store.get(NS_GROUPS, group_id)
        if raw is None:
            return None
        size = MAX_RECORD_SIZE + (4 << 20)
        ng = self._from_record(decode(raw, (GroupNetRecord, GroupNetRecordV1), max_size=size))
        self._cache[group_id] = ng
        return ng

    def _from_record(self, rec: GroupNetRecord | GroupNetRecordV1) -> NetGroup:
        identity = self._device.identity
        group = None if rec.group is None else Group.from_bytes(identity, rec.group)
        held = (
            GroupTokenState.from_record(rec.tokens)
            if isinstance(rec, GroupNetRecord)
            else GroupTokenState()
        )
        return NetGroup(
            rec.group_id,
            group,
            list(rec.keys),
            list(rec.pending),
            {(p.address, p.device) for p in rec.distributed},
            held,
        )

    def save(self, ng: NetGroup) -> None:
        """Write ``ng`` (inside the transaction that saved what changed it)."""
        rec = GroupNetRecord(
            group_id=ng.group_id,
            group=None if ng.group is None else ng.group.to_bytes(),
            keys=tuple(ng.keys[-MAX_KEYS:]),
            pending=tuple(ng.pending[-MAX_PENDING:]),
            distributed=tuple(PeerKey(address=a, device=d) for a, d in sorted(ng.distributed)),
            tokens=ng.tokens.to_record(),
        )
        self._store.put(NS_GROUPS, ng.group_id, encode(rec))
        self._cache[ng.group_id] = ng

    def all(self) -> list[NetGroup]:
        found = [self.get(key) for key, _ in self._store.items(NS_GROUPS)]
        return [ng for ng in found if ng is not None and ng.group is not None]

    def mark_message(self, eid: bytes, group_id: bytes) -> None:
        self._store.put(NS_GROUP_MESSAGES, eid, group_id)

    def message_group(self, eid: bytes) -> bytes | None:
        return self._store.get(NS_GROUP_MESSAGES, eid)

    # --- transport keys ---

    def new_key(self, ng: NetGroup) -> GroupKey:
        """A fresh transport key for the current state (after this device's change)."""
        assert ng.group is not None  # noqa: S101 - called right after a propose/create
        head = ng.group.state.chain()[-1]
        gk = GroupKey(
            head=change_id(ng.group.state.suite, head),
            key=self._entropy.random_bytes(TRANSPORT_KEY_LEN),
        )
        self._add_key(ng, TransportKey(head=gk.head, epoch=head.body.epoch, key=gk.key))
        return gk

    @staticmethod
    def _add_key(ng: NetGroup, key: TransportKey) -> None:
        ng.keys = [k for k in ng.keys if k.head != key.head] + [key]
        ng.keys.sort(key=lambda k: k.epoch)
        del ng.keys[:-MAX_KEYS]

    def sending_key(self, ng: NetGroup) -> bytes:
        """The key of the newest state on this device's chain with no removal after it."""
        assert ng.group is not None  # noqa: S101 - the caller checked membership
        held = {k.head: k.key for k in ng.keys}
        suite = ng.group.state.suite
        for change in reversed(ng.group.state.chain()):
            cid = change_id(suite, change)
            if cid in held:
                return held[cid]
            if isinstance(change.body.op, OpRemove | OpLeave):
                break
        raise GroupUnavailable("the transport key of the group's current state has not come")

    def _take_key(self, ng: NetGroup, sender: str, device: int, gk: GroupKey) -> bool:
        """Accept ``gk`` if ``sender``/``device`` signed change ``gk.head`` of the chain;
        keep it for later if that change is not known yet."""
        if ng.group is not None:
            suite = ng.group.state.suite
            for change in ng.group.state.chain():
                if change_id(suite, change) == gk.head:
                    if (change.body.signer, change.body.device) != (sender, device):
                        self.refused.append((ng.group_id, "group.key_not_from_signer"))
                        return False
                    key = TransportKey(head=gk.head, epoch=change.body.epoch, key=gk.key)
                    self._add_key(ng, key)
                    return True
        ng.pending.append(PendingControl(sender=sender, device=device, control=None, key=gk))
        del ng.pending[:-MAX_PENDING]
        return False

    # --- receiving controls ---

    def receive(
        self, sender: str, device: int, payload: GroupControl | GroupNote, peer_sig: bytes
    ) -> Outcome:
        """Apply a pairwise group control from ``sender``/``device`` (whose pairwise
        identity signing key is ``peer_sig``); save the group."""
        note = payload if isinstance(payload, GroupNote) else None
        control = payload.control if isinstance(payload, GroupNote) else payload
        ng = self.get(control.group) or NetGroup(control.group, None)
        refused = self._apply(ng, sender, device, control, peer_sig)
        changed = refused is None
        if note is not None and note.key is not None:
            changed = self._take_key(ng, sender, device, note.key) or changed
        if refused is not None:
            self.refused.append((ng.group_id, refused))
            log.warning("group %s: control refused (%s)", ng.group_id.hex(), refused)
        if ng.group is not None or ng.pending:
            self.save(ng)
        return Outcome(ng.group_id, changed, refused)

    def _apply(
        self, ng: NetGroup, sender: str, device: int, control: GroupControl, peer_sig: bytes
    ) -> str | None:
        body = control.body
        try:
            if ng.group is None:
                return self._first(ng, sender, device, control, peer_sig)
            result = ng.group.receive_control(sender, device, control)
        except NotMember:
            self._keep(ng, sender, device, control)
            return None
        except GroupError as exc:
            return exc.code
        if result is not None and result.removed:
            self.removed(ng)
        if result is not None and isinstance(body, GroupChange | GroupHistory):
            self._retry_pending(ng)
        return None

    def removed(self, ng: NetGroup) -> None:
        """A member left the current state: a new group token is due on this device, and
        the departed devices' tokens are forgotten."""
        if ng.tokens.token is not None:
            ng.tokens.rotate = True
        tokens.drop_departed(ng)
        self.wake_tokens()

    def _first(
        self, ng: NetGroup, sender: str, device: int, control: GroupControl, peer_sig: bytes
    ) -> str | None:
        """A control for a group this device does not have: a welcome joins it (from a
        member device whose fingerprint matches its pairwise identity); a distribution
        waits; anything else is refused."""
        if isinstance(control.body, SenderKeyDistribution):
            self._keep(ng, sender, device, control)
            return None
        if not isinstance(control.body, GroupHistory):
            return "group.unknown_group"
        dev = self._device
        group = Group.join(
            dev.identity, dev.address, dev.device_id, encode(control.body), self._entropy
        )
        fp = group.state.view.device_fingerprint(sender, device)
        if fp is None or fp != key_fingerprint(group.state.suite, peer_sig):
            return "group.welcome_not_from_member"
        ng.group = group
        self._retry_pending(ng)
        self.wake_tokens()
        return None

    @staticmethod
    def _keep(ng: NetGroup, sender: str, device: int, control: GroupControl) -> None:
        ng.pending.append(
            PendingControl(sender=sender, device=device, control=encode(control), key=None)
        )
        del ng.pending[:-MAX_PENDING]

    def _retry_pending(self, ng: NetGroup) -> None:
        """Try the kept distributions and keys again (after a change)."""
        waiting, ng.pending = ng.pending, []
        for item in waiting:
            if item.key is not None:
                self._take_key(ng, item.sender, item.device, item.key)
                continue
            assert item.control is not None  # noqa: S101 - one of the two is set
            control = decode(item.control, GroupControl, max_size=MAX_RECORD_SIZE)
            try:
                assert ng.group is not None  # noqa: S101 - retried only once joined
                ng.group.receive_control(item.sender, item.device, control)
            except NotMember:
                self._keep(ng, item.sender, item.device, control)
            except GroupError as exc:
                self.refused.append((ng.group_id, exc.code))

    # --- group tokens ---

    def receive_tokens(
        self, sender: str, device: int, payload: GroupTokens, peer_sig: bytes
    ) -> bool:
        """Take a report or publication of group tokens from ``sender``/``device`` (whose
        pairwise identity signing key is ``peer_sig``); save the group. Whether it changed
        anything."""
        ng = self.get(payload.group)
        if ng is None or ng.group is None or not ng.group.is_member:
            log.warning("group tokens for a group this device is not in")
            return False
        state = ng.group.state
        fp = state.view.device_fingerprint(sender, device)
        if fp is None or fp != key_fingerprint(state.suite, peer_sig):
            self.refused.append((ng.group_id, "group.tokens_not_from_member"))
            return False
        from_admin = sender in state.admins
        changed, mine = tokens.merge(ng, (sender, device), from_admin, payload.tokens, self._me)
        if mine and not ng.tokens.confirmed:
            ng.tokens.confirmed = True
            changed = True
        if changed:
            self.save(ng)
            self.wake_tokens()
        return changed

    def member_token(self, address: str, device: int) -> bytes | None:
        """A group token of ``address``/``device`` from a group this device is a member of
        (``None`` if none is known): what a sealed envelope to it presents."""
        for ng in self.all():
            assert ng.group is not None  # noqa: S101 - all() returns joined groups only
            entry = ng.tokens.members.get((address, device))
            if entry is not None and ng.group.is_member:
                return entry.token
        return None

    # --- receiving group messages ---

    def open(self, envelope: GroupEnvelope) -> tuple[NetGroup, GroupMessage]:
        """The group and message of a group envelope; :class:`GroupPending` if no key held
        opens it, or its chain is not known (yet)."""
        for ng in self.all():
            group = ng.group
            assert group is not None  # noqa: S101 - all() returns joined groups only
            suite_id = group.state.suite.suite_id
            for key in reversed(ng.keys):
                inner = unwrap(suite_id, key.key, envelope)
                if inner is None:
                    continue
                try:
                    return ng, group.decrypt(inner)
                except GroupError:
                    raise GroupPending("the sender's chain is not known here") from None
        raise GroupPending("no transport key held opens this envelope")
