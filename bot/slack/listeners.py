"""Bolt listeners: parse what Slack sent, hand it to a service, report failures.

Bolt acknowledges events before these run, so slow work here never makes Slack retry.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot import notices
from bot.ask import AskService, traced
from bot.errors import BotError, SlackError
from bot.inflight import InFlight
from bot.slack import blocks
from bot.slack.calls import ephemeral, slack_errors
from bot.slack.events import Identity, Incoming, read_event

log = logging.getLogger(__name__)


def register(
    app: AsyncApp,
    ask: AskService,
    client: AsyncWebClient,
    identity: Identity,
    inflight: InFlight,
) -> None:
    async def on_message_event(body: dict[str, Any]) -> None:
        incoming = read_event(body, identity)
        if incoming is None:
            return
        async with inflight.hold():
            with traced(incoming.question):
                await _handle_question(ask, client, incoming)

    async def on_retry(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        retry_id = str(((body.get("actions") or [{}])[0]).get("value", ""))
        async with inflight.hold():
            try:
                retried = await ask.retry(retry_id)
            except BotError as exc:
                log.error("retry failed: %s", exc)
                retried = True
                await ephemeral(respond)(notices.describe(exc))
            if not retried:
                await ephemeral(respond)("That question was already retried (or is too old).")

    app.event("app_mention")(on_message_event)
    app.event("message")(on_message_event)
    app.action(blocks.RETRY)(on_retry)


async def _handle_question(ask: AskService, client: AsyncWebClient, incoming: Incoming) -> None:
    question = incoming.question
    try:
        if incoming.needs_active_thread and not await ask.is_following(
            question.team, question.channel, question.thread_ts
        ):
            return
        await ask.submit(question, incoming.dedupe)
    except BotError as exc:
        log.error("could not take a question in %s: %s", question.channel, exc)
        if incoming.needs_active_thread:
            return  # maybe not our thread at all: stay quiet rather than guess
        await _tell(client, question.channel, question.thread_ts, notices.describe(exc))


async def _tell(client: AsyncWebClient, channel: str, thread_ts: str, text: str) -> None:
    """Best effort: when even this fails, the log is all that is left."""
    try:
        async with slack_errors("chat.postMessage"):
            await client.chat_postMessage(channel=channel, thread_ts=thread_ts, text=text)
    except SlackError as exc:
        log.error("could not tell the user in %s: %s", channel, exc)
