"""Structured logs: one JSON object per line on stderr.

Each line has ``ts`` (Unix seconds), ``level``, ``logger``, ``msg`` and the record's extra
fields named in :data:`FIELDS` (nothing else is copied, so a stray ``extra`` cannot leak a
secret); a logged exception adds its type and traceback (code lines, never local values).
What is never logged, by rule: enrollment codes, tokens, keys, envelope bodies and the
senders of sealed envelopes.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Final, TextIO

FIELDS: Final = (
    "address",
    "error",
    "url",
    "domain",
    "origin",
    "suite",
    "store",
    "peer",
    "count",
    "code",
    "skew_s",
    "retry_in",
)
ROOT: Final = "sealrelay"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for name in FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                entry[name] = value
        if record.exc_info and record.exc_info[0] is not None:
            entry["exception"] = record.exc_info[0].__name__
            entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def setup(level: str = "info", stream: TextIO | None = None) -> logging.Logger:
    """Send the ``sealrelay`` loggers to ``stream`` (stderr) as JSON lines."""
    logger = logging.getLogger(ROOT)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False
    return logger
