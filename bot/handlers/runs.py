"""Bolt listeners for Act: the ``/run`` command and the run card's buttons.

Each acknowledges first (Slack allows 3 seconds), then works; refusals go back to the
person who typed or clicked as an ephemeral message, never to the channel. Block Kit action
ids become ``Decision``s here: the run services never see them.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond

from bot import logs
from bot.errors import BotError, RequestRefused
from bot.inflight import InFlight
from bot.notices import describe
from bot.render import buttons
from bot.runbooks import Catalog
from bot.runs import Decision, Requester
from bot.runs.invocation import is_help
from bot.runs.service import RunService
from bot.slack.calls import Tell, ephemeral

log = logging.getLogger(__name__)

DECISIONS = {
    buttons.APPROVE: Decision.APPROVE,
    buttons.DENY: Decision.DENY,
    buttons.WITHDRAW: Decision.WITHDRAW,
    buttons.RUN_NOW: Decision.RUN,
}


def register(app: AsyncApp, runs: RunService, inflight: InFlight) -> None:
    async def on_run(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        where = {"team": body.get("team_id"), "channel": body.get("channel_id")}
        with logs.trace(user=body.get("user_id"), **where):
            async with inflight.hold():
                await run_command(runs, body, ephemeral(respond))

    async def on_button(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        action = (body.get("actions") or [{}])[0]
        user = str((body.get("user") or {}).get("id", ""))
        request_id = str(action.get("value", ""))
        with logs.trace(request_id, run_id=request_id, user=user):
            async with inflight.hold():
                await click(runs, str(action.get("action_id", "")), request_id, user,
                            ephemeral(respond))  # fmt: skip

    app.command("/run")(on_run)
    for action_id in (*DECISIONS, buttons.CANCEL):
        app.action(action_id)(on_button)


async def click(runs: RunService, action_id: str, request_id: str, user: str, tell: Tell) -> None:
    """One click on a run card's button; what it refused is told to the clicker."""
    try:
        if action_id == buttons.CANCEL:
            await tell(await runs.cancel(request_id, user))
        else:
            await runs.decide(request_id, user, DECISIONS[action_id])
    except RequestRefused as exc:
        await tell(str(exc))
    except BotError as exc:
        log.error("decision failed: %s", exc)
        await tell(describe(exc))


async def run_command(runs: RunService, body: dict[str, Any], tell: Tell) -> None:
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
