"""Bolt listeners for Act: the ``/run`` command, the card's buttons, and the App Home tab.

Each acknowledges first (Slack allows 3 seconds), then works; refusals go back to the
person who typed or clicked as an ephemeral message, never to the channel.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot import logs
from bot.errors import BotError, RequestRefused
from bot.inflight import InFlight
from bot.notices import describe
from bot.run_command import is_help
from bot.runbooks import Catalog
from bot.runs import Requester, RunService
from bot.slack import cards, home
from bot.slack.calls import ephemeral

log = logging.getLogger(__name__)


def register(app: AsyncApp, runs: RunService, inflight: InFlight) -> None:
    async def on_run(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        where = {"team": body.get("team_id"), "channel": body.get("channel_id")}
        with logs.trace(user=body.get("user_id"), **where):
            async with inflight.hold():
                await _run_command(runs, body, ephemeral(respond))

    async def on_decision(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        action = (body.get("actions") or [{}])[0]
        user = str((body.get("user") or {}).get("id", ""))
        tell = ephemeral(respond)
        request_id = str(action.get("value", ""))
        with logs.trace(request_id, run_id=request_id, user=user):
            async with inflight.hold():
                try:
                    if action.get("action_id") == cards.CANCEL:
                        await runs.cancel(request_id, user, tell)
                    else:
                        await runs.decide(request_id, user, action["action_id"], tell)
                except BotError as exc:
                    log.error("decision failed: %s", exc)
                    await tell(describe(exc))

    async def on_home_opened(event: dict[str, Any], client: AsyncWebClient) -> None:
        if event.get("tab") != "home":
            return  # the Messages tab is the DM with the bot: nothing to draw
        user = str(event.get("user", ""))
        with logs.trace(user=user):
            async with inflight.hold():
                try:
                    await home.publish(client, user, await runs.overview(user))
                except BotError as exc:
                    log.error("could not publish App Home: %s", exc)

    app.command("/run")(on_run)
    for action_id in (cards.APPROVE, cards.DENY, cards.WITHDRAW, cards.RUN_NOW, cards.CANCEL):
        app.action(action_id)(on_decision)
    app.event("app_home_opened")(on_home_opened)


async def _run_command(runs: RunService, body: dict[str, Any], tell: Any) -> None:
    text = str(body.get("text") or "")
    if is_help(text):
        await tell(help_text(runs.catalog))
        return
    who = Requester(
        user=str(body.get("user_id", "")),
        team=str(body.get("team_id", "")),
        channel=str(body.get("channel_id", "")),
    )
    try:
        await runs.request(who, text)
    except RequestRefused as exc:
        await tell(str(exc))
    except BotError as exc:
        log.error("/run failed: %s", exc)
        await tell(describe(exc))


def help_text(catalog: Catalog) -> str:
    if not catalog.runbooks:
        return "No runbooks are configured yet: add them to the runbooks file (RUNBOOKS_FILE)."
    lines = ["*Runbooks* — `/run <runbook> key=value …`"]
    for name, runbook in catalog.runbooks.items():
        approval = "needs approval" if runbook.approval else "runs at once"
        lines.append(f"• `{name}` — {runbook.description or 'no description'} · _{approval}_")
        for key, param in runbook.params.items():
            need = "required" if param.required and param.default is None else "optional"
            default = f", default `{param.default}`" if param.default else ""
            lines.append(f"      `{key}` ({need}{default}): {param.allowed()}")
    return "\n".join(lines)
