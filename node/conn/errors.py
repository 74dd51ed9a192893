"""Who broke the connection protocol's rule (h11's ``_util.py`` split).

ProtocolError               a rule of the client protocol was broken
 +-- RemoteProtocolError    the client broke it (a frame that does not decode, is too
 |                          large, comes too fast, or is not allowed now); also a
 |                          :class:`~node.errors.NodeError`, so it reaches the client
 |                          as an ``Error`` frame with its stable ``code``
 +-- LocalProtocolError     the node broke it: the shell fed the core an input its
                            state does not allow (a bug, never the client's doing)
"""

from __future__ import annotations

from node.errors import NodeError


class ProtocolError(Exception):
    """A rule of the client protocol was broken; a subclass says by whom."""


class RemoteProtocolError(ProtocolError, NodeError):
    """The client broke a rule: answered with an ``Error`` frame of ``code``."""

    def __init__(self, code: str, message: str, retry_after: int = 0) -> None:
        NodeError.__init__(self, code, message, retry_after)


class LocalProtocolError(ProtocolError):
    """The shell asked the core for something its state does not allow."""
