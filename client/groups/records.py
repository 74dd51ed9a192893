"""Stored forms of the group core's state (tags ``client.group*``; they never leave the
device). :class:`GroupRecord` holds everything a :class:`~client.groups.group.Group` needs
except the device's identity, which the application keeps with the account; the changes are
verified again on load. Secrets (chain keys, message keys, the chain signing key) are in
here: the application stores the bytes in its encrypted store.
"""

from __future__ import annotations

from typing import Annotated, Final

from wire import U32, Bytes16, MaxLen, message
from wire.e2e import Address, DeviceId, Key, Suite
from wire.group import MAX_DEVICES, MAX_MEMBERS, MAX_SKIPPED_KEYS, ChainKey, GroupHistory

MAX_RECEIVING_CHAINS: Final = 2 * MAX_DEVICES * MAX_MEMBERS


@message("client.group-sending")
class SendingChainRecord:
    chain: Bytes16
    iteration: U32
    key: ChainKey
    sig_private: Key


@message("client.group-skipped")
class SkippedKeyRecord:
    iteration: U32
    key: ChainKey


@message("client.group-receiving")
class ReceivingChainRecord:
    sender: Address
    device: DeviceId
    chain: Bytes16
    iteration: U32
    key: ChainKey
    sig_public: Key
    skipped: Annotated[tuple[SkippedKeyRecord, ...], MaxLen(MAX_SKIPPED_KEYS)]


@message("client.group-keys")
class SenderKeysRecord:
    v: Suite
    group: Bytes16
    own: SendingChainRecord
    needs_rotation: bool
    chains: Annotated[tuple[ReceivingChainRecord, ...], MaxLen(MAX_RECEIVING_CHAINS)]


@message("client.group")
class GroupRecord:
    address: Address
    device: DeviceId
    state: GroupHistory
    keys: SenderKeysRecord
