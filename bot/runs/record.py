"""A run request as the bot keeps it: what was asked, the exact body to send, and its story.

The record is stored as one Redis hash; ``to_fields`` and ``from_fields`` are the only
places that know its layout. Each move stamps who made it and when (``stamps``), in the same
atomic step, so the card, App Home and the audit log read the same facts.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from bot.runs.states import RunState


@dataclass(frozen=True)
class Requester:
    """Who asks for a run, from where."""

    user: str
    team: str
    channel: str


@dataclass(frozen=True)
class RunRecord:
    """A run request; ``body`` is the exact Agents API request its run sends."""

    id: str
    runbook: str
    description: str
    requester: str
    team: str
    channel: str
    card_ts: str
    thread_ts: str  # the thread the card was posted in, or "" for a card in the channel
    values: dict[str, str]
    body: dict[str, Any]
    approvers: list[str]
    allow_self_approval: bool
    needs_approval: bool
    proposed: bool  # the copilot proposed it in answer to ``requester``
    created_at: float
    expires_at: float
    state: RunState
    decided_by: str | None = None
    decided_at: float | None = None
    started_at: float | None = None
    ended_at: float | None = None
    ended_by: str | None = None
    # The ts of the message a proposal answers (the card links to it); "" for ``/run``.
    reply_to: str = ""
    outdated_reason: str | None = None  # why the file in force would not run it as stored

    @property
    def run_thread(self) -> str:
        """Where the run's progress goes: the card's own thread, or the thread it sits in."""
        return self.thread_ts or self.card_ts

    @property
    def approved_by(self) -> str | None:
        """The approver whose click let it run (None when it needed no approval)."""
        if not self.needs_approval or not (self.state.underway or self.state.ran):
            return None
        return self.decided_by

    @property
    def duration(self) -> float | None:
        """Seconds from start to end of a run that has ended."""
        if self.started_at is None or self.ended_at is None:
            return None
        return max(0.0, self.ended_at - self.started_at)

    def values_line(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.values.items() if v)


@dataclass(frozen=True)
class Overview:
    """What one person sees of the run requests in App Home."""

    to_decide: list[RunRecord] = field(default_factory=list)  # pending, theirs to approve
    asked: list[RunRecord] = field(default_factory=list)  # pending, they requested
    latest: list[RunRecord] = field(default_factory=list)  # decided or run, newest first


def new_id() -> str:
    return uuid.uuid4().hex


def stamps(target: RunState, who: str, now: float, *, reason: str | None = None) -> dict[str, str]:
    """The fields a move to ``target`` writes beside the new state; ``reason`` says why a
    request became outdated."""
    at = repr(now)
    if target is RunState.RUNNING:
        return {"started_at": at}
    if target in _DECIDED:
        return {"decided_by": who, "decided_at": at}
    ended = {"ended_by": who, "ended_at": at}
    if target is RunState.OUTDATED and reason is not None:
        ended["outdated_reason"] = reason
    return ended


_DECIDED = frozenset({RunState.APPROVED, RunState.DENIED, RunState.WITHDRAWN, RunState.EXPIRED})


def to_fields(record: RunRecord) -> dict[str, str]:
    fields = {
        "runbook": record.runbook,
        "description": record.description,
        "requester": record.requester,
        "team": record.team,
        "channel": record.channel,
        "card_ts": record.card_ts,
        "thread_ts": record.thread_ts,
        "values": json.dumps(record.values),
        "body": json.dumps(record.body),
        "approvers": json.dumps(record.approvers),
        "allow_self": _flag(record.allow_self_approval),
        "needs_approval": _flag(record.needs_approval),
        "proposed": _flag(record.proposed),
        "reply_to": record.reply_to,
        "created_at": repr(record.created_at),
        "expires_at": repr(record.expires_at),
        "state": record.state.value,
    }
    optional = {
        "decided_by": record.decided_by,
        "decided_at": _time(record.decided_at),
        "started_at": _time(record.started_at),
        "ended_at": _time(record.ended_at),
        "ended_by": record.ended_by,
        "outdated_reason": record.outdated_reason,
    }
    return fields | {k: v for k, v in optional.items() if v is not None}


def from_fields(request_id: str, f: dict[str, str]) -> RunRecord:
    return RunRecord(
        id=request_id,
        runbook=f.get("runbook", ""),
        description=f.get("description", ""),
        requester=f.get("requester", ""),
        team=f.get("team", ""),
        channel=f.get("channel", ""),
        card_ts=f.get("card_ts", ""),
        thread_ts=f.get("thread_ts", ""),
        values=json.loads(f.get("values", "{}")),
        body=json.loads(f.get("body", "{}")),
        approvers=json.loads(f.get("approvers", "[]")),
        allow_self_approval=f.get("allow_self") == "1",
        needs_approval=f.get("needs_approval") == "1",
        proposed=f.get("proposed") == "1",
        created_at=float(f.get("created_at", "0")),
        expires_at=float(f.get("expires_at", "0")),
        state=RunState(f.get("state", RunState.FAILED.value)),
        decided_by=f.get("decided_by"),
        decided_at=_float(f.get("decided_at")),
        started_at=_float(f.get("started_at")),
        ended_at=_float(f.get("ended_at")),
        ended_by=f.get("ended_by"),
        reply_to=f.get("reply_to", ""),
        outdated_reason=f.get("outdated_reason"),
    )


def _flag(value: bool) -> str:
    return "1" if value else "0"


def _time(value: float | None) -> str | None:
    return repr(value) if value is not None else None


def _float(raw: str | None) -> float | None:
    return float(raw) if raw else None
