"""The App Home tab: what waits for the person looking, and how the latest runs ended.

``RunService.overview`` decides what belongs in each list; this module only lays it out
and publishes it (``views.publish``, which replaces the whole tab each time). Approvers of
any runbook (the people who may see runs beyond their own) also see the last 7 days'
feedback on answers; ``home_publisher`` decides when a tab is drawn.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from bot.feedback import Tally
from bot.runs import Overview, RunRecord, RunState
from bot.slack.blocks import Block, context
from bot.slack.calls import slack_errors
from bot.text import clip, duration, when

# Lines shown per list, each cut to a length that keeps a section under Slack's 3,000 chars.
SHOWN = 10
_LINE_CHARS = 290

_STATE_ICONS = {
    RunState.PENDING: ":hourglass_flowing_sand:",
    RunState.APPROVED: ":white_check_mark:",
    RunState.RUNNING: ":gear:",
    RunState.SUCCEEDED: ":large_green_circle:",
    RunState.FAILED: ":red_circle:",
    RunState.CANCELLED: ":black_square_for_stop:",
    RunState.INTERRUPTED: ":red_circle:",
    RunState.DENIED: ":no_entry:",
    RunState.WITHDRAWN: ":leftwards_arrow_with_hook:",
    RunState.EXPIRED: ":alarm_clock:",
    RunState.OUTDATED: ":warning:",
}


def view(overview: Overview, tally: Tally | None = None) -> dict[str, Any]:
    """The tab; ``tally`` (the last 7 days' feedback on answers) only for those who may see it."""
    blocks: list[Block] = [_header("Ops copilot")]
    blocks += _section("Waiting for your approval", overview.to_decide, _pending_line)
    blocks += _section("Your requests waiting for approval", overview.asked, _pending_line)
    blocks += _section("Latest runs", overview.latest, _outcome_line)
    if tally is not None:
        blocks += _feedback(tally)
    blocks.append(context(f"Updated {when(time.time())}"))
    return {"type": "home", "blocks": blocks}


async def publish(client: AsyncWebClient, user: str, shown: dict[str, Any]) -> None:
    async with slack_errors("views.publish"):
        await client.views_publish(user_id=user, view=shown)


def _header(text: str) -> Block:
    return {"type": "header", "text": {"type": "plain_text", "text": text}}


def _section(title: str, records: list[RunRecord], line: Callable[[RunRecord], str]) -> list[Block]:
    # One section per list keeps the tab far below Slack's 100-block limit.
    lines = [clip(line(r), _LINE_CHARS) for r in records[:SHOWN]] or ["_Nothing here._"]
    if len(records) > SHOWN:
        lines.append(f"…and {len(records) - SHOWN} more")
    text = f"*{title}*\n" + "\n".join(lines)
    return [{"type": "divider"}, {"type": "section", "text": {"type": "mrkdwn", "text": text}}]


def _feedback(tally: Tally) -> list[Block]:
    text = f"*Feedback on answers, last 7 days*\n:+1: {tally.up}   :-1: {tally.down}"
    return [{"type": "divider"}, {"type": "section", "text": {"type": "mrkdwn", "text": text}}]


def _pending_line(record: RunRecord) -> str:
    return (
        f"{_STATE_ICONS[RunState.PENDING]} *{record.runbook}* {_params(record)} "
        f"· <@{record.requester}> in <#{record.channel}> · expires {when(record.expires_at)}"
    )


def _outcome_line(record: RunRecord) -> str:
    icon = _STATE_ICONS[record.state]
    took = f" in {duration(record.duration)}" if record.duration is not None else ""
    return (
        f"{icon} *{record.runbook}* {_params(record)} · {record.state}{took} "
        f"· <@{record.requester}> in <#{record.channel}> · {when(record.created_at)}"
    )


def _params(record: RunRecord) -> str:
    shown = " ".join(f"{k}={v}" for k, v in record.values.items() if v)
    return f"`{clip(shown, 80)}`" if shown else ""
