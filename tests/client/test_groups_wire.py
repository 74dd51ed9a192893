"""Group formats (wire.group, client.groups.records): canonical round trips and refusals."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from client.groups.records import (
    GroupRecord,
    ReceivingChainRecord,
    SenderKeysRecord,
    SendingChainRecord,
    SkippedKeyRecord,
)
from wire import WireError, decode, encode
from wire.group import (
    GroupChange,
    GroupChangeBody,
    GroupDevice,
    GroupHistory,
    GroupMember,
    OpAdd,
    OpCreate,
    OpLeave,
    OpPromote,
    OpRemove,
    OpRename,
    SenderKeyDistribution,
    SenderKeyMessage,
)

MEMBER = GroupMember(address="a@x.example", devices=(GroupDevice(id=1, fp=b"f" * 32),))
OPS = (
    OpCreate(name="g", members=(MEMBER,)),
    OpAdd(member=MEMBER),
    OpRemove(address="b@x.example"),
    OpPromote(address="b@x.example"),
    OpLeave(address="a@x.example"),
    OpRename(name="new"),
)


def _change(op: object) -> GroupChange:
    body = GroupChangeBody(
        v=1, group=bytes(16), epoch=1, parent=b"p" * 48, signer="a@x.example", device=1, op=op
    )  # type: ignore[arg-type]
    return GroupChange(body=body, key=b"k" * 32, sig=b"s" * 64)


SAMPLES: tuple[object, ...] = (
    *(_change(op) for op in OPS),
    GroupHistory(changes=tuple(_change(op) for op in OPS)),
    SenderKeyDistribution(
        v=2, group=bytes(16), chain=b"c" * 16, iteration=7, key=b"k" * 32, sig_public=b"p" * 40
    ),
    SenderKeyMessage(v=2, group=bytes(16), chain=b"c" * 16, iteration=7, c=b"x" * 10, sig=b"s"),
    GroupRecord(
        address="a@x.example",
        device=1,
        state=GroupHistory(changes=(_change(OPS[0]),)),
        keys=SenderKeysRecord(
            v=2,
            group=bytes(16),
            own=SendingChainRecord(chain=b"c" * 16, iteration=1, key=b"k" * 32, sig_private=b"q"),
            needs_rotation=True,
            chains=(
                ReceivingChainRecord(
                    sender="b@x.example",
                    device=2,
                    chain=b"d" * 16,
                    iteration=3,
                    key=b"k" * 48,
                    sig_public=b"p",
                    skipped=(SkippedKeyRecord(iteration=1, key=b"m" * 48),),
                ),
            ),
        ),
    ),
)


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: type(s).__name__)
def test_round_trip(sample: object) -> None:
    data = encode(sample)
    assert decode(data, type(sample)) == sample
    assert encode(decode(data, type(sample))) == data


def test_member_device_ids_are_unique() -> None:
    with pytest.raises(ValueError, match="unique"):
        GroupMember(address="a@x.example", devices=(MEMBER.devices[0], MEMBER.devices[0]))
    device = msgpack.unpackb(encode(MEMBER.devices[0]))
    raw = ["group.member", 1, {"address": "a@x.example", "devices": [device, device]}]
    with pytest.raises(WireError):
        decode(msgpack.packb(raw), GroupMember)
    one = ["group.member", 1, {"address": "a@x.example", "devices": [device]}]
    assert decode(msgpack.packb(one), GroupMember) == MEMBER  # control
    with pytest.raises(WireError):
        GroupMember(address="a@x.example", devices=())


def test_chain_key_has_a_minimum_size() -> None:
    with pytest.raises(WireError):
        SenderKeyDistribution(
            v=2, group=bytes(16), chain=b"c" * 16, iteration=0, key=b"k" * 8, sig_public=b"p"
        )


@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=200))
def test_arbitrary_bytes_raise_only_wire_errors(data: bytes) -> None:
    for cls in (GroupChange, GroupHistory, SenderKeyDistribution, SenderKeyMessage, GroupRecord):
        with pytest.raises(WireError):
            decode(data, cls)
