"""The first message from a domain the recipient's client has never seen, on two real
nodes: the client fetches that domain's key document (through its own node) before it
opens the envelope, so the message opens at once instead of passing through the
quarantine (which would log ``did not open (client.bad_certificate): quarantined``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest
import trio

from client import persist
from tests.integration.fedharness import LocalFederation, texts, wait_until

A: Final = "alpha.test"
B: Final = "bravo.test"


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalFederation]:
    fed = LocalFederation(tmp_path_factory.mktemp("firstcontact") / "fed", [A, B])
    try:
        fed.start()
        yield fed
    finally:
        fed.close()


async def test_the_first_message_from_a_new_domain_opens_at_once(
    fed: LocalFederation, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    people = await fed.enroll_all({"ann": (A, tmp_path / "ann"), "ben": (B, tmp_path / "ben")})
    ann, ben = people["ann"].load(), people["ben"].load()
    assert ben.keyring.document(A) is None  # ben's client has never seen alpha
    async with ann.online():
        result = await ann.send(ben.device.address, "hello from alpha")
        assert result.failed == {}
    with trio.fail_after(60):
        async with ben.online():
            await wait_until(lambda: "hello from alpha" in texts(ben), 30, "the first message")
    assert ben.quarantine_count == 0
    assert "did not open" not in caplog.text
    assert ben.keyring.document(A) is not None
    assert A in persist.domain_documents(ben.store)
