"""Logs an operator can query: one JSON object per line, each carrying its request's trace.

``trace(...)`` opens the context of one request (an answered question, an agent run): a
fresh ``trace_id`` plus team, channel, thread and user, held in a ``ContextVar`` so every
line logged inside it, in any task it starts, carries them without passing them around.
``count(...)`` adds to that request's counters (Slack 429s, model tokens), which its
summary line reports through ``totals()``.

Secrets never reach the output: the formatter replaces every configured secret value and
masks anything shaped like a credential (``bot.redact``), in messages, fields and tracebacks.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import sys
import uuid
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from pydantic import SecretStr

from bot.config import Settings
from bot.redact import MASK, mask

HUMAN_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
SLACK_429 = "slack_429"

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


@dataclass
class Trace:
    fields: dict[str, Any]
    # Shared by reference with tasks started inside the trace, so their counts add up here.
    counters: dict[str, int] = field(default_factory=dict)


_current: ContextVar[Trace | None] = ContextVar("copilot_trace", default=None)


@contextlib.contextmanager
def trace(trace_id: str | None = None, **fields: Any) -> Iterator[Trace]:
    """Run the block as one request: its own counters, and ``trace_id`` (a new one if not
    given) with ``fields`` on every line. Empty fields are left out."""
    current = Trace({"trace_id": trace_id or uuid.uuid4().hex[:16], **_present(fields)})
    token = _current.set(current)
    try:
        yield current
    finally:
        _current.reset(token)


def id_for(*parts: str) -> str:
    """A trace id every process derives alike from what identifies the request."""
    return hashlib.sha256(":".join(parts).encode()).hexdigest()[:16]


def current_id() -> str | None:
    """The trace id of the request being served, if any."""
    current = _current.get()
    return str(current.fields["trace_id"]) if current else None


def count(name: str, amount: int = 1) -> None:
    """Add to a counter of the current request; outside any request there is nothing to do."""
    current = _current.get()
    if current is not None:
        current.counters[name] = current.counters.get(name, 0) + amount


def totals() -> dict[str, int]:
    current = _current.get()
    return dict(current.counters) if current else {}


def _present(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None and v != ""}


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "msg", <trace fields>, <extra fields>}`` on one line."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        # Longest first, so a secret containing another is replaced whole.
        self._secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        current = _current.get()
        if current is not None:
            entry.update(current.fields)
        entry.update((k, v) for k, v in record.__dict__.items() if k not in _STANDARD)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(self._clean(entry), default=str, ensure_ascii=False)

    def _clean(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, dict):
            return {k: self._clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._clean(v) for v in value]
        if isinstance(value, int | float | bool) or value is None:
            return value
        return self.scrub(str(value))

    def scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return mask(text)


def secrets_of(settings: Settings) -> list[str]:
    """Every secret value in ``settings``, and the password inside a Redis URL on its own."""
    found = []
    for value in dict(settings).values():
        if isinstance(value, SecretStr):
            found.append(value.get_secret_value())
            with contextlib.suppress(ValueError):
                password = urlsplit(value.get_secret_value()).password
                if password:
                    found.append(password)
    return found


class PlainFormatter(logging.Formatter):
    """Plain text lines for the local tools, masked like the JSON ones."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__(HUMAN_FORMAT)
        self._scrubber = JsonFormatter(secrets)  # for its scrub: configured secrets, then mask

    def format(self, record: logging.LogRecord) -> str:
        return self._scrubber.scrub(super().format(record))


def configure(level: int, *, json_lines: bool = True, secrets: Iterable[str] = ()) -> None:
    """Send the bot's logs to stderr: JSON lines to serve, plain text for local tools."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(secrets) if json_lines else PlainFormatter(secrets))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
