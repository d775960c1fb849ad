"""What the fake Slack workspace stores: calls, messages, uploaded files, and Slack's limits."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

MAX_TEXT = 40_000  # chat.postMessage silently truncates beyond this
MAX_UPDATE_TEXT = 4_000  # chat.update answers msg_too_long beyond this
MAX_MARKDOWN = 12_000  # markdown blocks per message, and markdown_text per stream call
MAX_SECTION = 3_000
MAX_BLOCKS = 50

Json = dict[str, Any]


class SlackError(Exception):
    """Ends a Web API call with ``{"ok": false, "error": <error>}``."""

    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.extra = extra


@dataclass
class SlackCall:
    """One Web API call as the fake received it, and what it answered."""

    method: str
    params: Json
    at: float
    status: int = 0
    response: Json | None = None

    @property
    def error(self) -> str | None:
        if self.response is None or self.response.get("ok"):
            return None
        return str(self.response.get("error"))


@dataclass
class Message:
    """A message the bot posted, streamed or sent ephemerally."""

    channel: str
    ts: str
    thread_ts: str | None
    text: str = ""
    blocks: list[Json] = field(default_factory=list)
    streaming: bool = False
    stream_pieces: list[str] = field(default_factory=list)
    chunks: list[Json] = field(default_factory=list)
    stop_reason: str | None = None
    expires_at: float | None = None
    ephemeral_user: str | None = None
    updates: int = 0
    replaced: bool = False
    recipient: tuple[str | None, str | None] = (None, None)

    @property
    def stream_stopped(self) -> bool:
        """True once stopped, updated, or past Slack's stream lifetime."""
        if self.stop_reason is not None:
            return True
        return self.expires_at is not None and time.monotonic() >= self.expires_at

    @property
    def stream_open(self) -> bool:
        return self.streaming and not self.stream_stopped

    @property
    def body(self) -> str:
        """The text a person sees (see the module summary for the rules)."""
        if self.streaming and not self.replaced:
            return "".join(self.stream_pieces)
        return visible_text(self.text, self.blocks)

    @property
    def tasks(self) -> dict[str, Json]:
        """Latest state of each ``task_update`` chunk, by task id, merged in order."""
        merged: dict[str, Json] = {}
        for chunk in self.chunks:
            if chunk.get("type") == "task_update":
                merged.setdefault(str(chunk.get("id")), {}).update(chunk)
        return merged


@dataclass
class UploadedFile:
    file_id: str
    filename: str
    length: int
    content: bytes | None = None
    title: str | None = None
    channel: str | None = None
    thread_ts: str | None = None
    initial_comment: str | None = None


def visible_text(text: str, blocks: list[Json]) -> str:
    markdown = [str(b.get("text", "")) for b in blocks if b.get("type") == "markdown"]
    if markdown:
        return "".join(markdown)
    sections = [_section_text(b) for b in blocks if b.get("type") == "section"]
    if any(sections):
        return "\n".join(s for s in sections if s)
    return text


def _section_text(block: Json) -> str:
    text = block.get("text")
    return str(text.get("text", "")) if isinstance(text, dict) else ""


def check_blocks(blocks: list[Json]) -> None:
    """Reject blocks the way Slack does: ``invalid_blocks`` with a reason."""
    if len(blocks) > MAX_BLOCKS:
        raise SlackError("invalid_blocks", errors=[f"more than {MAX_BLOCKS} blocks"])
    markdown = sum(len(str(b.get("text", ""))) for b in blocks if b.get("type") == "markdown")
    if markdown > MAX_MARKDOWN:
        raise SlackError("invalid_blocks", errors=[f"markdown text over {MAX_MARKDOWN} chars"])
    for index, block in enumerate(blocks):
        if not isinstance(block, dict) or "type" not in block:
            raise SlackError("invalid_blocks", errors=[f"block {index} has no type"])
        if block["type"] == "section" and len(_section_text(block)) > MAX_SECTION:
            raise SlackError("invalid_blocks", errors=[f"section {index} over {MAX_SECTION}"])
        if block["type"] == "context_actions":
            _check_context_actions(block, index)


def _check_context_actions(block: Json, index: int) -> None:
    """Slack's rules for ``context_actions``: 1-5 elements; feedback buttons each need a
    plain_text text and a value (2,000 chars), accessibility labels up to 75 chars."""
    elements = block.get("elements")
    if not isinstance(elements, list) or not 1 <= len(elements) <= 5:
        raise SlackError("invalid_blocks", errors=[f"context_actions {index} needs 1-5 elements"])
    for element in elements:
        if element.get("type") != "feedback_buttons":
            continue
        for side in ("positive_button", "negative_button"):
            button = element.get(side) or {}
            text = button.get("text") or {}
            valid = (
                text.get("type") == "plain_text"
                and 0 < len(str(text.get("text", ""))) <= 75
                and 0 < len(str(button.get("value", ""))) <= 2000
                and len(str(button.get("accessibility_label", ""))) <= 75
            )
            if not valid:
                raise SlackError("invalid_blocks", errors=[f"feedback_buttons {side} is invalid"])


def stream_pieces(markdown_text: Any, chunks: Any) -> tuple[list[str], list[Json]]:
    """Split a stream call's content into visible markdown and the other chunks."""
    pieces = [str(markdown_text)] if markdown_text else []
    others: list[Json] = []
    for chunk in chunks or []:
        if isinstance(chunk, dict) and chunk.get("type") == "markdown_text":
            pieces.append(str(chunk.get("text", "")))
        elif isinstance(chunk, dict):
            others.append(chunk)
    if sum(len(piece) for piece in pieces) > MAX_MARKDOWN:
        raise SlackError("msg_too_long")
    return pieces, others
