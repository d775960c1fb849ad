"""Reading a thread from the Web API: ``conversations.replies``, paged, each call taking its
slot in the shared budget (Tier 3). Failures are ``SlackError``s, like every call here;
the caller answers without the thread and says so."""

from __future__ import annotations

from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from bot.errors import SlackError
from bot.redact import mask
from bot.slack.budget import SlackBudget
from bot.slack.calls import slack_errors
from bot.thread_context import ThreadMessage

METHOD = "conversations.replies"
REPLIES_PAGE = 200
# A thread longer than this many pages is read no further: its older part is what we have.
REPLIES_PAGES = 5
# A slot further away than this is not waited for: the answer goes on without the thread.
BUDGET_WAIT = 2.0


async def read_thread(
    client: AsyncWebClient,
    budget: SlackBudget,
    channel: str,
    thread_ts: str,
    *,
    before: str,
    bot_user: str,
) -> list[ThreadMessage]:
    """The thread's messages older than ``before``, oldest first, masked."""
    seen: dict[str, ThreadMessage] = {}
    cursor = ""
    for _ in range(REPLIES_PAGES):
        if not await budget.take(METHOD, max_wait=BUDGET_WAIT):
            raise SlackError(METHOD, "ratelimited")
        async with slack_errors(METHOD):
            response = await client.conversations_replies(
                channel=channel,
                ts=thread_ts,
                latest=before,  # exclusive: the question itself is not context
                limit=REPLIES_PAGE,
                cursor=cursor or None,
            )
        for raw in response.get("messages") or []:
            message = _message(raw, bot_user)
            if message is not None:
                seen[message.ts] = message  # Slack may repeat the parent on each page
        cursor = str((response.get("response_metadata") or {}).get("next_cursor") or "")
        if not cursor:
            break
    return list(seen.values())


def _message(raw: Any, bot_user: str) -> ThreadMessage | None:
    if not isinstance(raw, dict) or not raw.get("ts"):
        return None
    text = str(raw.get("text") or "")
    if not text.strip():
        return None  # a file without a comment, a deleted message's placeholder
    user, bot = str(raw.get("user") or ""), str(raw.get("bot_id") or "")
    if user == bot_user:
        return ThreadMessage(str(raw["ts"]), user, mask(text), "self")
    if bot and not user:
        return ThreadMessage(str(raw["ts"]), bot, mask(text), "app")
    return ThreadMessage(str(raw["ts"]), user, mask(text), "person")
