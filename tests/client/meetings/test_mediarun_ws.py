"""A meeting participant's media on the WebSocket fallback acts on the node's notices as on
QUIC (issue 18; client.meetings.mediarun, client.calls.ws_media): the pushes
``MeetingLayer`` pause and resume a simulcast layer, ``MeetingKeyframe`` is counted, and the
summary counts them (``layer_notices``, ``keyframe_requests``)."""

from __future__ import annotations

from typing import Final

import trio

from client.calls.ws_media import WebSocketMedia
from client.meetings import MeetingLeader
from client.meetings.mediarun import MeetingMedia
from client.net import Connection, Push, serving
from tests.client.meetings.kit import MID, T0, Draws, Person, verify
from tests.client.netfakes import hello, transport_pair
from wire import encode
from wire.media import MediaHeader, MediaKind, decode_datagram
from wire.relay import MeetingKeyframe, MeetingLayer, is_media_message

LEG: Final = bytes(range(16))
SENDER: Final = 7
SECONDS: Final = 1.0
RESUME_AFTER: Final = 0.5


async def test_layer_and_keyframe_pushes_steer_the_sender_on_the_websocket() -> None:
    client_end, node = transport_pair()
    pushes, _ = trio.open_memory_channel[Push](8)
    conn = Connection(client_end, hello(), pushes)
    transport = WebSocketMedia(conn, leg_id=LEG)
    conn.media = transport
    person = Person("ws")
    leader = MeetingLeader(MID, person.entry(0), person.key, person, verify, Draws(), T0)
    media = MeetingMedia(transport, SENDER, leader.member, video=True)
    sent: list[tuple[float, MediaHeader]] = []

    async def node_side() -> None:
        while True:
            data = await node.receive()
            if is_media_message(data):
                sent.append((trio.current_time(), decode_datagram(data)[0]))

    async def steer() -> None:
        await trio.sleep(RESUME_AFTER)
        await node.send(encode(MeetingLayer(LEG, SENDER, 0, True)))

    async with serving(conn), trio.open_nursery() as nursery:
        nursery.start_soon(node_side)
        await node.send(encode(MeetingLayer(LEG, SENDER, 0, False)))  # nobody wants layer 0
        await node.send(encode(MeetingLayer(bytes(16), SENDER, 1, False)))  # another leg's
        await node.send(encode(MeetingKeyframe(LEG, SENDER, 1)))
        nursery.start_soon(steer)
        with trio.fail_after(SECONDS + 5):
            await media.run(SECONDS, trio.Event())
        nursery.cancel_scope.cancel()

    video = [h for _, h in sent if h.stream.kind is MediaKind.VIDEO]
    assert {h.stream.layer for h in video} >= {1}
    assert max(h.frame for h in video if h.stream.layer == 1) > 10
    # layer 0 stopped at once (at most the first frame, before the notice was read) and,
    # resumed, waits for the clip's next keyframe (one every 2 s): none within the run
    assert all(h.frame == 0 for h in video if h.stream.layer == 0)
    assert (media.layer_notices, media.keyframe_requests) == (2, 1)
    assert transport.notices_dropped == 1
    summary = media.summary()
    assert summary["transport"] == "websocket"
    assert (summary["layer_notices"], summary["keyframe_requests"]) == (2, 1)
