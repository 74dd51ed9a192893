"""The anchor of a group's meeting (issue 18, "across domains, cascaded"): a device that
joins a meeting hosted from another domain enters the room naming the host's domain, so
its own node joins the room there; the host's domain and a meeting hosted at home name
none (``EnterRoom.anchor``)."""

from __future__ import annotations

from collections import deque

from client.meetings.group import LISTEN_MS, EnterRoom, GroupMeeting, Me
from tests.client.meetings.kit import T0, Draws, Person, verify
from tests.client.meetings.test_group import GROUP, World

HOST = "ann@alpha.example"
SAME = "bob@alpha.example"
OTHER = "cat@Bravo.Example"


class Domains(World):
    """:class:`World` over addresses of several domains."""

    def __init__(self, addresses: list[str]) -> None:  # (the base names one domain)
        self.people = {a: Person(a.split("@")[0]) for a in addresses}
        self.random = Draws()
        self.devices = {
            address: GroupMeeting(
                GROUP, Me(address, 1, p.key, p, verify), lambda: list(self.people), self.random
            )
            for address, p in self.people.items()
        }
        self.events = {a: [] for a in self.people}
        self.queue = deque()
        self.offline = set()


def test_a_joiner_of_another_domain_names_the_hosts_domain() -> None:
    world = Domains([HOST, SAME, OTHER])
    world.host(HOST, T0)
    world.start(SAME, T0 + LISTEN_MS + 10)
    world.start(OTHER, T0 + LISTEN_MS + 20)
    world.tick(T0 + LISTEN_MS + 1500)
    anchors = {a: [e.anchor for e in world.of(a, EnterRoom)] for a in world.people}
    assert anchors == {HOST: [""], SAME: [""], OTHER: ["alpha.example"]}
    rooms = {e.room for a in world.people for e in world.of(a, EnterRoom)}
    assert len(rooms) == 1
