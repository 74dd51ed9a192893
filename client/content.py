"""The application payload inside an end-to-end plaintext (what ``Device.encrypt`` seals).

These schemas never leave the two clients, so they live with the client (tags start with
``client.``), encoded with the canonical ``wire`` codec. A message carries::

    text         the text, UTF-8
    sent         the sender's clock when it wrote the message (Unix ms; informational)
    reply_token  the sender account's own delivery token, so the recipient can answer with
                 ``Send`` instead of ``Introduce``
    reply_mailbox  the sending device's mailbox id (where an answer goes)
    expire       disappearing timer in seconds, counted from receipt (``None``: keep)
    attachments  pointers to encrypted blobs (``client.attachments``)

:func:`pack` / :func:`unpack` are the only entry points; ``unpack`` raises
:class:`~client.errors.BadContent` for anything that is not a valid payload.
"""

from __future__ import annotations

from typing import Annotated, Final

from client.errors import BadContent
from wire import U32, U64, Bytes16, Bytes32, MaxLen, WireError, decode, encode, message
from wire.e2e import DeliveryToken

MAX_TEXT: Final = 64 * 1024
MAX_ATTACHMENTS: Final = 32
MAX_NAME: Final = 255
MAX_CONTENT_TYPE: Final = 127


@message("client.attachment")
class AttachmentPointer:
    """Where an attachment is and how to open it.

    ``blob`` names it on the sender's node; ``key`` (32 bytes) opens it; ``digest`` is the
    SHA-256 of the uploaded ciphertext, checked before anything is decrypted; ``size`` is
    the plaintext size and ``cipher_size`` the uploaded size.
    """

    blob: Bytes16
    key: Bytes32
    digest: Bytes32
    size: U64
    cipher_size: U64
    name: Annotated[str, MaxLen(MAX_NAME)]
    content_type: Annotated[str, MaxLen(MAX_CONTENT_TYPE)]


@message("client.content")
class Content:
    """One message as the sender wrote it."""

    text: Annotated[str, MaxLen(MAX_TEXT)]
    sent: U64
    reply_token: DeliveryToken | None
    reply_mailbox: Bytes16 | None
    expire: U32 | None
    attachments: Annotated[tuple[AttachmentPointer, ...], MaxLen(MAX_ATTACHMENTS)]

    def __post_init__(self) -> None:
        if self.expire == 0:
            raise ValueError("a disappearing timer is at least one second")


def pack(content: Content) -> bytes:
    """The plaintext to encrypt."""
    return encode(content)


def unpack(plaintext: bytes) -> Content:
    """The content of a decrypted plaintext; :class:`BadContent` if it is not one."""
    try:
        return decode(plaintext, Content)
    except WireError:
        raise BadContent("the message content does not decode") from None
