"""The App Home tab, drawn for whoever opens it; the Messages tab greets once a day."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncApp

from bot import logs
from bot.errors import BotError
from bot.greeting import Greeter
from bot.inflight import InFlight
from bot.render.home_publisher import HomePublisher

log = logging.getLogger(__name__)


def register(app: AsyncApp, homes: HomePublisher, inflight: InFlight, greeter: Greeter) -> None:
    async def on_home_opened(event: dict[str, Any], body: dict[str, Any]) -> None:
        user = str(event.get("user", ""))
        if event.get("tab") == "messages":
            await on_messages_opened(user, str(event.get("channel", "")), body)
            return
        if event.get("tab") != "home":
            return
        with logs.trace(user=user):
            async with inflight.hold():
                try:
                    await homes.publish(user)
                except BotError as exc:
                    log.error("could not publish App Home: %s", exc)

    async def on_messages_opened(user: str, channel: str, body: dict[str, Any]) -> None:
        with logs.trace(user=user):
            async with inflight.hold():
                try:
                    await greeter.greet(user, channel, team=str(body.get("team_id") or ""))
                except BotError as exc:
                    log.error("could not greet in the Messages tab: %s", exc)

    app.event("app_home_opened")(on_home_opened)
