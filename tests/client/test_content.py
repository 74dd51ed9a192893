"""The application payload: round trips and refusal of anything else."""

from __future__ import annotations

import pytest

from client import content
from client.errors import BadContent
from wire import WireError, encode


def _pointer() -> content.AttachmentPointer:
    return content.AttachmentPointer(
        blob=bytes(range(16)),
        key=bytes(32),
        digest=b"\x01" * 32,
        size=5,
        cipher_size=1040,
        name="a.txt",
        content_type="text/plain",
    )


def _content(**changes: object) -> content.Content:
    fields: dict[str, object] = {
        "text": "héllo",
        "sent": 1_800_000_000_000,
        "reply_token": b"\x07" * 16,
        "reply_mailbox": b"\x08" * 16,
        "expire": 30,
        "attachments": (_pointer(),),
    }
    fields.update(changes)
    return content.Content(**fields)  # type: ignore[arg-type]


def test_round_trip() -> None:
    c = _content()
    assert content.unpack(content.pack(c)) == c
    bare = _content(reply_token=None, reply_mailbox=None, expire=None, attachments=())
    assert content.unpack(content.pack(bare)) == bare


@pytest.mark.parametrize("data", [b"", b"\x00", b"hello", b"\x93\xa3abc\x01\x80"])
def test_garbage_is_bad_content(data: bytes) -> None:
    with pytest.raises(BadContent):
        content.unpack(data)


def test_other_message_is_bad_content() -> None:
    with pytest.raises(BadContent):
        content.unpack(encode(_pointer()))


def test_zero_timer_refused() -> None:
    with pytest.raises(ValueError, match="timer"):
        _content(expire=0)


def test_token_length_checked() -> None:
    with pytest.raises(WireError):
        _content(reply_token=b"short")


def test_too_many_attachments_refused() -> None:
    with pytest.raises(WireError):
        _content(attachments=(_pointer(),) * (content.MAX_ATTACHMENTS + 1))
