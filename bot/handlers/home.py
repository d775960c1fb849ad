"""The App Home tab, drawn for whoever opens it."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncApp

from bot import logs
from bot.errors import BotError
from bot.inflight import InFlight
from bot.render.home_publisher import HomePublisher

log = logging.getLogger(__name__)


def register(app: AsyncApp, homes: HomePublisher, inflight: InFlight) -> None:
    async def on_home_opened(event: dict[str, Any]) -> None:
        if event.get("tab") != "home":
            return  # the Messages tab is the DM with the bot: nothing to draw
        user = str(event.get("user", ""))
        with logs.trace(user=user):
            async with inflight.hold():
                try:
                    await homes.publish(user)
                except BotError as exc:
                    log.error("could not publish App Home: %s", exc)

    app.event("app_home_opened")(on_home_opened)
