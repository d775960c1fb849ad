"""Bolt listener for the feedback buttons under each answer: one click, one vote."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck

from bot import logs
from bot.errors import BotError
from bot.feedback import Feedback, Vote
from bot.inflight import InFlight
from bot.render import buttons

log = logging.getLogger(__name__)


def register(app: AsyncApp, feedback: Feedback, inflight: InFlight) -> None:
    async def on_feedback(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        action = (body.get("actions") or [{}])[0]
        user = str((body.get("user") or {}).get("id", ""))
        parsed = buttons.parse_feedback(str(action.get("value", "")))
        if parsed is None or not user:
            log.warning("feedback click with an unknown value ignored")
            return
        vote, answer = parsed
        # The answer's own trace id: the vote lines up with the answer's log lines.
        with logs.trace(answer, user=user):
            async with inflight.hold():
                try:
                    await feedback.record(answer, user, Vote(vote))
                except BotError as exc:
                    log.error("could not record feedback: %s", exc)

    app.action(buttons.FEEDBACK)(on_feedback)
