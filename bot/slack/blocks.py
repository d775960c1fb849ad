"""Block Kit pieces the bot posts. Layout lives here, apart from the logic that fills it."""

from __future__ import annotations

from typing import Any

Block = dict[str, Any]

# Slack's practical ceiling for one message's text (streamed or posted) is about 11 KB;
# longer text goes on in the next message.
MESSAGE_BYTES = 10_000


def markdown(text: str) -> Block:
    """Standard Markdown, rendered by Slack as the model wrote it (12,000 chars a message)."""
    return {"type": "markdown", "text": text}


def context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def thinking() -> list[Block]:
    return [context("_Thinking…_")]


def message_link(channel: str, ts: str, thread_ts: str = "", label: str = "message") -> str:
    """A mrkdwn link to one message. The archives form needs no workspace domain: Slack
    redirects it; a reply in a thread also names its thread, or the link opens the channel."""
    url = f"https://slack.com/archives/{channel}/p{ts.replace('.', '')}"
    if thread_ts and thread_ts != ts:
        # & is one of the three characters mrkdwn wants escaped, inside links too.
        url += f"?thread_ts={thread_ts}&amp;cid={channel}"
    return f"<{url}|{label}>"
