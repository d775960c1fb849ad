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
FEEDBACK = "copilot_feedback"

# A feedback button's value: "<up|down>:<the answer's trace id>".
_VOTES = {"up", "down"}
_ANSWER_CHARS = 64


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


def feedback(answer: str) -> Block:
    """Thumbs up and down under a finished answer; each value names the vote and the answer."""
    return {
        "type": "context_actions",
        "elements": [
            {
                "type": "feedback_buttons",
                "action_id": FEEDBACK,
                "positive_button": _vote_button("👍", f"up:{answer}", "This answer helped"),
                "negative_button": _vote_button("👎", f"down:{answer}", "This answer did not help"),
            }
        ],
    }


def parse_feedback(value: str) -> tuple[str, str] | None:
    """``(vote, answer)`` from a feedback button's value, or None for anything made up."""
    vote, _, answer = value.partition(":")
    if vote not in _VOTES or not answer or len(answer) > _ANSWER_CHARS or not answer.isalnum():
        return None
    return vote, answer


def _vote_button(emoji: str, value: str, label: str) -> Block:
    return {
        "text": {"type": "plain_text", "text": emoji},
        "value": value,
        "accessibility_label": label,
    }
