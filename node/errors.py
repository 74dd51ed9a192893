"""Errors of the relay node, each with a stable code that reaches clients in ``Error`` frames.

    NodeError                  a refused request: ``code``, a clear ``message`` and, for rate
                               limits, ``retry_after`` (milliseconds)
    CommandError               a node command (``sealrelay node|admin|keys|dev ...``) failed
     |                         for a reason its user can fix: ``code``, ``message``, and the
     |                         ``exit_status`` (1); ``sealrelay.cli`` prints it as one line,
     |                         ``sealrelay: CODE: MESSAGE``
     +-- ConfigError           invalid configuration or arguments (exit status 2)

Codes sent to clients and peers (``proto.*``, ``auth.*``, ``send.*``, ``limit.*``,
``blob.*``, ``prekeys.*``, ``fed.*``, ``store.*``, ``internal``): one table, in
``trust.errors``, whose constants this module re-exports (``errors.PROTO_MALFORMED``...).

Codes of the node's commands (stable; on stderr, never sent to a client):

    config.invalid      a configuration value or argument breaks its rule (named)
    config.missing      a required value (domain, data_dir) is in no flag, file or variable
    config.file         the ``--config`` file cannot be read or is not valid TOML
    node.listen         the node cannot listen: the port is taken, or the address is not
                        this machine's
    node.data_dir       the data directory cannot be created, read or written
    admin.no_node       ``admin invite``: the directory holds no node's data
    admin.account_exists
                        ``admin invite``: the name already has an account
    keys.files          a ``keys`` command cannot create, read or write a key file or its
                        directory
    keys.fetch          ``keys show``: the key document could not be fetched
    keys.document       ``keys show``: what the node served is not a key document
    dev.node_failed     ``dev up``: a node did not start or exited (the message names its log)
"""

from __future__ import annotations

from typing import Final

from trust.errors import *  # noqa: F403 - the codes sent to clients, re-exported

CONFIG_INVALID: Final = "config.invalid"
CONFIG_MISSING: Final = "config.missing"
CONFIG_FILE: Final = "config.file"
NODE_LISTEN: Final = "node.listen"
NODE_DATA_DIR: Final = "node.data_dir"
ADMIN_NO_NODE: Final = "admin.no_node"
ADMIN_ACCOUNT_EXISTS: Final = "admin.account_exists"
KEYS_FILES: Final = "keys.files"
KEYS_FETCH: Final = "keys.fetch"
KEYS_DOCUMENT: Final = "keys.document"
DEV_NODE_FAILED: Final = "dev.node_failed"


class NodeError(Exception):
    """A request refused with a stable ``code``; ``message`` is safe to show the client."""

    def __init__(self, code: str, message: str, retry_after: int = 0) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.retry_after = retry_after


class CommandError(Exception):
    """A node command failed for a reason its user can fix; ``message`` says which."""

    exit_status = 1

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def file_error(exc: OSError, code: str) -> CommandError:
    """``exc`` (a file or directory operation failed) as a :class:`CommandError`."""
    where = f"{exc.filename}: " if exc.filename is not None else ""
    return CommandError(f"{where}{exc.strerror or exc}", code)


class ConfigError(CommandError):
    """The configuration is invalid; the message names the key and the rule."""

    exit_status = 2

    def __init__(self, message: str, code: str = CONFIG_INVALID) -> None:
        super().__init__(message, code)


def first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first exception inside ``group`` that is not itself a group (trio nests them)."""
    inner: BaseException = group
    while isinstance(inner, BaseExceptionGroup):
        inner = inner.exceptions[0]
    return inner
