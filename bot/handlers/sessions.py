"""The stop button of an agent session: ``agent_session_stopped`` events.

Slack sends the event to whichever web process it reaches (Events API) or over Socket Mode;
the work it stops may be in any process. The answer streaming in the thread is told
through Redis (``bot.ask.stops``); a run watched there is cancelled as a Cancel click would
(``RunService.stop_watching``). A thread with nothing in progress is left as it is.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncApp

from bot import logs
from bot.ask.stops import StopSignals
from bot.errors import BotError
from bot.inflight import InFlight
from bot.runs.service import RunService

log = logging.getLogger(__name__)


def register(
    app: AsyncApp, stops: StopSignals, runs: RunService, inflight: InFlight, team: str
) -> None:
    async def on_session_stopped(body: dict[str, Any], event: dict[str, Any]) -> None:
        where = (
            str(body.get("team_id") or team),
            str(event.get("channel") or ""),
            str(event.get("thread_ts") or ""),
        )
        user = str(event.get("user") or "")
        with logs.trace(team=where[0], channel=where[1], thread=where[2], user=user):
            if not all(where) or not user:
                log.info("agent_session_stopped without a thread or user; nothing to stop")
                return
            async with inflight.hold():
                await _stop(stops, runs, where, user)

    app.event("agent_session_stopped")(on_session_stopped)


async def _stop(
    stops: StopSignals, runs: RunService, where: tuple[str, str, str], user: str
) -> None:
    try:
        answer = await stops.press(*where, user)
        run = await runs.stop_watching(*where, user)
    except BotError as exc:
        log.error("could not stop the work in this thread: %s", exc)
        return
    if answer or run:
        log.info("stop requested", extra={"answer": answer, "run": run})
    else:
        log.info("nothing to stop")
