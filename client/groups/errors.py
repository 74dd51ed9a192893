"""Errors of the group core (all are :class:`client.errors.ClientError`, with stable codes).

    GroupError                  base
    ├── ChangeRefused           a change that does not check out; ``code`` names the rule
    │   ├── ForgedChange        its signature does not verify under the signer's key
    │   └── NotAdmin            signed by a member who may not make it
    ├── NotMember               the local device, or a distribution's sender, is not a member
    ├── RotationNeeded          a member was removed: ``rotate()`` before the next message
    ├── DistributionRefused     a sender-key distribution that does not check out
    ├── TooLarge                a group message above ``MAX_PLAINTEXT``
    └── SenderKeyError          opaque: a sender-key message that does not open (forged,
                                replayed, too far ahead, unknown chain, tampered)

A refused change leaves the group state exactly as it was.
"""

from __future__ import annotations

from client.errors import ClientError


class GroupError(ClientError):
    code = "group.error"


class ChangeRefused(GroupError):
    """A change this member will not apply; ``code`` says which rule it broke."""

    code = "group.change_refused"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class ForgedChange(ChangeRefused):
    code = "group.bad_signature"

    def __init__(self, message: str = "the change's signature does not verify") -> None:
        super().__init__(message)


class NotAdmin(ChangeRefused):
    code = "group.not_admin"

    def __init__(self, message: str = "the signer is not an admin of the group") -> None:
        super().__init__(message)


class NotMember(GroupError):
    code = "group.not_member"


class RotationNeeded(GroupError):
    code = "group.rotation_needed"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or "a member was removed: rotate the sender key first")


class SenderKeyError(GroupError):
    code = "group.sender_key_failed"

    def __init__(self, message: str | None = None) -> None:
        super().__init__("sender-key message refused")


class DistributionRefused(GroupError):
    """A sender-key distribution that is malformed, for another group, or that names a
    chain already held for another member."""

    code = "group.bad_distribution"


class TooLarge(GroupError):
    code = "group.too_large"
