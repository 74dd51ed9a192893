"""Attachment chunk encryption: round trips, sizes, and every tampering a node could try."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from client import attachments as att
from client.errors import AttachmentError

CHUNK = att.CHUNK_SIZE
STEP = att.CHUNK_SIZE + att.TAG_LEN


def _key() -> bytes:
    return os.urandom(32)


@pytest.mark.parametrize("size", [0, 1, 1023, 1024, CHUNK - 1, CHUNK, 3 * CHUNK + 17, 5 << 20])
def test_round_trip_and_sizes(size: int) -> None:
    data = os.urandom(size)
    key = _key()
    sealed = att.encrypt(data, key)
    assert sealed.size == size
    assert len(sealed.ciphertext) == att.cipher_size(size)
    assert sealed.digest == att.digest_of(sealed.ciphertext)
    assert att.decrypt(sealed.ciphertext, key, sealed.digest, size) == data


def test_padding_hides_exact_size() -> None:
    assert att.padded_size(10) == att.padded_size(900) == 1024
    assert att.padded_size(5 << 20) == att.padded_size((5 << 20) - 1000)
    big = att.padded_size(5 << 20)
    assert big % CHUNK == 0
    assert big > 5 << 20


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=1 << 31))
def test_padded_size_is_monotonic_and_bounded(size: int) -> None:
    padded = att.padded_size(size)
    assert padded > size
    assert att.padded_size(size + 1) >= padded
    if size > CHUNK:
        assert padded % CHUNK == 0
        assert padded <= size * 11 // 10 + 2 * CHUNK  # growth stays near 5%


def _sealed(size: int = 4 * CHUNK) -> tuple[bytes, att.SealedAttachment]:
    key = _key()
    return key, att.encrypt(os.urandom(size), key)


def test_wrong_digest_refused_before_decrypting() -> None:
    key, sealed = _sealed()
    wrong = bytes(32)
    with pytest.raises(AttachmentError):
        att.decrypt(sealed.ciphertext, key, wrong, sealed.size)


def test_wrong_key_refused() -> None:
    _, sealed = _sealed()
    with pytest.raises(AttachmentError):
        att.decrypt(sealed.ciphertext, _key(), sealed.digest, sealed.size)


@pytest.mark.parametrize("where", [0, STEP - 1, STEP, 2 * STEP + 100, -1])
def test_bit_flip_refused(where: int) -> None:
    key, sealed = _sealed()
    flipped = bytearray(sealed.ciphertext)
    flipped[where] ^= 0x01
    tampered = bytes(flipped)
    with pytest.raises(AttachmentError):  # by the digest
        att.decrypt(tampered, key, sealed.digest, sealed.size)
    with pytest.raises(AttachmentError):  # and by the chunks alone
        att.open_chunks(key, tampered)


def test_truncation_at_chunk_boundary_refused_by_chunks() -> None:
    key, sealed = _sealed()
    assert len(att.open_chunks(key, sealed.ciphertext)) == att.padded_size(sealed.size)
    for chunks in (1, 2, 3):
        truncated = sealed.ciphertext[: chunks * STEP]
        with pytest.raises(AttachmentError):
            att.open_chunks(key, truncated)
        with pytest.raises(AttachmentError):
            att.decrypt(truncated, key, att.digest_of(truncated), sealed.size)


def test_truncation_inside_chunk_refused() -> None:
    key, sealed = _sealed()
    for cut in (1, att.TAG_LEN, 1000):
        with pytest.raises(AttachmentError):
            att.open_chunks(key, sealed.ciphertext[:-cut])


def test_extension_after_final_chunk_refused() -> None:
    key, sealed = _sealed()
    first = sealed.ciphertext[:STEP]
    with pytest.raises(AttachmentError):
        att.open_chunks(key, sealed.ciphertext + first)


def test_reordered_chunks_refused() -> None:
    key, sealed = _sealed()
    c = sealed.ciphertext
    chunks = [c[i : i + STEP] for i in range(0, len(c), STEP)]
    swapped = b"".join([chunks[1], chunks[0], *chunks[2:]])
    assert len(swapped) == len(c)
    with pytest.raises(AttachmentError):
        att.open_chunks(key, swapped)
    with pytest.raises(AttachmentError):
        att.decrypt(swapped, key, att.digest_of(swapped), sealed.size)


def test_wrong_size_claim_refused() -> None:
    key = _key()
    sealed = att.encrypt(b"x" * 100, key)
    for claimed in (99, 101, 2000):
        with pytest.raises(AttachmentError):
            att.decrypt(sealed.ciphertext, key, sealed.digest, claimed)


def test_bad_padding_refused() -> None:
    key = _key()
    padded = b"abc" + bytes(1021)  # no 0x80 marker
    ciphertext = att.seal_chunks(key, padded)
    with pytest.raises(AttachmentError):
        att.decrypt(ciphertext, key, att.digest_of(ciphertext), 3)


def test_same_plaintext_different_keys_differ() -> None:
    data = b"same" * 100
    assert att.encrypt(data, _key()).ciphertext != att.encrypt(data, _key()).ciphertext


def test_key_length_checked() -> None:
    with pytest.raises(AttachmentError):
        att.encrypt(b"x", bytes(16))


# --- the streaming interface (ChunkSealer / ChunkOpener) ---------------------------------


def _pieces(data: bytes, sizes: list[int]) -> list[bytes]:
    out, at = [], 0
    for n in sizes * (len(data) // max(1, sum(sizes)) + 1):
        out.append(data[at : at + n])
        at += n
    return [*out, data[at:]]


def _stream_seal(data: bytes, key: bytes, sizes: list[int]) -> tuple[bytes, bytes]:
    sealer = att.ChunkSealer(key, len(data))
    parts = [sealer.push(p) for p in _pieces(data, sizes)]
    ciphertext = b"".join(parts) + b"".join(sealer.finish())
    return ciphertext, sealer.digest


def _stream_open(ciphertext: bytes, key: bytes, digest: bytes, size: int, piece: int) -> bytes:
    opener = att.ChunkOpener(key, digest, size)
    out = [opener.push(ciphertext[i : i + piece]) for i in range(0, len(ciphertext), piece)]
    opener.finish()
    return b"".join(out)


@settings(max_examples=40, deadline=None)
@given(
    st.integers(min_value=0, max_value=6 * CHUNK),
    st.lists(st.integers(min_value=1, max_value=3 * CHUNK), min_size=1, max_size=4),
    st.integers(min_value=1, max_value=2 * STEP),
)
def test_stream_equals_whole_buffer_format(size: int, sizes: list[int], piece: int) -> None:
    data = os.urandom(size)
    key = _key()
    ciphertext, digest = _stream_seal(data, key, sizes)
    whole = att.encrypt(data, key)
    assert ciphertext == whole.ciphertext
    assert digest == whole.digest
    assert _stream_open(ciphertext, key, digest, size, piece) == data


def test_stream_round_trip_of_a_multi_chunk_attachment_with_padding_chunks() -> None:
    size = att.padded_size(40 * CHUNK)  # just past a bucket: whole chunks of padding follow
    assert att.padded_size(size) - size > CHUNK
    data = os.urandom(size)
    key = _key()
    ciphertext, digest = _stream_seal(data, key, [CHUNK * 16])
    assert len(ciphertext) == att.cipher_size(size)
    assert _stream_open(ciphertext, key, digest, size, 65_000) == data


def _stream_fails(ciphertext: bytes, key: bytes, digest: bytes, size: int) -> None:
    with pytest.raises(AttachmentError):
        _stream_open(ciphertext, key, digest, size, STEP)


def test_stream_refuses_truncation_reordering_flips_and_extension() -> None:
    size = 4 * CHUNK
    data, key = os.urandom(size), _key()
    c, digest = _stream_seal(data, key, [CHUNK])
    chunks = [c[i : i + STEP] for i in range(0, len(c), STEP)]
    for cut in (1, 2, len(chunks) - 1):
        _stream_fails(b"".join(chunks[:cut]), key, digest, size)  # truncated at a boundary
    _stream_fails(c[:-1], key, digest, size)
    _stream_fails(b"".join([chunks[1], chunks[0], *chunks[2:]]), key, digest, size)
    _stream_fails(c[:100] + bytes([c[100] ^ 1]) + c[101:], key, digest, size)
    _stream_fails(c + chunks[0], key, digest, size)
    _stream_fails(c, key, bytes(32), size)  # every chunk opens; the digest does not match


def test_stream_refuses_a_prefix_passed_off_as_a_shorter_attachment() -> None:
    """The final flag: the first two chunks of a longer attachment, with their own digest
    and a size of exactly two chunks, still fail (the second was not sealed as final)."""
    data, key = os.urandom(5 * CHUNK), _key()
    c, _ = _stream_seal(data, key, [CHUNK])
    short = CHUNK + 100
    assert att.cipher_size(short) == 2 * STEP
    prefix = c[: 2 * STEP]
    _stream_fails(prefix, key, att.digest_of(prefix), short)


def test_sealer_refuses_a_file_that_changed_size_while_read() -> None:
    key = _key()
    grew = att.ChunkSealer(key, 10)
    with pytest.raises(AttachmentError, match="grew"):
        grew.push(bytes(11))
    shrank = att.ChunkSealer(key, 10)
    shrank.push(bytes(9))
    with pytest.raises(AttachmentError, match="shrank"):
        list(shrank.finish())
    with pytest.raises(AttachmentError):
        _ = shrank.digest  # nothing sealed, so no digest to put in a pointer
