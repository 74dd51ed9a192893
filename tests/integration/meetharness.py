"""Meetings of a group run in the test process as ``sealrelay client meet`` runs them
(``client.meetings.session.group_meet``: signalling and the key schedule as pairwise sealed
messages through the node, media over QUIC to the node's SFU)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from client.app import Client
from client.meetings.group import GroupMeeting
from client.meetings.meet import Meet
from client.meetings.session import group_meet


@dataclass
class Seat:
    """One member's ``meet`` in this process."""

    client: Client
    meet: Meet
    lines: list[dict[str, Any]] = field(default_factory=list)

    @property
    def core(self) -> GroupMeeting:
        return self.meet.core

    def opened(self) -> tuple[int, int, int]:
        """(frames that decrypted, frames under no key held, decryption failures)."""
        media = self.meet.rooms[-1].summary()
        decrypted = sum(int(media[k]) for k in ("frames_received", "frames_late"))
        decrypted += int(media["digest_mismatches"])
        return decrypted, int(media["no_key"]), int(media["decrypt_failures"])


def seat(client: Client, group: bytes, seconds: float) -> Seat:
    """``client``'s ``meet`` of ``group`` for ``seconds`` of media, run in this process."""
    lines: list[dict[str, Any]] = []
    meet = group_meet(client, group, video=False, seconds=seconds, emit=lines.append)
    return Seat(client, meet, lines)
