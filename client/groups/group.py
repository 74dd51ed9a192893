"""One device's view of one group: its :class:`GroupState` and its :class:`SenderKeys`
tied together, with the removal rule enforced (docs/groups.md).

Everything goes in and out as bytes; the application carries them:

===============================  ==========================================================
call                             what the application does with the result
===============================  ==========================================================
``Group.create`` / ``propose``   send the change bytes to every member device pairwise
                                 (a new member also gets ``welcome()``)
``receive_change``               (from a pairwise message) look at ``ApplyResult``: after
                                 a removal, ``needs_rotation`` is set
``rotate``                       send the distribution to every remaining member device
``distribution``                 send to a member device that has not got this chain
                                 (a new member: it reads from the current iteration on)
``encrypt``                      upload the bytes once for all member devices
``decrypt``                      (a fanned-out group message) -> sender, device, plaintext
===============================  ==========================================================

Rules: after any change that removes a member from the current state, :meth:`encrypt`
raises :class:`RotationNeeded` until :meth:`rotate`, and the removed member's receiving
chains are dropped; a distribution is accepted only from a member device of the current
state; a device that is no longer a member can neither propose nor encrypt.
"""

from __future__ import annotations

from dataclasses import dataclass

from client.entropy import Entropy
from client.groups import senderkeys
from client.groups.changes import create_group, make_change
from client.groups.control import GroupControl
from client.groups.errors import ChangeRefused, NotMember
from client.groups.records import GroupRecord
from client.groups.senderkeys import GroupMessage, SenderKeys
from client.groups.state import MAX_RECORD_SIZE, ApplyResult, GroupState
from client.identity import Identity
from wire import WireError, decode, encode
from wire.group import GroupChange, GroupHistory, GroupMember, GroupOp


@dataclass(eq=False)
class Group:
    """The group ``state`` as seen by the device ``address``/``device`` and its keys."""

    identity: Identity
    address: str
    device: int
    state: GroupState
    keys: SenderKeys

    # --- construction ---------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        identity: Identity,
        address: str,
        device: int,
        name: str,
        others: tuple[GroupMember, ...],
        entropy: Entropy,
    ) -> tuple[Group, bytes]:
        """A new group with this device as creator and admin; the creation change bytes."""
        change = create_group(identity, address, device, name, others, entropy)
        state = GroupState(change)
        keys = SenderKeys.create(state.suite, state.group_id, entropy)
        return cls(identity, address, device, state, keys), encode(change)

    @classmethod
    def join(
        cls, identity: Identity, address: str, device: int, welcome: bytes, entropy: Entropy
    ) -> Group:
        """This device's group from a welcome (:meth:`welcome` of a member); it must be a
        member of the state the welcome leads to."""
        try:
            history = decode(welcome, GroupHistory, max_size=MAX_RECORD_SIZE)
        except WireError:
            raise ChangeRefused("not a group history", "group.bad_record") from None
        state = GroupState.from_changes(history.changes)
        group = cls(
            identity,
            address,
            device,
            state,
            SenderKeys.create(state.suite, state.group_id, entropy),
        )
        group._check_member()
        return group

    # --- administration -------------------------------------------------------------------

    @property
    def is_member(self) -> bool:
        return self.state.view.device_fingerprint(self.address, self.device) is not None

    @property
    def needs_rotation(self) -> bool:
        return self.keys.needs_rotation

    def _check_member(self) -> None:
        if not self.is_member:
            raise NotMember("this device is not a member of the group")

    def welcome(self) -> bytes:
        """Every change this device holds (forks included, so a late change that builds on
        one is understood by the newcomer too), for a member just added."""
        return encode(self.state.history())

    def propose(self, op: GroupOp) -> tuple[bytes, ApplyResult]:
        """Sign ``op`` on the current state and apply it here; the change bytes to send."""
        self._check_member()
        change = make_change(self.state.view, self.identity, self.address, self.device, op)
        return encode(change), self._applied(self.state.apply(change))

    def receive_change(self, data: bytes) -> ApplyResult:
        """Apply a change from another member; :class:`ChangeRefused` if it does not verify."""
        try:
            change = decode(data, GroupChange)
        except WireError:
            raise ChangeRefused("not a group change", "group.bad_change") from None
        return self._applied(self.state.apply(change))

    def receive_control(
        self, sender: str, device: int, control: GroupControl
    ) -> ApplyResult | None:
        """Dispatch a :class:`GroupControl` from the pairwise session with ``sender``/``device``:
        a change or a history (every change in it) is applied, a distribution taken."""
        if control.group != self.state.group_id:
            raise ChangeRefused("control message for another group", "group.wrong_group")
        body = control.body
        if isinstance(body, GroupChange):
            return self._applied(self.state.apply(body))
        if isinstance(body, GroupHistory):
            return self._applied(self.state.merge(body.changes))
        self.receive_distribution(sender, device, encode(body))
        return None

    def _applied(self, result: ApplyResult) -> ApplyResult:
        if result.removed:
            self.keys.forget(result.removed)
            self.keys.needs_rotation = True
        return result

    # --- sender keys ----------------------------------------------------------------------

    def distribution(self) -> bytes:
        self._check_member()
        return self.keys.distribution()

    def rotate(self, entropy: Entropy) -> bytes:
        self._check_member()
        return self.keys.rotate(entropy)

    def receive_distribution(self, sender: str, device: int, data: bytes) -> None:
        """A distribution that came over the pairwise session with ``sender``/``device``."""
        if self.state.view.device_fingerprint(sender, device) is None:
            raise NotMember(f"{sender} device {device} is not a member of the group")
        self.keys.add_distribution(sender, device, data)

    def encrypt(self, plaintext: bytes) -> bytes:
        self._check_member()
        return self.keys.encrypt(plaintext)

    def decrypt(self, data: bytes) -> GroupMessage:
        return self.keys.decrypt(data)

    # --- persistence ----------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        record = GroupRecord(
            address=self.address,
            device=self.device,
            state=self.state.history(),
            keys=senderkeys.to_record(self.keys),
        )
        return encode(record)

    @classmethod
    def from_bytes(cls, identity: Identity, data: bytes) -> Group:
        """Inverse of :meth:`to_bytes`, given the device's identity."""
        try:
            record = decode(data, GroupRecord, max_size=MAX_RECORD_SIZE)
        except WireError:
            raise ChangeRefused("not a stored group", "group.bad_record") from None
        state = GroupState.from_changes(record.state.changes)
        keys = senderkeys.from_record(record.keys)
        return cls(identity, record.address, record.device, state, keys)
