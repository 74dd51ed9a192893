"""Every bound that a client and a server both enforce, in one place (libsignal's
``limits.rs`` is the model). Code imports these names; it never retypes the numbers.

Defined here:

MAX_STATEMENT     bytes of a peer-roots statement (the node that serves it, the client
                  that checks it): as much as a key document, which the messages that
                  carry either bound alike
MAX_CACHE_MS      a held key document is never trusted more than 7 days after it was
                  received, whatever its ``valid_until`` says (DESIGN section 6)
MAX_BLOB_BYTES    the default largest blob upload (the node's ``max_blob_bytes``; it
                  tells clients its own value at ``/v1/limits``)
MAX_NODE_FRAME    the largest WebSocket frame a client reads from its node (a Deliver
                  batch may hold several envelopes)
MAX_CLIENT_FRAME  the default largest WebSocket frame a node reads from a client (its
                  ``max_frame_bytes``): the largest envelope body and room for the rest
MAX_GROUP_TOKENS  live group delivery tokens of one account at its node (issue 20): one
                  per group the account is in, so a member of more groups than this
                  cannot register a token for the next one (``limit.group_tokens``)
QUIC_PIN_SIZE     bytes of the QUIC pin a key document lists (``trust.media``) and
                  ``transport.identity`` checks: SHA-256 of the certificate key's
                  SubjectPublicKeyInfo

Bounds of the wire format live in ``wire`` (which cannot import this package) and are
re-exported here, so that this table names them all:

MAX_ENVELOPE_BODY bytes of one envelope body (``wire.limits.MAX_PAYLOAD``, the schema's
                  ``Body``; the node's ``max_envelope_bytes`` may only lower it)
MAX_DOCUMENT      bytes of a server key document (``wire.limits``): the node serves at
                  most this, the keyring and a client read at most this from the network
                  (``federation``, ``node.fed.peers``, ``client.nodehttp``)
MAX_LAYER_BYTES   bytes of a sealed routing layer (``wire.limits``): an envelope body
                  and the layer's overhead; a peer policy's ``max_envelope_bytes`` default
MAX_GROUP_RECIPIENTS  recipients of one routing layer (``wire.federation``)
MAX_DEVICES       devices per account (``wire.group``): a node serves at most this many
                  prekey bundles of one address (the bundle messages' schema bound, 32,
                  leaves room), and a group member lists at most this many devices. It
                  was 32 at the node and 16 in the group schema; 16 is the one value
                  that keeps every existing behaviour that tests and clients rely on:
                  a member's devices as fetched always fit in a group change, and no
                  decoder bound widens. DESIGN section 10 will lower it to 8, which is a
                  change of behaviour and not made here.
"""

from __future__ import annotations

from typing import Final

from wire.federation import MAX_GROUP_RECIPIENTS
from wire.group import MAX_DEVICES
from wire.limits import MAX_DOCUMENT, MAX_LAYER_BYTES, MAX_PAYLOAD

__all__ = [
    "MAX_BLOB_BYTES",
    "MAX_CACHE_MS",
    "MAX_CLIENT_FRAME",
    "MAX_DEVICES",
    "MAX_DOCUMENT",
    "MAX_ENVELOPE_BODY",
    "MAX_GROUP_RECIPIENTS",
    "MAX_GROUP_TOKENS",
    "MAX_LAYER_BYTES",
    "MAX_NODE_FRAME",
    "MAX_STATEMENT",
    "QUIC_PIN_SIZE",
]

MAX_ENVELOPE_BODY: Final = MAX_PAYLOAD
MAX_STATEMENT: Final = MAX_DOCUMENT
MAX_CACHE_MS: Final = 7 * 86_400_000
MAX_BLOB_BYTES: Final = 64 * 1024 * 1024
MAX_NODE_FRAME: Final = 64 * 1024 * 1024
MAX_CLIENT_FRAME: Final = MAX_ENVELOPE_BODY + 64 * 1024
MAX_GROUP_TOKENS: Final = 1024
QUIC_PIN_SIZE: Final = 32
