"""Cutting a Markdown answer into Slack-sized messages without breaking what it shows.

Slack refuses or truncates long messages (about 11 KB per streamed message in practice), so
a long answer continues in the next message. A cut lands on a paragraph, line or word
boundary where one is near, and a code block cut in two is closed and reopened so both
halves still render as code.
"""

from __future__ import annotations

import re

# Room for the "\n```" that closes a code block at a cut.
_FENCE_RESERVE = 8
_FENCE = re.compile(r"^\s*(```+|~~~+)(.*)$")


def byte_len(text: str) -> int:
    return len(text.encode("utf-8"))


def open_fence(text: str) -> str | None:
    """The opening line of the code block still open at the end of ``text``, if any."""
    opening: str | None = None
    for line in text.split("\n"):
        match = _FENCE.match(line)
        if match is None:
            continue
        opening = None if opening is not None else line.strip()
    return opening


def fit(sent: str, new: str, limit: int) -> tuple[str, str | None]:
    """Split ``new`` so that ``sent`` plus the first part stays within ``limit`` bytes.

    Returns ``(head, rest)``: ``rest`` is None when everything fits; otherwise it is the
    text for the next message, starting with a reopened code fence where one was cut.
    """
    if byte_len(sent) + byte_len(new) <= limit:
        return new, None
    room = max(0, limit - byte_len(sent) - _FENCE_RESERVE)
    cut = _boundary(new, _chars_within(new, room))
    head, rest = new[:cut], new[cut:]
    fence = open_fence(sent + head)
    if fence is not None:
        head += "\n```"
        rest = fence + "\n" + rest.lstrip("\n")
    return head, rest


def _chars_within(text: str, room: int) -> int:
    """How many leading characters of ``text`` fit in ``room`` UTF-8 bytes."""
    encoded = text.encode("utf-8")[:room]
    return len(encoded.decode("utf-8", errors="ignore"))


def _boundary(text: str, hard: int) -> int:
    """The best place to cut at or before ``hard``: paragraph, line, then word."""
    floor = hard // 2
    for sep in ("\n\n", "\n", " "):
        at = text.rfind(sep, floor, hard)
        if at > 0:
            return at + len(sep)
    return hard
