"""Bolt listeners for Act: the ``/run`` command and the card's buttons.

Each acknowledges first (Slack allows 3 seconds), then works; refusals go back to the
person who typed or clicked as an ephemeral message, never to the channel.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond

from bot.errors import BotError, RequestRefused
from bot.inflight import InFlight
from bot.notices import describe
from bot.run_command import is_help
from bot.runbooks import Catalog
from bot.runs import Requester, RunService
from bot.slack import cards

log = logging.getLogger(__name__)


def register(app: AsyncApp, runs: RunService, inflight: InFlight) -> None:
    async def on_run(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        async with inflight.hold():
            await _run_command(runs, body, _ephemeral(respond))

    async def on_decision(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        action = (body.get("actions") or [{}])[0]
        user = str((body.get("user") or {}).get("id", ""))
        tell = _ephemeral(respond)
        async with inflight.hold():
            try:
                if action.get("action_id") == cards.CANCEL:
                    await runs.cancel(str(action.get("value", "")), user, tell)
                else:
                    await runs.decide(str(action.get("value", "")), user, action["action_id"], tell)
            except BotError as exc:
                log.error("decision failed: %s", exc)
                await tell(describe(exc))

    app.command("/run")(on_run)
    for action_id in (cards.APPROVE, cards.DENY, cards.WITHDRAW, cards.RUN_NOW, cards.CANCEL):
        app.action(action_id)(on_decision)


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


def _ephemeral(respond: AsyncRespond) -> Any:
    async def tell(text: str) -> None:
        try:
            await respond(text=text, response_type="ephemeral", replace_original=False)
        except Exception as exc:  # the response_url is Slack's own HTTP endpoint: log, go on
            log.warning("could not answer via response_url: %r", exc)

    return tell


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
