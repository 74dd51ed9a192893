"""What every part of the client protocol (``wire.relay``) shares: the field types of
requests and envelopes, and the frames any request may get or make (``Ping``/``Pong``,
``Ok``, ``Error``). Import them from ``wire.relay``.
"""

from __future__ import annotations

from typing import Annotated

from wire.limits import MAX_PAYLOAD
from wire.schema import message
from wire.types import U32, U64, Bytes16, MaxLen

RequestId = U32
Domain = Annotated[str, MaxLen(253)]
Name = Annotated[str, MaxLen(64)]
Code = Annotated[str, MaxLen(128)]
Body = Annotated[bytes, MaxLen(MAX_PAYLOAD)]
EnvelopeId = Bytes16
MailboxId = Bytes16


@message("relay.ping")
class Ping:
    id: RequestId


@message("relay.pong")
class Pong:
    id: RequestId
    time: U64


@message("relay.ok")
class Ok:
    """A request done with nothing else to answer (``SetDeliveryToken``,
    ``SetIntroductions``)."""

    id: RequestId


@message("relay.error")
class Error:
    """A refused request: ``id`` 0 when the frame could not be read. ``retry_after`` is in
    milliseconds (rate limits), otherwise 0."""

    id: RequestId
    code: Annotated[str, MaxLen(64)]
    message: Annotated[str, MaxLen(512)]
    retry_after: U32
