"""Group messaging over the network: the shell around ``client.groups`` (docs/groups.md
section 8).

The wrap: a sender-key message names its group and chain in the clear, so before upload it
is sealed under the **group transport key** of the sender's current group state::

    GroupEnvelope{nonce, c = AES-256-GCM(transport key, nonce, SenderKeyMessage,
                                 aad = GROUP_TRANSPORT_AAD)}
    body = pad(encode(GroupEnvelope))            (the envelope buckets, DESIGN section 3)

A transport key is 32 random bytes chosen by the signer of a change for the state that
change leads to, and sent with the change (a :class:`~client.content.GroupNote`) over the
pairwise sessions to the member devices of that state only; a removed member gets the
change that removes it but not the key. A receiver accepts a key for state ``head`` only
from the device that signed change ``head``, and opens a group envelope by trying the
keys it holds (a few per group; AES-GCM authenticates, so a wrong key never opens). A
sender uses the key of its current state or, if it has not got it, of the newest state of
its chain after which no member was removed; otherwise it waits for the key.

The package: ``transport`` (the wrap, the records, the uploads of a group message), ``book``
(:class:`GroupBook`: the groups in the store, the dispatch of controls, opening envelopes)
and ``flows`` (:class:`GroupNet`: create, change, send, over the send path of
``client.sendpath``). :class:`GroupNet` takes its send path, book and account through its
constructor; nothing here knows the ``Client`` that owns them.
"""

from __future__ import annotations

from client.groupnet.book import GroupBook, GroupPending, GroupUnavailable, Outcome
from client.groupnet.flows import GroupNet, GroupSendResult, note_bytes, send_pairwise
from client.groupnet.transport import (
    GroupEnvelope,
    GroupNetRecord,
    NetGroup,
    PendingControl,
    TransportKey,
    describe,
    parse,
    unwrap,
    uploads,
    wrap,
)

__all__ = [
    "GroupBook",
    "GroupEnvelope",
    "GroupNet",
    "GroupNetRecord",
    "GroupPending",
    "GroupSendResult",
    "GroupUnavailable",
    "NetGroup",
    "Outcome",
    "PendingControl",
    "TransportKey",
    "describe",
    "note_bytes",
    "parse",
    "send_pairwise",
    "unwrap",
    "uploads",
    "wrap",
]
