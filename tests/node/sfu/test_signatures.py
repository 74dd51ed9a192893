"""Signature datagrams in the meeting forwarding core (``wire.media.TYPE_SIGNATURE``; issue
18, "each sender signs, at intervals, a hash of its recent frames"): one goes to exactly the
receivers of the track it covers, silent or not; it is never speech for the speaker
detector and never switches a layer; a stream's binding to its connection still holds."""

from __future__ import annotations

from node.sfu import DropReason, Sfu, VideoRequest
from tests.node.sfu.kit import T0, audio, conn, meeting, speak, video
from wire.media import MediaKind, StreamId, encode_datagram, signature_header

SIGNATURE_SLICE = b"a slice of a FrameSignature, never read by the node"


def signature(
    sender: int, kind: MediaKind = MediaKind.AUDIO, layer: int = 0, index: int = 0
) -> bytes:
    """Packet 0 of 3 of signature ``index`` over the track (sender, kind, layer)."""
    header = signature_header(StreamId(sender, kind, layer), index, 0, 3)
    return encode_datagram(header, SIGNATURE_SLICE)


def test_an_audio_signature_goes_where_the_audio_goes() -> None:
    sfu = meeting(7)
    speak(sfu, {1: 5, 2: 10, 3: 20, 4: 30, 5: 40}, intervals=4)
    for s in range(1, 8):
        dests = sfu.on_datagram(conn(s), signature(s))
        assert dests == sfu.on_datagram(conn(s), audio(s, 50)), s
        assert set(dests) == {conn(r) for r in range(1, 8) if s in sfu.receiving(conn(r))[0]}
    assert sfu.on_datagram(conn(6), signature(6)) == ()  # nobody gets 6: dropped, not silence
    assert sfu.stats().drops[DropReason.NOT_SELECTED] >= 1
    assert sfu.stats().drops[DropReason.SILENCE] == 0


def test_a_signature_of_a_silent_selected_speaker_still_goes() -> None:
    sfu = meeting(3)
    speak(sfu, {1: 10})
    assert sfu.on_datagram(conn(1), audio(1, voice=False)) == ()  # its silence is dropped
    assert sfu.on_datagram(conn(1), signature(1)) == (conn(2), conn(3))  # its signature not
    assert sfu.stats().drops[DropReason.SILENCE] == 1


def test_signatures_are_no_speech() -> None:
    sfu = meeting(4)
    now = speak(sfu, {1: 10, 2: 20}, intervals=4)
    assert sfu.speakers.ranked[:2] == (1, 2)
    for _ in range(6):  # many signature datagrams from 1 do not dilute its level,
        for _ in range(15):  # and none from 3 (silent) make it a speaker
            for sender, level in ((1, 10), (2, 20)):
                sfu.on_datagram(conn(sender), audio(sender, level))
            for _ in range(4):
                sfu.on_datagram(conn(1), signature(1))
                sfu.on_datagram(conn(3), signature(3))
        now += 300
        sfu.tick(now)
    assert sfu.speakers.dominant == 1
    assert sfu.speakers.ranked == (1, 2)


def test_a_video_signature_follows_its_layer_and_switches_nothing() -> None:
    sfu = Sfu(T0)
    sfu.join("a", 1)
    sfu.join("b", 2)
    sfu.request("b", VideoRequest(1, 180))
    sfu.on_datagram("a", video(1, 0, keyframe=True))
    assert sfu.on_datagram("a", signature(1, MediaKind.VIDEO, 0)) == ("b",)
    assert sfu.on_datagram("a", signature(1, MediaKind.VIDEO, 2)) == ()
    sfu.request("b", VideoRequest(1, 720))  # b now waits for a keyframe of layer 2
    assert sfu.on_datagram("a", signature(1, MediaKind.VIDEO, 2)) == ()
    assert sfu.receiving("b")[1:] == ({1: 0}, {1: 2})  # a signature is no keyframe
    assert sfu.on_datagram("a", signature(1, MediaKind.VIDEO, 0, index=1)) == ("b",)
    assert sfu.on_datagram("a", video(1, 2, keyframe=True, frame=4)) == ("b",)
    assert sfu.on_datagram("a", signature(1, MediaKind.VIDEO, 2, index=1)) == ("b",)
    assert sfu.on_datagram("a", signature(1, MediaKind.VIDEO, 0, index=2)) == ()
    assert sfu.on_datagram("a", signature(1, MediaKind.AUDIO)) == ()  # b gets no audio yet
    assert sfu.stats().switches == 2  # the two keyframes, not the signatures


def test_a_signature_under_another_connections_stream_is_dropped() -> None:
    sfu = meeting(3)
    speak(sfu, {1: 10})
    assert sfu.on_datagram(conn(2), signature(1)) == ()  # 2 signs as 1
    assert sfu.on_datagram("stranger", signature(1)) == ()
    assert sfu.on_datagram(conn(1), signature(99)) == ()
    assert sfu.stats().drops[DropReason.STREAM_NOT_BOUND] == 3
    assert sfu.on_datagram(conn(1), signature(1)) == (conn(2), conn(3))


def test_signatures_count_as_received_and_forwarded() -> None:
    sfu = meeting(3)
    speak(sfu, {1: 10})
    before = sfu.stats()
    data = signature(1)
    sfu.on_datagram(conn(1), data)
    after = sfu.stats()
    assert after.received == before.received + 1
    assert after.forwarded == before.forwarded + 2
    assert after.forwarded_bytes == before.forwarded_bytes + 2 * len(data)
