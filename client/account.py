"""This account's record as the running client holds it: node URL, the pinned home key
document, the mailbox and the delivery token (:class:`~client.records.AccountInfo`).

The record changes while the client runs (a refreshed key document, a mailbox the node
assigned on login) and is saved to the store each time; the parts of the client that read
it (the send path's reply details, group notes, attachments) hold this object rather than
a copy, so they always see the current one.
"""

from __future__ import annotations

from client import persist
from client.records import AccountInfo
from client.store.base import StateStore


class Account:
    """The current :class:`AccountInfo`, saved to ``store`` whenever it changes."""

    def __init__(self, store: StateStore, info: AccountInfo) -> None:
        self._store = store
        self._info = info

    @property
    def info(self) -> AccountInfo:
        return self._info

    def with_document(self, document: bytes) -> None:
        """The home key document was refreshed to ``document``."""
        info = self._info
        self._info = AccountInfo(info.node_url, document, info.mailbox, info.delivery_token)
        persist.save_account_info(self._store, self._info)

    def with_mailbox(self, mailbox: bytes) -> None:
        """The node named this device's mailbox on login (saved only if it changed)."""
        info = self._info
        if info.mailbox == mailbox:
            return
        self._info = AccountInfo(
            info.node_url, info.server_key_document, mailbox, info.delivery_token
        )
        persist.save_account_info(self._store, self._info)
