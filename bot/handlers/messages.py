"""Bolt listeners for Ask: message events (Socket Mode) and the Retry button.

Bolt acknowledges events before these run, so slow work here never makes Slack retry.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond

from bot import notices
from bot.ask import ThreadScheduler
from bot.errors import BotError
from bot.handlers.intake import Intake
from bot.inflight import InFlight
from bot.render import buttons
from bot.slack.calls import ephemeral

log = logging.getLogger(__name__)


def register(app: AsyncApp, scheduler: ThreadScheduler, intake: Intake, inflight: InFlight) -> None:
    async def on_message_event(body: dict[str, Any]) -> None:
        await intake.take(body)

    async def on_retry(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        retry_id = str(((body.get("actions") or [{}])[0]).get("value", ""))
        async with inflight.hold():
            try:
                retried = await scheduler.retry(retry_id)
            except BotError as exc:
                log.error("retry failed: %s", exc)
                retried = True
                await ephemeral(respond)(notices.describe(exc))
            if not retried:
                await ephemeral(respond)("That question was already retried (or is too old).")

    # Over HTTP, message events take the fast path in bot.handlers.intake before Bolt sees them;
    # these listeners serve Socket Mode, and any delivery the fast path leaves to Bolt.
    app.event("app_mention")(on_message_event)
    app.event("message")(on_message_event)
    app.action(buttons.RETRY)(on_retry)
