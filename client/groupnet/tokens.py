"""Group delivery tokens, the pure part (docs/groups.md section 9; issue 20).

Each member device holds one random group token per group, registered with its own node
(``SetGroupToken``) before anyone learns it. It reports the token to the group's admins
(a pairwise :class:`~wire.group.GroupTokens` naming itself); an admin publishes the
tokens it holds to the member devices of the current state only, each device getting the
entries it has not had yet. Every member then reaches every other with a token, never an
introduction. A removal makes every remaining member draw a new token (a higher
``serial``), register it, report it, and revoke the old one once an admin's publication
carries the new one.

Everything here works on a :class:`~client.groupnet.transport.NetGroup` in memory; the
shell (``flows``) registers, sends and saves.
"""

from __future__ import annotations

from typing import Final

from client.entropy import Entropy
from client.groupnet.transport import Device, GroupTokenState, NetGroup
from wire.group import GroupTokens, MemberToken

TOKEN_LEN: Final = 16
PUBLISH_QUIET: Final = 1.0
"""Seconds without a new report after which an admin publishes a partial token list (it
publishes at once when every member device has reported): while the reports of a new
group's members keep coming, one publication carries them all."""
PUBLISH_WAIT: Final = 10.0
"""Seconds after the first unpublished report by which an admin publishes anyway."""
REVOKE_GRACE: Final = 5.0
"""Seconds a member keeps its old token after an admin's publication carried the new one,
so that members who get that publication a little later do not meet a revoked token."""


def admin_devices(ng: NetGroup) -> list[Device]:
    """The member devices of the current state's admins."""
    assert ng.group is not None  # noqa: S101 - joined groups only
    state = ng.group.state
    return [(a, d) for a, d in ng.member_devices() if a in state.admins]


def is_admin(ng: NetGroup, me: Device) -> bool:
    return ng.group is not None and me[0] in ng.group.state.admins


def draw(st: GroupTokenState, entropy: Entropy, me: Device, mailbox: bytes) -> None:
    """A new token for this device (the first, or a rotation): not registered, not reported;
    a registered old one is kept for revocation once the new one is published."""
    if st.token is not None and st.registered:
        st.revoke.append(st.token)
    st.token = entropy.random_bytes(TOKEN_LEN)
    st.serial += 1
    st.registered = st.reported = st.rotate = st.confirmed = False
    st.members[me] = MemberToken(
        address=me[0], device=me[1], mailbox=mailbox, token=st.token, serial=st.serial
    )
    st.entry.pop(me, None)


def own(st: GroupTokenState, me: Device) -> MemberToken | None:
    """This device's current entry (``None`` before it has a token)."""
    return st.members.get(me) if st.token is not None else None


def drop_departed(ng: NetGroup) -> None:
    """Forget the tokens and marks of devices that are no longer members."""
    st = ng.tokens
    current = set(ng.member_devices())
    for table in (st.members, st.entry, st.told):
        for dev in [d for d in table if d not in current]:
            del table[dev]


def merge(
    ng: NetGroup, sender: Device, from_admin: bool, entries: tuple[MemberToken, ...], me: Device
) -> tuple[bool, bool]:
    """Take ``entries`` from ``sender`` (an admin's publication, or a member's own report:
    any other entry of a non-admin is ignored); entries of devices that are not members are
    ignored, a lower or equal serial never replaces a held one. Returns (whether a held
    token changed, whether the entry was this device's current token from an admin)."""
    st = ng.tokens
    current = set(ng.member_devices())
    changed = mine = False
    for entry in entries:
        dev = (entry.address, entry.device)
        if dev not in current or (not from_admin and dev != sender):
            continue
        if dev == me:
            mine = mine or (from_admin and entry.token == st.token and entry.serial == st.serial)
            continue
        held = st.members.get(dev)
        if held is None or entry.serial > held.serial:
            st.members[dev] = entry
            st.entry.pop(dev, None)  # not published in its new form yet
            if dev == sender:
                # its own report: it gets every entry again (it may have missed a
                # publication while it could not open it)
                st.told.pop(dev, None)
            changed = True
    return changed, mine


def complete(ng: NetGroup) -> bool:
    """Every member device has reported a token."""
    return all(dev in ng.tokens.members for dev in ng.member_devices())


def unpublished(ng: NetGroup) -> int:
    """How many entries an admin holds that no publication carried yet."""
    st = ng.tokens
    return sum(1 for dev in st.members if dev not in st.entry)


def publication_due(ng: NetGroup, now: float, first: float, last: float) -> float | None:
    """Seconds until an admin's publication is due (0: now; ``None``: nothing to
    publish), the first unpublished report having come at ``first`` and the newest at
    ``last``: at once when every member device reported, else :data:`PUBLISH_QUIET`
    after the newest, and no later than :data:`PUBLISH_WAIT` after the first."""
    if not unpublished(ng):
        return None
    if complete(ng):
        return 0.0
    return max(0.0, min(last + PUBLISH_QUIET, first + PUBLISH_WAIT) - now)


def publication(ng: NetGroup, me: Device) -> list[tuple[Device, GroupTokens]]:
    """An admin's next publication: for each member device but ``me`` whose token is known
    (the others cannot be reached without an introduction; they get everything once they
    report), the entries it has not been sent yet. Marks them as sent."""
    st = ng.tokens
    number = st.published + 1
    for dev in st.members:
        st.entry.setdefault(dev, number)
    plan = []
    for dev in sorted(st.members):
        if dev == me:
            continue
        told = st.told.get(dev, 0)
        fresh = tuple(st.members[d] for d in sorted(st.members) if st.entry[d] > told)
        if fresh:
            plan.append((dev, GroupTokens(group=ng.group_id, tokens=fresh)))
        st.told[dev] = number
    st.published = number
    return plan
