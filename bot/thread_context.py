"""What the bot reads of a human thread it was @mentioned into (or that a DM links to), and
how the model sees it.

The people talking in a thread before the bot was called are context, never instructions:
each message reaches the model quoted and attributed (``bot.conversation.quoted``), even
the asker's own, so nothing typed there earlier can steer what is proposed in their name.
The bot's own earlier messages in the thread are marked as such. Text is masked when it is
read, so no secret reaches the model, the cache or a log.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from typing import Literal

from bot.conversation import quoted

# The newest messages before the question, within a character budget: enough to follow a
# discussion, small beside the history budget.
LAST_MESSAGES = 30
CONTEXT_CHARS = 8_000

Source = Literal["person", "self", "app"]


@dataclass(frozen=True)
class ThreadMessage:
    ts: str
    author: str  # a user id, or an app's bot id
    text: str  # masked
    source: Source = "person"  # "self": this bot; "app": another app


@dataclass(frozen=True)
class ThreadRead:
    """A thread as read: its messages, or the Slack error that kept us from reading it."""

    messages: tuple[ThreadMessage, ...] = ()
    error: str = ""

    def to_json(self) -> str:
        return json.dumps({"messages": [asdict(m) for m in self.messages], "error": self.error})

    @classmethod
    def from_json(cls, raw: str | bytes) -> ThreadRead:
        data = json.loads(raw)
        messages = tuple(ThreadMessage(**m) for m in data["messages"])
        return cls(messages=messages, error=str(data["error"]))


def recent(
    messages: tuple[ThreadMessage, ...],
    before: str,
    *,
    limit: int = LAST_MESSAGES,
    budget_chars: int = CONTEXT_CHARS,
) -> list[ThreadMessage]:
    """The newest messages older than ``before`` (the question's ts), oldest first."""
    earlier = [m for m in messages if _older(m.ts, before)]
    kept: list[ThreadMessage] = []
    used = 0
    for message in reversed(earlier[-limit:]):
        room = budget_chars - used
        if room <= 0:
            break
        if len(message.text) > room:
            if kept:
                break
            # The newest message alone is over budget: its start still says what it is about.
            message = replace(message, text=message.text[:room] + "…")
        used += len(message.text)
        kept.append(message)
    kept.reverse()
    return kept


def as_context(messages: list[ThreadMessage]) -> str:
    """The messages quoted one by one, each with its author."""
    return "\n\n".join(quoted(_who(m), m.text) for m in messages)


def _who(message: ThreadMessage) -> str:
    if message.source == "self":
        return "you (the copilot, in an earlier message)"
    if message.source == "app":
        return f"the app {message.author or 'whose name was not recorded'}"
    return f"<@{message.author}>" if message.author else "someone whose name was not recorded"


def _older(ts: str, than: str) -> bool:
    return _order(ts) < _order(than)


def _order(ts: str) -> tuple[int, int]:
    """Slack timestamps compare as numbers ("9.1" is older than "10.1"); a float would lose
    the microseconds."""
    seconds, _, micros = ts.partition(".")
    try:
        return int(seconds), int(micros.ljust(6, "0")[:6])
    except ValueError:
        return 0, 0
