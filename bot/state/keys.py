"""Every Redis key the bot writes, and how long each lives.

Heroku Key-Value Store defaults to ``noeviction``: every key here has a TTL or a bound, so
a busy workspace can never fill the instance.
"""

from __future__ import annotations

PREFIX = "copilot:"

# A delivery is remembered for longer than Slack's retry window (3 retries within minutes).
DEDUPE_TTL = 3600
# The thread lock outlives a stuck holder by at most this long; holders refresh it.
LOCK_TTL_MS = 30_000
LOCK_REFRESH_SECONDS = 10.0
# Queued questions wait at most this long for their thread's turn.
QUEUE_TTL = 3600


def thread_id(team: str, channel: str, thread_ts: str) -> str:
    return f"{team}:{channel}:{thread_ts}"


def seen_event(event_id: str) -> str:
    return f"{PREFIX}seen:event:{event_id}"


def seen_message(channel: str, ts: str) -> str:
    return f"{PREFIX}seen:msg:{channel}:{ts}"


def history(thread: str) -> str:
    return f"{PREFIX}thread:{thread}:history"


def active(thread: str) -> str:
    """Present while the bot takes part in the thread: follow-ups need no @mention."""
    return f"{PREFIX}thread:{thread}:active"


def queue(thread: str) -> str:
    return f"{PREFIX}thread:{thread}:queue"


def lock(thread: str) -> str:
    return f"{PREFIX}thread:{thread}:lock"
