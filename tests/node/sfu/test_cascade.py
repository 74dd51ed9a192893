"""Meetings cascaded across domains (issue 18, "across domains, cascaded"): nested cores
joined by links carry one copy per domain of what the far side needs, audio selection
stays global, and a bad or colliding message is refused and counted, never a crash."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.sfu import KeyframeRequest, LayerNotice, LayerSpec, Sfu
from node.sfu.cascade import Cascade, Port, room_key
from node.sfu.model import DEFAULT_LAYERS
from node.sfu.rooms import MeetingLegs
from tests.node.sfu.cascadekit import ROOM, Net
from tests.node.sfu.kit import T0, video
from wire import WireError
from wire.media_link import (
    LayerChange,
    LinkRoomMessage,
    LinkSender,
    LinkTrack,
    RoomEnd,
    RoomJoin,
    RoomJoined,
    RoomKeyframe,
    RoomLayer,
    RoomRefused,
    SendersAdded,
    SendersRemoved,
    decode_link_traffic,
)
from wire.meeting import MAX_PARTICIPANTS
from wire.relay_meetings import MeetingLayerSpec


def _two() -> Net:
    """Anchor ``a`` (sender 1 on p1), member ``b`` joined with five listeners (10..14)."""
    net = Net("a", "b")
    net["a"].host()
    net["a"].join("a", "p1", 1)
    net["b"].enter("a")
    for s in range(10, 15):
        net["b"].join("a", f"p{s}", s, ())
    return net


def test_the_room_key_of_another_anchor_is_neither_the_room_nor_another_anchors() -> None:
    assert room_key("a.example", ROOM) not in {ROOM, room_key("b.example", ROOM)}
    assert room_key("A.example", ROOM) == room_key("a.example", ROOM)


def test_a_join_of_a_room_that_does_not_exist_is_refused_with_a_code() -> None:
    net = Net("a", "b")
    net["b"].enter("a")
    assert not net["b"].cascade.linked(net["b"].key("a"))
    step = net["a"].cascade.receive("b", RoomJoin(ROOM))
    assert [s.message for s in step.sends] == [RoomRefused(ROOM, "meeting.no_room")]


def test_a_link_is_counted_apart_from_the_participants() -> None:
    net = _two()
    anchor, member = net["a"].cores[ROOM].stats(), net["b"].cores[net["b"].key("a")].stats()
    assert (anchor.participants, anchor.links) == (1, 1)  # p1; b's five come over the link
    assert (member.participants, member.links) == (5, 1)


def test_one_copy_per_domain_on_the_link() -> None:
    net = _two()
    for s in range(10, 15):
        net["b"].request("a", f"p{s}", 1, 180)
    key_b = net["b"].key("a")
    for frame in range(1, 4):
        net["a"].datagram(ROOM, "p1", video(1, 0, keyframe=True, frame=frame))
    assert net.link_datagrams[("a", "b")] == 3  # one copy per datagram, not five
    for s in range(10, 15):
        assert len(net["b"].received[f"p{s}"]) == 3
    assert net["b"].cores[key_b].stats().forwarded == 15


def test_the_link_carries_the_union_of_the_layers_asked_for_and_no_other() -> None:
    net = _two()
    net["b"].request("a", "p10", 1, 180)
    net["b"].request("a", "p11", 1, 720)
    port = Port("b", ROOM)
    assert net["a"].cores[ROOM].subscriptions(port) == {(1, 0), (1, 2)}
    assert LayerNotice("p1", 1, 1, False) in net["a"].notices  # paused at the sender
    assert LayerNotice("p1", 1, 2, True) in net["a"].notices
    for layer in range(3):
        net["a"].datagram(ROOM, "p1", video(1, layer, keyframe=True))
    assert net.link_datagrams[("a", "b")] == 2
    net["b"].request("a", "p11", 0)
    assert net["a"].cores[ROOM].subscriptions(port) == {(1, 0)}


def test_a_keyframe_request_travels_to_the_real_sender() -> None:
    net = _two()
    net["a"].notices.clear()
    net["b"].request("a", "p10", 1, 180)
    assert KeyframeRequest("p1", 1, 0) in net["a"].notices


def test_audio_is_the_global_top_four_across_nested_cores() -> None:
    net = Net("a", "b")
    net["a"].host()
    net["b"].enter("a")
    levels = {("a", "a", 1): 40, ("a", "a", 2): 60, ("a", "a", 3): 90}
    levels |= {("b", "a", 11): 0, ("b", "a", 12): 50, ("b", "a", 13): 80, ("b", "a", 14): 100}
    for name, _anchor, s in levels:
        net[name].join("a", f"p{s}", s, ())
    net["a"].join("a", "p9", 9, ())  # silent listeners
    net["b"].join("a", "p19", 19, ())
    net.speak(levels, intervals=12)
    loudest = {11, 1, 12, 2}
    assert net["a"].cores[ROOM].receiving("p9")[0] == loudest
    assert net["b"].cores[net["b"].key("a")].receiving("p19")[0] == loudest
    assert net["a"].cores[ROOM].speakers.dominant == 11
    assert net["b"].cores[net["b"].key("a")].speakers.dominant == 11
    assert net["a"].cores[ROOM].receiving("p1")[0] == {11, 12, 2, 13}  # never its own


def test_three_domains_one_copy_on_each_link_and_senders_pass_through_the_anchor() -> None:
    net = Net("a", "b", "c")
    net["a"].host()
    net["b"].enter("a")
    net["c"].enter("a")
    net["c"].join("a", "p30", 30)
    for s in (20, 21):
        net["b"].join("a", f"p{s}", s, ())
        net["b"].request("a", f"p{s}", 1, 180)
    key_b, key_c = net["b"].key("a"), net["c"].key("a")
    assert {s for s, _conn, _l in net["b"].cores[key_b].senders()} == {20, 21, 30}
    net["c"].datagram(key_c, "p30", video(30, 0, keyframe=True))
    assert net.link_datagrams[("c", "a")] == 1
    assert net.link_datagrams[("a", "b")] == 1
    assert len(net["b"].received["p20"]) == len(net["b"].received["p21"]) == 1
    net["c"].leave("a", "p30", [30])
    assert {s for s, _conn, _l in net["b"].cores[key_b].senders()} == {20, 21}


def test_a_colliding_sender_is_refused_and_counted() -> None:
    net = _two()
    before = len(net["a"].cores[ROOM].senders())
    net["a"].handle(
        net["a"].cascade.receive(
            "b", SendersAdded(ROOM, True, (LinkSender(1, ()), LinkSender(99, ())))
        )
    )
    assert net["a"].cascade.refused == 1
    assert len(net["a"].cores[ROOM].senders()) == before + 1
    net["a"].handle(net["a"].cascade.receive("b", SendersAdded(ROOM, True, (LinkSender(99, ()),))))
    assert net["a"].cascade.refused == 2


def test_unknown_and_out_of_place_messages_are_ignored_and_counted() -> None:
    net = _two()
    cascade = net["a"].cascade
    other = bytes(16)
    messages = [
        RoomLayer(other, True, (LayerChange(1, 0, True),)),  # no such room
        RoomLayer(ROOM, True, (LayerChange(12345, 0, True),)),  # no such sender
        RoomLayer(ROOM, True, (LayerChange(1, 3, True),)),  # no such layer
        RoomLayer(ROOM, True, (LayerChange(10, 0, True),)),  # the link's own sender
        SendersRemoved(ROOM, True, (777,)),
        RoomKeyframe(ROOM, False, (LinkTrack(1, 0),)),  # the wrong side's room
        RoomEnd(other, True),
    ]
    for message in messages:
        step = cascade.receive("b", message)
        assert not step.sends
        assert not step.notices
    assert cascade.ignored == len(messages)
    late = cascade.receive("b", RoomJoined(ROOM))  # an answer to a join given up on
    assert [s.message for s in late.sends] == [RoomEnd(ROOM, True)]
    nobody = cascade.receive("nobody", RoomKeyframe(ROOM, True, (LinkTrack(1, 0),)))
    assert nobody.notices == []
    for garbage in (b"", b"\x00", b"\x92\xa1x\x01", bytes(300)):
        with pytest.raises(WireError):
            decode_link_traffic(garbage)


def test_the_member_leaving_takes_its_senders_out_of_the_anchor() -> None:
    net = _two()
    step = net["a"].cascade.receive("b", RoomEnd(ROOM, True))
    assert step.emptied == [ROOM]
    assert {s for s, _c, _l in net["a"].cores[ROOM].senders()} == {1}
    assert not net["a"].cascade.linked(ROOM)


def test_a_link_going_down_ends_its_ports_and_answers_pending_joins() -> None:
    net = _two()
    step = net["a"].cascade.link_down("b")
    assert step.emptied == [ROOM]
    assert {s for s, _c, _l in net["a"].cores[ROOM].senders()} == {1}
    cascade = Cascade(net["b"])
    cascade.join("a", b"k" * 16, ROOM)
    answers = cascade.link_down("a").answers
    assert [(a.key, a.code) for a in answers] == [(b"k" * 16, "call.unreachable")]


def test_the_core_refuses_a_subscription_that_is_not_a_links() -> None:
    sfu = Sfu(T0)
    sfu.join("a", 1, (LayerSpec(180, 150),))
    sfu.join("b", 2, ())
    with pytest.raises(ValueError, match="no such link"):
        sfu.subscribe("b", 1, 0, True)  # b is no link
    sfu.add_link("l")
    with pytest.raises(ValueError, match="in the meeting already"):
        sfu.add_link("l")
    assert sfu.subscriptions("l") == {(1, 0)}
    assert sfu.keyframe("l", 1, 0) == [KeyframeRequest("a", 1, 0)]
    assert sfu.keyframe("l", 1, 2) == []
    assert sfu.remove_sender("l", 1) == []
    sfu.join("l", 5, DEFAULT_LAYERS)
    sfu.remove_sender("l", 5)
    assert 5 not in {s for s, _c, _l in sfu.senders()}
    assert sfu.subscriptions("l") == {(1, 0)}


def test_a_fresh_sender_id_avoids_one_a_link_holds() -> None:
    draws = iter([b"\x01" * 16, b"s" * 32, (1).to_bytes(4, "big"), (2).to_bytes(4, "big")])
    legs = MeetingLegs(lambda n: next(draws))
    legs.taken = lambda room, sender: (room, sender) == (ROOM, 1)
    leg = legs.join("owner", ROOM, (), T0)
    assert legs.bind("conn", leg.leg_id, leg.leg_secret, T0).sender == 2


def test_the_notices_of_a_join_to_a_large_room_go_in_few_messages() -> None:
    net = Net("a", "b")
    net["a"].host()
    for s in range(1, 101):
        net["a"].join("a", f"p{s}", s)
    net["b"].enter("a")
    net["b"].join("a", "p500", 500, ())
    net.tick()
    port = Port("b", ROOM)
    assert net["a"].cores[ROOM].subscriptions(port) == set()  # b needs no video: all paused
    assert net.messages[("a", "SendersAdded")] == 4  # 100 senders, 32 per message
    assert net.messages[("b", "RoomLayer")] <= 8  # 300 layer changes, 64 per message
    # (the kit sends each step's at once, the shell a tick's: fewer still)


def test_a_room_takes_no_more_far_senders_than_its_maximum() -> None:
    net = _two()
    held = len(net["a"].cores[ROOM].senders())
    batches = [
        tuple(LinkSender(1000 + i, ()) for i in range(start, start + 32))
        for start in range(0, MAX_PARTICIPANTS, 32)
    ]
    for batch in batches:
        net["a"].handle(net["a"].cascade.receive("b", SendersAdded(ROOM, True, batch)))
    assert len(net["a"].cores[ROOM].senders()) == MAX_PARTICIPANTS
    assert net["a"].cascade.refused == held


_IDS = st.sampled_from([1, 10, 11, 99, 12345])
_ROOMS = st.sampled_from([ROOM, bytes(16)])
_LAYERS = st.sampled_from([(), tuple(MeetingLayerSpec(x.height, x.kbps) for x in DEFAULT_LAYERS)])
_MESSAGES = st.one_of(
    st.builds(RoomJoin, _ROOMS),
    st.builds(RoomJoined, _ROOMS),
    st.builds(RoomRefused, _ROOMS, st.sampled_from(["meeting.no_room", "x"])),
    st.builds(
        SendersAdded,
        _ROOMS,
        st.booleans(),
        st.lists(st.builds(LinkSender, _IDS, _LAYERS), max_size=3).map(tuple),
    ),
    st.builds(SendersRemoved, _ROOMS, st.booleans(), st.lists(_IDS, max_size=3).map(tuple)),
    st.builds(
        RoomLayer,
        _ROOMS,
        st.booleans(),
        st.lists(st.builds(LayerChange, _IDS, st.integers(0, 3), st.booleans()), max_size=3).map(
            tuple
        ),
    ),
    st.builds(
        RoomKeyframe,
        _ROOMS,
        st.booleans(),
        st.lists(st.builds(LinkTrack, _IDS, st.integers(0, 3)), max_size=3).map(tuple),
    ),
    st.builds(RoomEnd, _ROOMS, st.booleans()),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["a", "b"]), _MESSAGES), max_size=12))
def test_any_run_of_room_messages_leaves_the_cores_consistent(
    run: list[tuple[str, LinkRoomMessage]],
) -> None:
    net = _two()
    for target, message in run:
        source = "b" if target == "a" else "a"
        net[target].handle(net[target].cascade.receive(source, message))
        net.pump()
        for node in (net["a"], net["b"]):
            for key, core in node.cores.items():
                for sender, owner, _layers in core.senders():
                    if isinstance(owner, Port):
                        assert owner.key == key
                        assert node.cascade.route(owner.link, sender) == owner
    net.tick()
