"""The run request card: what will run, who asked, and where it stands.

One function renders the card for every state, so the card updated in place after a
decision, an expiry or the end of a run always shows the same facts the approver saw.
Button values carry only the request id; the request itself stays in Redis.
"""

from __future__ import annotations

import json
import time
from typing import Any

from bot.markdown import preview
from bot.slack.blocks import Block, context
from bot.state.requests import RunRecord

APPROVE = "copilot_approve"
DENY = "copilot_deny"
WITHDRAW = "copilot_withdraw"
CANCEL = "copilot_cancel"
RUN_NOW = "copilot_run"

_STATE_LINES = {
    "pending": ":hourglass_flowing_sand: Waiting for approval",
    "approved": ":white_check_mark: Approved by {by} at {at}",
    "denied": ":no_entry: Denied by {by} at {at}",
    "withdrawn": ":leftwards_arrow_with_hook: Withdrawn by {by} at {at}",
    "expired": ":alarm_clock: Expired at {at} without a decision",
    "running": ":gear: Running (started {at})",
    "succeeded": ":large_green_circle: Succeeded in {duration}",
    "failed": ":red_circle: Failed after {duration}",
    "cancelled": ":black_square_for_stop: Cancelled by {by} after {duration}",
}


def card(record: RunRecord, *, note: str | None = None) -> tuple[list[Block], str]:
    """Blocks and notification text for ``record`` in its current state."""
    blocks: list[Block] = [_summary(record), _details(record), *_tools(record)]
    blocks.append(context(_status(record) + (f" · {note}" if note else "")))
    buttons = _buttons(record)
    if buttons:
        blocks.append({"type": "actions", "block_id": f"run:{record.id}", "elements": buttons})
    return blocks, f"Runbook {record.runbook} requested by <@{record.requester}>: {record.state}"


def _summary(record: RunRecord) -> Block:
    description = record.fields.get("description", "")
    text = f"*<@{record.requester}>* requests runbook *{record.runbook}*"
    if description:
        text += f": {description}"
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _details(record: RunRecord) -> Block:
    params = " ".join(f"`{k}={v}`" for k, v in record.values.items() if v) or "_none_"
    targets = sorted(_targets(record.body))
    fields = [
        {"type": "mrkdwn", "text": f"*Parameters*\n{params}"},
        {"type": "mrkdwn", "text": "*Target app*\n" + (", ".join(targets) or "_none_")},
    ]
    if record.needs_approval and record.state == "pending":
        fields.append({"type": "mrkdwn", "text": f"*Expires*\n{_when(record.expires_at)}"})
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
    return line + (f": `{preview(shown, 200)}`" if shown else "")


def _targets(body: dict[str, Any]) -> set[str]:
    found = set()
    for tool in body.get("tools", []):
        app = (tool.get("runtime_params") or {}).get("target_app_name")
        if app:
            found.add(str(app))
    return found


def _status(record: RunRecord) -> str:
    line = _state_line(record)
    approver = record.by("approved")
    if record.needs_approval and approver and record.state in _AFTER_APPROVAL:
        line += f" · approved by <@{approver}>"
    return line


_AFTER_APPROVAL = {"running", "succeeded", "failed", "cancelled"}


def _state_line(record: RunRecord) -> str:
    state = record.state
    template = _STATE_LINES.get(state, state)
    by = record.by(state) or record.by("approved") or ""
    started = record.at("running") or record.at("approved") or record.created_at
    ended = record.at(state) or started
    return template.format(
        by=f"<@{by}>" if by else "someone",
        at=_when(record.at(state) or record.created_at),
        duration=_duration(ended - started),
    )


def _buttons(record: RunRecord) -> list[Block]:
    rid = record.id
    if record.state == "pending" and record.needs_approval:
        return [
            _button("Approve", APPROVE, rid, "primary"),
            _button("Deny", DENY, rid, "danger"),
            _button("Withdraw", WITHDRAW, rid, None),
        ]
    if record.state == "pending":
        return [_button("Run", RUN_NOW, rid, "primary"), _button("Withdraw", WITHDRAW, rid, None)]
    if record.state == "running":
        return [_button("Cancel", CANCEL, rid, "danger")]
    return []


def _button(label: str, action_id: str, value: str, style: str | None) -> Block:
    button: Block = {
        "type": "button",
        "text": {"type": "plain_text", "text": label},
        "action_id": action_id,
        "value": value,
    }
    if style:
        button["style"] = style
    return button


def _when(epoch: float) -> str:
    stamp = int(epoch)
    fallback = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(stamp))
    return f"<!date^{stamp}^{{date_short_pretty}} {{time}}|{fallback}>"


def _duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes} min {rest} s"
