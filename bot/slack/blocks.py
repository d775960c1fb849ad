"""Block Kit pieces the bot posts. Layout lives here, apart from the logic that fills it."""

from __future__ import annotations

from typing import Any

Block = dict[str, Any]


def markdown(text: str) -> Block:
    """Standard Markdown, rendered by Slack as the model wrote it (12,000 chars a message)."""
    return {"type": "markdown", "text": text}


def context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def thinking() -> list[Block]:
    return [context("_Thinking…_")]


RETRY = "copilot_retry"


def interrupted(text: str, retry_id: str) -> list[Block]:
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": text}},
        {
            "type": "actions",
            "elements": [
                {
                    "type": "button",
                    "text": {"type": "plain_text", "text": "Retry"},
                    "action_id": RETRY,
                    "value": retry_id,
                }
            ],
        },
    ]
