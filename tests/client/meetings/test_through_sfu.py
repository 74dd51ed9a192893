"""The pure pieces of a meeting together: SFrame under meeting keys, datagrams through the
forwarding core, frame signatures at the receivers. A member that forges frames under
another's pid gets them forwarded (the node cannot tell) and decrypted (every member holds
the epoch secret), and every receiver catches it; one that uses another's node sender id
is dropped by the node (issue 18, "Done when")."""

from __future__ import annotations

from client.meetings import Failure, FrameSigner, FrameVerifier, MeetingCrypto, StreamReport
from client.meetings.frameauth import SIGN_INTERVAL_MS
from node.sfu import DropReason, Sfu
from suites import sframe
from tests.client.meetings.kit import MID, T0, Net, verify
from wire.media import (
    MediaHeader,
    MediaKind,
    StreamId,
    decode_datagram,
    encode_datagram,
    frame_metadata,
)

NODE_ID = {0: 100, 1: 101, 2: 102, 3: 103}  # pid -> the sender id the node assigned


def datagram(node_sender: int, frame: int, protect: object, level: int = 10) -> bytes:
    header = MediaHeader(
        StreamId(node_sender, MediaKind.AUDIO), group=frame, object=0, frame=frame, packet=0,
        packets=1, keyframe=True, audio_level=level, voice=True,
    )  # fmt: skip
    assert callable(protect)
    return encode_datagram(header, protect(frame_metadata(header), b"opus %d" % frame))


def test_a_forger_is_forwarded_decrypted_and_caught_by_every_receiver() -> None:
    net = Net(4)
    crypto = {pid: MeetingCrypto(m) for pid, m in net.members.items()}
    fps = {p.pid: p.fp for p in net.leader.participants}
    verifiers = {pid: FrameVerifier(MID, verify, fps.get) for pid in (0, 3)}
    sfu = Sfu(T0)
    for pid, sender in NODE_ID.items():
        sfu.join(f"conn-{pid}", sender, ())
    # the forger derives the victim's key (it holds the epoch secret) and its own counters
    victim_kid = (3 << 32) | 1
    base = net.members[2].recv_key(victim_kid)
    assert base is not None
    forge_ctx = sframe.SFrameContext(sframe.AES_256_GCM_SHA512_128)
    forge_ctx.add_send_key(victim_kid, base, next_ctr=500)

    def forge(metadata: bytes, plaintext: bytes) -> bytes:
        return forge_ctx.protect(victim_kid, metadata, b"evil " + plaintext)

    victim = net.people[1]
    signer = FrameSigner(MID, 1, victim.key, victim)
    signatures = []
    now = T0
    for frame in range(40):  # audio flows once the first 300 ms have ranked the speakers
        now += 20
        honest = datagram(NODE_ID[1], frame, crypto[1].protect)
        forged = datagram(NODE_ID[2], frame, forge, level=5)
        stolen = datagram(NODE_ID[1], frame + 100, forge)  # the victim's node id: refused
        assert sfu.on_datagram("conn-2", stolen) == ()
        for pid_from, data in ((1, honest), (2, forged)):
            header, payload = decode_datagram(data)
            if pid_from == 1:
                signatures += signer.add(0, 0, 3, header.frame, payload, now)
            for dest in sfu.on_datagram(f"conn-{pid_from}", data):
                rx = int(str(dest).removeprefix("conn-"))
                if rx not in verifiers:
                    continue
                got = decode_datagram(data)[0]
                pid, epoch, _ = crypto[rx].unprotect(payload, frame_metadata(got))
                assert pid == 1  # both streams claim the victim, and both decrypt
                verifiers[rx].on_frame((pid, 0, 0), epoch, got.frame, payload, now)
        sfu.tick(now)
    signatures += signer.tick(now + SIGN_INTERVAL_MS)
    assert sfu.stats().drops[DropReason.STREAM_NOT_BOUND] == 40
    assert sfu.stats().forwarded > 0
    for rx, verifier in verifiers.items():
        for sig in signatures:
            verifier.on_signature(sig, now)
        assert verifier.tick(now) == [StreamReport((1, 0, 0), Failure.FORGED_FRAME)], rx
