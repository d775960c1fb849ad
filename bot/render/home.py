"""The App Home tab: what waits for the person looking, and how the latest runs ended.

``RunService.overview`` decides what belongs in each list; this module only lays it out
and publishes it (``views.publish``, which replaces the whole tab each time).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from bot.markdown import preview
from bot.slack.blocks import Block, context
from bot.slack.calls import slack_errors
from bot.state.requests import RunRecord

LATEST = 10
# Lines shown per list, each cut to a length that keeps a section under Slack's 3,000 chars.
SHOWN = 10
_LINE_CHARS = 290

_STATE_ICONS = {
    "pending": ":hourglass_flowing_sand:",
    "approved": ":white_check_mark:",
    "running": ":gear:",
    "succeeded": ":large_green_circle:",
    "failed": ":red_circle:",
    "cancelled": ":black_square_for_stop:",
    "denied": ":no_entry:",
    "withdrawn": ":leftwards_arrow_with_hook:",
    "expired": ":alarm_clock:",
}


@dataclass(frozen=True)
class Overview:
    to_decide: list[RunRecord] = field(default_factory=list)  # pending, this person may approve
    asked: list[RunRecord] = field(default_factory=list)  # pending, this person requested
    latest: list[RunRecord] = field(default_factory=list)  # decided or run, newest first


def view(overview: Overview) -> dict[str, Any]:
    blocks: list[Block] = [_header("Ops copilot")]
    blocks += _section("Waiting for your approval", overview.to_decide, _pending_line)
    blocks += _section("Your requests waiting for approval", overview.asked, _pending_line)
    blocks += _section("Latest runs", overview.latest, _outcome_line)
    blocks.append(context(f"Updated {_when(time.time())}"))
    return {"type": "home", "blocks": blocks}


async def publish(client: AsyncWebClient, user: str, overview: Overview) -> None:
    async with slack_errors("views.publish"):
        await client.views_publish(user_id=user, view=view(overview))


def _header(text: str) -> Block:
    return {"type": "header", "text": {"type": "plain_text", "text": text}}


def _section(title: str, records: list[RunRecord], line: Callable[[RunRecord], str]) -> list[Block]:
    # One section per list keeps the tab far below Slack's 100-block limit.
    lines = [preview(line(r), _LINE_CHARS) for r in records[:SHOWN]] or ["_Nothing here._"]
    if len(records) > SHOWN:
        lines.append(f"…and {len(records) - SHOWN} more")
    text = f"*{title}*\n" + "\n".join(lines)
    return [{"type": "divider"}, {"type": "section", "text": {"type": "mrkdwn", "text": text}}]


def _pending_line(record: RunRecord) -> str:
    return (
        f"{_STATE_ICONS['pending']} *{record.runbook}* {_params(record)} "
        f"· <@{record.requester}> in <#{record.channel}> · expires {_when(record.expires_at)}"
    )


def _outcome_line(record: RunRecord) -> str:
    icon = _STATE_ICONS.get(record.state, ":grey_question:")
    duration = _duration(record)
    took = f" in {duration}" if duration else ""
    return (
        f"{icon} *{record.runbook}* {_params(record)} · {record.state}{took} "
        f"· <@{record.requester}> in <#{record.channel}> · {_when(record.created_at)}"
    )


def _params(record: RunRecord) -> str:
    shown = " ".join(f"{k}={v}" for k, v in record.values.items() if v)
    return f"`{preview(shown, 80)}`" if shown else ""


def _duration(record: RunRecord) -> str:
    started, ended = record.at("running"), record.at(record.state)
    if started is None or ended is None or record.state == "running":
        return ""
    seconds = max(0, round(ended - started))
    return f"{seconds // 60} min {seconds % 60} s" if seconds >= 60 else f"{seconds} s"


def _when(at: float) -> str:
    """Slack shows the date in each reader's own time zone; the fallback is UTC."""
    fallback = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(at))
    return f"<!date^{int(at)}^{{date_short_pretty}} {{time}}|{fallback}>"
