"""Text from outside the bot, made safe to post: model answers, tool output, agent messages.

Such text is masked first (``bot.redact``), then the Slack control sequences in it are made
inert, so that a model or a tool (or whoever steered them) cannot ping a channel or dress up
a link:

    <!channel> <!here> <!everyone> <!subteam^S…>  → a zero-width space after "<": Slack shows
                                                     the characters and pings no one
    <https://evil.example|https://bank.example>   → https://bank.example (https://evil.example)
    [https://bank.example](https://evil.example)  → the same: every link shows its target
    a labelled link spread over lines             → a zero-width space breaks it: shown as text

``<@U…>`` and ``<#C…>`` stay (Slack shows the real name of who or what they point at), and so
does a plain date token. The bot's own mrkdwn never comes through here: it is applied to
foreign text once on each path, before that text is put into a message.

``shown`` does it to a whole text. ``SafeStream`` does it to text that arrives in pieces: it
holds back the tail that a later piece could still turn into a secret or a control sequence
(the last word, a secret's name waiting for its value, an open quote, a private key before
its END line, a link not yet closed) and releases it once complete, or masked at the end.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, AsyncIterator

from bot import redact

ZERO_WIDTH_SPACE = "\u200b"

# "<!" starts every broadcast and user-group mention; a date token (without a link) is inert.
_SPECIAL = re.compile(r"<!(?!date\^\d+\^[^^|<>]*\|[^<>]*>)")
_SLACK_LINK = re.compile(r"<([a-z][a-z0-9+.-]*:[^\s<>|]*)\|([^<>\n]*)>", re.IGNORECASE)
_MARKDOWN_LINK = re.compile(r"\[([^\[\]\n]*)\]\(([a-z][a-z0-9+.-]*:[^()\s]*)\)", re.IGNORECASE)
# What is left of a labelled link the rules above did not turn round (its label runs over a
# line, or holds brackets) is broken instead: Slack and Markdown then show it as text.
_SLACK_LINK_START = re.compile(r"<(?=[a-z][a-z0-9+.-]*:[^\s<>|]*\|)", re.IGNORECASE)
_MARKDOWN_LINK_TARGET = re.compile(r"\](?=\([a-z][a-z0-9+.-]*:)", re.IGNORECASE)
# An unclosed "<" or "[" on the last line: a link the next piece may close. Held back only for
# a while (a link is short), so that it reads as a link turned round rather than a broken one:
# safety does not depend on it.
_UNCLOSED = re.compile(r"<[^<>\n]{0,300}\Z|\[[^\[\]\n]{0,300}(?:\](?:\([^()\s]*)?)?\Z")


def shown(text: str) -> str:
    """``text`` masked, then with its pings and disguised links made inert."""
    return neutralise(redact.mask(text))


def neutralise(text: str) -> str:
    text = _SPECIAL.sub("<" + ZERO_WIDTH_SPACE + "!", text)
    text = _SLACK_LINK.sub(lambda m: _link(m[1], m[2]), text)
    text = _MARKDOWN_LINK.sub(lambda m: _link(m[2], m[1]), text)
    text = _SLACK_LINK_START.sub("<" + ZERO_WIDTH_SPACE, text)
    return _MARKDOWN_LINK_TARGET.sub("]" + ZERO_WIDTH_SPACE, text)


def _link(url: str, label: str) -> str:
    label = label.strip()
    bare = url.split("://", 1)[-1].rstrip("/")
    if not label or label.rstrip("/") in (url.rstrip("/"), bare):
        return url
    return f"{label} ({url})"


class SafeStream:
    """Pieces in, safe text out: ``feed`` returns what can be shown now, ``flush`` the rest."""

    def __init__(self) -> None:
        self._pending = ""

    def feed(self, piece: str) -> str:
        self._pending += piece
        cut = _safe_cut(self._pending)
        ready, self._pending = self._pending[:cut], self._pending[cut:]
        return shown(ready) if ready else ""

    def flush(self) -> str:
        rest, self._pending = self._pending, ""
        return shown(rest) if rest else ""


async def safe_stream(source: AsyncIterator[str]) -> AsyncGenerator[str, None]:
    """``source`` made safe as it streams; if it fails, what it held back is shown first."""
    stream = SafeStream()
    try:
        async for piece in source:
            if ready := stream.feed(piece):
                yield ready
    except Exception:
        # The answer keeps what the model said before it broke off, masked like the rest.
        if rest := stream.flush():
            yield rest
        raise
    finally:
        aclose = getattr(source, "aclose", None)
        if aclose is not None:
            await aclose()  # stopping early closes the model's stream now, not at GC
    if rest := stream.flush():
        yield rest


def _safe_cut(text: str) -> int:
    """How much of ``text`` is final: up to a space, before anything still open (a secret
    waiting for its value, a link), and never inside a secret or a link."""
    end = _after_space(text, len(text))
    if end == 0:
        return 0  # most pieces end inside a word: nothing to decide yet
    starts = [redact.unfinished(text), _unclosed_link(text)]
    end = _after_space(text, min((s for s in starts if s is not None), default=end))
    whole = redact.spans(text) + [
        m.span() for link in (_SLACK_LINK, _MARKDOWN_LINK) for m in link.finditer(text)
    ]
    while straddled := [start for start, stop in whole if start < end < stop]:
        end = _after_space(text, min(straddled))
    return end


def _unclosed_link(text: str) -> int | None:
    found = _UNCLOSED.search(text, text.rfind("\n") + 1)
    return found.start() if found else None


def _after_space(text: str, limit: int) -> int:
    """The index just after the last space, tab or line break before ``limit``; 0 if none."""
    return max(text.rfind(space, 0, limit) for space in " \n\t\r") + 1
