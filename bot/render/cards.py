"""The run request card: what will run, who asked, and where it stands.

One function renders the card for every state, so the card updated in place after a
decision, an expiry or the end of a run always shows the same facts the approver saw.
Button values carry only the request id; the request itself stays in Redis.
"""

from __future__ import annotations

import json
from typing import Any

from bot.render.buttons import APPROVE, CANCEL, DENY, RUN_NOW, WITHDRAW, button
from bot.runs import RunRecord, RunState
from bot.slack.blocks import Block, context, message_link
from bot.text import clip, duration, when

_STATE_LINES = {
    RunState.PENDING: ":hourglass_flowing_sand: Waiting for approval",
    RunState.APPROVED: ":white_check_mark: Approved by {by} at {at}",
    RunState.DENIED: ":no_entry: Denied by {by} at {at}",
    RunState.WITHDRAWN: ":leftwards_arrow_with_hook: Withdrawn by {by} at {at}",
    RunState.EXPIRED: ":alarm_clock: Expired at {at} without a decision",
    RunState.OUTDATED: ":warning: Outdated: {reason}. Ask again with `/run`.",
    RunState.RUNNING: ":gear: Running (started {at})",
    RunState.SUCCEEDED: ":large_green_circle: Succeeded in {duration}",
    RunState.FAILED: ":red_circle: Failed after {duration}",
    RunState.CANCELLED: ":black_square_for_stop: Cancelled by {by} after {duration}",
    RunState.INTERRUPTED: ":red_circle: Failed after {duration} · interrupted by a restart",
}


def card(record: RunRecord, *, note: str | None = None) -> tuple[list[Block], str]:
    """Blocks and notification text for ``record`` in its current state."""
    blocks: list[Block] = [_summary(record), _details(record), *_tools(record)]
    blocks.append(context(_status(record) + (f" · {note}" if note else "")))
    buttons = _buttons(record)
    if buttons:
        blocks.append({"type": "actions", "block_id": f"run:{record.id}", "elements": buttons})
    return blocks, f"{_headline(record)}: {record.state}"


def _headline(record: RunRecord) -> str:
    """Who wants it, for the notification: never words the asker did not say."""
    if record.proposed:
        return f"Copilot proposes runbook {record.runbook} in reply to <@{record.requester}>"
    return f"Runbook {record.runbook} requested by <@{record.requester}>"


def _summary(record: RunRecord) -> Block:
    text = _proposal(record) if record.proposed else _request(record)
    if record.description:
        text += f": {record.description}"
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _request(record: RunRecord) -> str:
    return f"*<@{record.requester}>* requests runbook *{record.runbook}*"


def _proposal(record: RunRecord) -> str:
    # The model chose this, perhaps steered by the thread: say so, and link to what the asker
    # actually wrote, so an approver can weigh the card against it.
    line = f"*Copilot proposes* runbook *{record.runbook}* in reply to <@{record.requester}>"
    if not record.reply_to:
        return line
    link = message_link(record.channel, record.reply_to, record.thread_ts, "their message")
    return f"{line} ({link})"


def _details(record: RunRecord) -> Block:
    params = " ".join(f"`{k}={v}`" for k, v in record.values.items() if v) or "_none_"
    targets = sorted(_targets(record.body))
    fields = [
        {"type": "mrkdwn", "text": f"*Parameters*\n{params}"},
        {"type": "mrkdwn", "text": "*Target app*\n" + (", ".join(targets) or "_none_")},
    ]
    if record.needs_approval and record.state.waiting:
        fields.append({"type": "mrkdwn", "text": f"*Expires*\n{when(record.expires_at)}"})
    return {"type": "section", "fields": fields}


def _tools(record: RunRecord) -> list[Block]:
    lines = [_tool_line(tool) for tool in record.body.get("tools", [])]
    if not lines:
        return []
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": "*Will run*\n" + "\n".join(lines)}}
    ]


def _tool_line(tool: dict[str, Any]) -> str:
    params = tool.get("runtime_params") or {}
    detail = (params.get("tool_params") or {}).get("cmd") or params.get("tool_params") or ""
    shown = detail if isinstance(detail, str) else json.dumps(detail, sort_keys=True)
    line = f"• `{tool.get('type')}` *{tool.get('name')}*"
    return line + (f": `{clip(shown, 200)}`" if shown else "")


def _targets(body: dict[str, Any]) -> set[str]:
    found = set()
    for tool in body.get("tools", []):
        app = (tool.get("runtime_params") or {}).get("target_app_name")
        if app:
            found.add(str(app))
    return found


def _status(record: RunRecord) -> str:
    line = _state_line(record)
    if record.state.ran and record.approved_by:
        line += f" · approved by <@{record.approved_by}>"
    return line


def _state_line(record: RunRecord) -> str:
    by = record.ended_by if record.state is RunState.CANCELLED else record.decided_by
    return _STATE_LINES[record.state].format(
        by=f"<@{by}>" if by else "someone",
        at=when(_moment(record)),
        duration=duration(record.duration or 0.0),
        reason=record.outdated_reason or "the runbooks file changed since this request",
    )


def _moment(record: RunRecord) -> float:
    """When the record reached its current state."""
    if record.state is RunState.RUNNING:
        return record.started_at or record.created_at
    return record.ended_at or record.decided_at or record.created_at


def _buttons(record: RunRecord) -> list[Block]:
    rid = record.id
    if record.state.waiting and record.needs_approval:
        return [
            button("Approve", APPROVE, rid, "primary"),
            button("Deny", DENY, rid, "danger"),
            button("Withdraw", WITHDRAW, rid),
        ]
    if record.state.waiting:
        return [button("Run", RUN_NOW, rid, "primary"), button("Withdraw", WITHDRAW, rid)]
    if record.state is RunState.RUNNING:
        return [button("Cancel", CANCEL, rid, "danger")]
    return []
