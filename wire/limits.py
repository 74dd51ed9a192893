"""Bounds the decoder enforces on every input, whatever the schema says.

DEFAULT_MAX_SIZE  total size of one encoded message (``decode(..., max_size=)`` overrides)
MAX_DEPTH         nesting: the top-level message is level 1; each nested message and
                  each tuple adds one level
MAX_ARRAY_LEN     elements of any msgpack array, hence of any tuple field
MAX_FIELDS        fields of one message class (checked at registration and on input)
MAX_TAG_LEN       length of a message tag
MAX_VERSION       highest message version

Bounds of fields that several schemas share (``trust.limits`` documents them with every
other bound a client and a server both enforce):

MAX_PAYLOAD       bytes of one envelope body
MAX_LAYER_BYTES   bytes of a sealed routing layer: a body with its recipients and HPKE
                  framing
MAX_DOCUMENT      bytes of a server key document or a peer-roots statement
"""

from __future__ import annotations

from typing import Final

MAX_PAYLOAD: Final = 1024 * 1024
DEFAULT_MAX_SIZE: Final = MAX_PAYLOAD + 64 * 1024
MAX_DEPTH: Final = 16
MAX_ARRAY_LEN: Final = 65_536
MAX_FIELDS: Final = 64
MAX_TAG_LEN: Final = 64
MAX_VERSION: Final = 65_535
MAX_LAYER_BYTES: Final = MAX_PAYLOAD + 16 * 1024
MAX_DOCUMENT: Final = 1 << 20
