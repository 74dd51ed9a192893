"""A 200-person meeting through the forwarding core, simulated for a few seconds: four
people talk, everyone asks for four videos; every participant ends up with the dominant
speaker and the 3 loudest others, its requested videos at keyframe-clean layers, and the
layers nobody watches paused (issue 18, "Done when", at the level of the core)."""

from __future__ import annotations

from node.sfu import AUDIO_STREAMS, KeyframeRequest, LayerNotice, Sfu, VideoRequest
from tests.node.sfu.kit import T0, audio, conn, video

PEOPLE = 200
TALKERS = {7: 4, 42: 12, 99: 20, 150: 30}  # sender -> RFC 6464 level (lower is louder)


def test_two_hundred_people_four_speakers() -> None:
    sfu = Sfu(T0)
    notices: list[object] = []
    for s in range(1, PEOPLE + 1):
        notices += sfu.join(conn(s), s)
    for s in range(1, PEOPLE + 1):
        notices += sfu.request(conn(s), VideoRequest(4, 360, budget_kbps=2000))
    paused: dict[tuple[int, int], bool] = {}
    keyframes_wanted: set[tuple[int, int]] = set()
    frame = {s: 0 for s in range(1, PEOPLE + 1)}
    heard: dict[str, set[int]] = {conn(s): set() for s in range(1, PEOPLE + 1)}

    def handle(batch: list[object]) -> None:
        for n in batch:
            if isinstance(n, LayerNotice):
                paused[n.sender, n.layer] = not n.active
            elif isinstance(n, KeyframeRequest):
                keyframes_wanted.add((n.sender, n.layer))

    handle(notices)
    now = T0
    for step in range(150):  # 3 s in 20 ms steps
        now += 20
        for s, level in TALKERS.items():
            for d in sfu.on_datagram(conn(s), audio(s, level, frame=step)):
                heard[d].add(s)
        if step % 5 == 0:  # video at 10 fps from whoever is not paused; keyframes on demand
            for s in range(1, PEOPLE + 1):
                for layer in range(3):
                    if paused.get((s, layer)):
                        continue
                    key = (s, layer) in keyframes_wanted
                    keyframes_wanted.discard((s, layer))
                    frame[s] += 1
                    sfu.on_datagram(conn(s), video(s, layer, keyframe=key, frame=frame[s]))
        handle(sfu.tick(now))

    assert sfu.speakers.dominant == 7
    assert sfu.speakers.ranked[:4] == (7, 42, 99, 150)
    for s in range(1, PEOPLE + 1):
        got, current, waits = sfu.receiving(conn(s))
        expected = [t for t in sfu.speakers.ranked if t != s][:AUDIO_STREAMS]
        assert got == frozenset(expected)
        assert heard[conn(s)] >= set(expected) - {s}
        assert waits == {}  # every switch has happened, at a keyframe
        assert len(current) == 4
        assert s not in current
        on_stage = 7 if s != 7 else 42
        assert current[on_stage] == 1  # the on-stage speaker raised to the 360p ask
    watched = {(t, layer) for r in range(1, PEOPLE + 1)
               for t, layer in sfu.receiving(conn(r))[1].items()}  # fmt: skip
    for (s, layer), is_paused in paused.items():
        assert is_paused == ((s, layer) not in watched)
    stats = sfu.stats()
    assert stats.drops["stream_not_bound"] == 0
    assert stats.forwarded > 0
