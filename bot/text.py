"""Plain-text helpers every part shares: one line from many, a cut with an ellipsis, and
how times and durations read, so a run's card and App Home say the same thing."""

from __future__ import annotations

import time

from bot.redact import mask


def squash(text: str) -> str:
    """All whitespace runs as single spaces: one line, for previews and log fields."""
    return " ".join(text.split())


def clip(text: str, limit: int = 280) -> str:
    """A short plain line for notifications and the ``text`` field next to blocks. Masked
    before it is cut: a cut through a secret would leave a piece no rule recognises."""
    flat = squash(mask(text))
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def when(epoch: float) -> str:
    """A Slack date token: each reader sees their own time zone; the fallback is UTC."""
    stamp = int(epoch)
    fallback = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(stamp))
    return f"<!date^{stamp}^{{date_short_pretty}} {{time}}|{fallback}>"


def duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes} min {rest} s"
