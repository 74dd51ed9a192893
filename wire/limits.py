"""Bounds the decoder enforces on every input, whatever the schema says.

DEFAULT_MAX_SIZE  total size of one encoded message (``decode(..., max_size=)`` overrides)
MAX_DEPTH         nesting: the top-level message is level 1; each nested message and
                  each tuple adds one level
MAX_ARRAY_LEN     elements of any msgpack array, hence of any tuple field
MAX_FIELDS        fields of one message class (checked at registration and on input)
MAX_TAG_LEN       length of a message tag
MAX_VERSION       highest message version
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
