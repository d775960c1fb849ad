"""Every button the bot shows, and the action ids Slack sends back when one is clicked.

Rendering puts these ids on buttons and ``bot.handlers`` turns them back into decisions;
services never see them. A button's value carries only an id: what it refers to stays in
Redis, so a made-up or stale value changes nothing.
"""

from __future__ import annotations

from bot.slack.blocks import Block

APPROVE = "copilot_approve"
DENY = "copilot_deny"
WITHDRAW = "copilot_withdraw"
RUN_NOW = "copilot_run"
CANCEL = "copilot_cancel"
RETRY = "copilot_retry"


def button(label: str, action_id: str, value: str, style: str | None = None) -> Block:
    shown: Block = {
        "type": "button",
        "text": {"type": "plain_text", "text": label},
        "action_id": action_id,
        "value": value,
    }
    if style:
        shown["style"] = style
    return shown


def interrupted(text: str, retry_id: str) -> list[Block]:
    """The notice on an answer a restart cut off, with a Retry button."""
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": text}},
        {"type": "actions", "elements": [button("Retry", RETRY, retry_id)]},
    ]
