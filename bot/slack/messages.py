"""The Slack calls an answer's messages are made of: post, edit, native streams, status.

Each call is one Web API method in ``slack_errors``; the caller has reserved its slot in
the budget, except for the cleanups (``stop_left``, ``freeze``), which wait for one briefly.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from slack_sdk.web.async_client import AsyncWebClient

from bot.errors import SlackError
from bot.slack import blocks
from bot.slack.budget import SlackBudget
from bot.slack.calls import slack_errors
from bot.text import clip

# The answer's log lines keep the one logger name operators filter on.
log = logging.getLogger("bot.slack.reply")

# Refusals that will not change: the channel edits messages from now on. Anything else
# (a rate limit, a network error) only sends this answer down the editing path.
PERMANENT_REFUSALS = {
    "channel_type_not_supported",
    "not_allowed",
    "not_allowed_token_type",
    "missing_scope",
    "unknown_method",
    "method_not_supported_for_channel_type",
    "feature_not_enabled",
    "team_not_allowed",
}
# A stream Slack has closed: it keeps what it shows, and needs no call to end it.
STREAM_GONE = {"message_not_in_streaming_state", "message_not_found", "stopped_by_user"}
# Ending a message the text has already left (stopping a stream, freezing a failed one) waits
# this long for a slot at most: the answer is done without it.
CLEANUP_WAIT = 10.0


@dataclass(frozen=True)
class Place:
    """Where an answer goes, and who it is for (native streams need the recipient)."""

    channel: str
    thread_ts: str
    user: str
    team: str
    is_dm: bool


async def post(
    client: AsyncWebClient, place: Place, message_blocks: list[blocks.Block], text: str
) -> str:
    """Post in the thread; the caller has reserved the channel's slot."""
    async with slack_errors("chat.postMessage"):
        response = await client.chat_postMessage(
            channel=place.channel,
            thread_ts=place.thread_ts,
            blocks=message_blocks,
            text=text,
        )
    return str(response["ts"])


async def update(
    client: AsyncWebClient, channel: str, ts: str, text: str, extra: list[blocks.Block]
) -> None:
    """Edit a message; the caller has reserved the chat.update slot."""
    async with slack_errors("chat.update"):
        await client.chat_update(
            channel=channel,
            ts=ts,
            blocks=[blocks.markdown(text), *extra],
            text=clip(text),
        )


async def start_stream(client: AsyncWebClient, place: Place) -> str:
    """Open a native stream in the thread and return its message's ts."""
    async with slack_errors("chat.startStream"):
        response = await client.chat_startStream(
            channel=place.channel,
            thread_ts=place.thread_ts,
            recipient_user_id=None if place.is_dm else place.user,
            recipient_team_id=None if place.is_dm else place.team,
        )
    return str(response["ts"])


async def append_stream(client: AsyncWebClient, channel: str, ts: str, text: str) -> None:
    async with slack_errors("chat.appendStream"):
        await client.chat_appendStream(channel=channel, ts=ts, markdown_text=text)


async def stop_stream(
    client: AsyncWebClient,
    channel: str,
    ts: str,
    text: str,
    closing: list[blocks.Block],
    status: str | None,
) -> None:
    """End a stream with its last text, the closing blocks and the session status."""
    async with slack_errors("chat.stopStream"):
        await client.chat_stopStream(
            channel=channel, ts=ts, markdown_text=text or None, blocks=closing or None,
            session_status=status,
        )  # fmt: skip


async def set_status(client: AsyncWebClient, place: Place, status: str) -> None:
    # Only assistant threads accept a status; elsewhere the streaming message shows it.
    try:
        async with slack_errors("assistant.threads.setStatus"):
            await client.assistant_threads_setStatus(
                channel_id=place.channel, thread_ts=place.thread_ts, status=status
            )
    except SlackError as exc:
        log.debug("no thread status here (%s)", exc.code)


async def stop_left(client: AsyncWebClient, budget: SlackBudget, channel: str, ts: str) -> None:
    """Stop a stream the text has gone on below."""
    if not await budget.take("chat.stopStream", max_wait=CLEANUP_WAIT):
        log.info("left a stream for Slack to close: no chat.stopStream slot")
        return
    try:
        async with slack_errors("chat.stopStream"):
            await client.chat_stopStream(channel=channel, ts=ts)
    except SlackError as exc:
        log.warning("could not stop a stream (%s)", exc.code)


async def freeze(
    client: AsyncWebClient, budget: SlackBudget, channel: str, ts: str, text: str
) -> None:
    """Make a message show exactly the text it was confirmed to hold (a failed append
    may or may not have landed); an empty stream is stopped instead, so no blank
    "typing" message stays above the continuation."""
    if not text:
        await stop_left(client, budget, channel, ts)
        return
    if not await budget.take("chat.update", max_wait=CLEANUP_WAIT):
        log.warning("could not freeze a message: no chat.update slot")
        return
    try:
        async with slack_errors("chat.update"):
            await client.chat_update(
                channel=channel, ts=ts, blocks=[blocks.markdown(text)], text=clip(text)
            )
    except SlackError as exc:
        log.warning("could not freeze a message (%s)", exc.code)
