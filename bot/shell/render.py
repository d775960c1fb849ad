"""Showing in a terminal what the bot posts to Slack.

Blocks become plain lines (Markdown and mrkdwn are printed as they are, apart from Slack's
``<@U…>``/``<#C…>``/``<!date…>`` markup, which would be unreadable), buttons become the
shell commands that click them, and a native stream is written as its chunks arrive.
"""

from __future__ import annotations

import re
import sys
from typing import Any, TextIO

from bot.render import buttons

Json = dict[str, Any]

# The shell command that clicks each card button (``/run`` is taken by the slash command).
BUTTON_COMMANDS = {
    buttons.APPROVE: "/approve",
    buttons.DENY: "/deny",
    buttons.WITHDRAW: "/withdraw",
    buttons.RUN_NOW: "/start",
    buttons.CANCEL: "/cancel",
}

_MARKUP = re.compile(r"<([@#!])([^>|]+)(?:\|([^>]*))?>")
_LINK = re.compile(r"<(https?://[^>|]+)(?:\|([^>]*))?>")


def plain(text: str) -> str:
    """Slack markup to something a person reads in a terminal."""

    def mention(match: re.Match[str]) -> str:
        sigil, target, label = match.groups()
        if sigil == "!":
            return label or target  # dates carry their fallback text as the label
        return f"{sigil}{label or target}"

    text = _MARKUP.sub(mention, text)
    return _LINK.sub(lambda m: f"{m.group(2)} ({m.group(1)})" if m.group(2) else m.group(1), text)


def message_lines(text: str, blocks: list[Json] | None) -> list[str]:
    """The lines a message shows: its blocks when it has any, else its text."""
    if not blocks:
        return plain(text).splitlines() or [""]
    lines: list[str] = []
    for block in blocks:
        lines += _block_lines(block)
    return lines


def _block_lines(block: Json) -> list[str]:
    kind = block.get("type")
    if kind in ("markdown", "header"):
        return plain(_text_of(block.get("text"))).splitlines()
    if kind == "section":
        fields = [plain(_text_of(f)).replace("\n", ": ", 1) for f in block.get("fields") or []]
        own = plain(_text_of(block.get("text"))).splitlines()
        return own + (["   ".join(fields)] if fields else [])
    if kind == "context":
        return [" ".join(plain(_text_of(e)) for e in block.get("elements") or [])]
    if kind == "actions":
        return [_buttons_line(block.get("elements") or [])]
    if kind == "divider":
        return ["―" * 20]
    if kind == "context_actions":
        return []  # an answer's feedback buttons: nothing to click in a console
    return [f"[{kind} block]"]


def _text_of(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("text") or "")
    return str(value or "")


def _buttons_line(buttons: list[Json]) -> str:
    labels = " ".join(f"[{_text_of(b.get('text'))}]" for b in buttons)
    commands = [
        BUTTON_COMMANDS[b["action_id"]] for b in buttons if b.get("action_id") in BUTTON_COMMANDS
    ]
    return f"{labels}  → type {', '.join(commands)}" if commands else labels


class Screen:
    """The terminal: whole messages, and streams written piece by piece as they arrive."""

    def __init__(self, out: TextIO | None = None) -> None:
        self._out = out or sys.stdout
        self._streaming: str | None = None  # ts of the stream being written, if any

    def show(self, prefix: str, lines: list[str]) -> None:
        self.end_stream()
        indent = " " * len(prefix)
        for number, line in enumerate(lines):
            self._write(f"{prefix if number == 0 else indent}{line}\n")

    def prompt(self, text: str) -> None:
        """The prompt of a line being read, written when the bot has gone quiet."""
        self.end_stream()
        self._write(text)

    def note(self, text: str) -> None:
        self.show("", [f"· {text}"])

    def stream(self, ts: str, prefix: str, text: str) -> None:
        """Write ``text`` as part of the stream ``ts``; a new stream starts on its own line."""
        if self._streaming != ts:
            self.end_stream()
            self._write(prefix)
            self._streaming = ts
        self._write(plain(text))

    def end_stream(self, ts: str | None = None) -> None:
        if self._streaming is not None and ts in (None, self._streaming):
            self._write("\n")
            self._streaming = None

    def _write(self, text: str) -> None:
        self._out.write(text)
        self._out.flush()
