"""Run requests in Redis: the exact request behind a card, its state, and the audit log.

A request moves ``pending → approved | denied | withdrawn | expired``, then
``approved → running → succeeded | failed | cancelled``. Every move is one Lua step that
checks the current state (and, for decisions, the expiry), so two approvers clicking at
once, or one double-clicking, make exactly one move.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

import redis.asyncio as redis

from bot.state import keys
from bot.state.connect import redis_errors

_MOVE = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return 'missing' end
if state ~= ARGV[1] then return state end
if ARGV[5] == '1' and tonumber(ARGV[4]) >= tonumber(redis.call('HGET', KEYS[1], 'expires_at')) then
  return 'expired'
end
redis.call('HSET', KEYS[1], 'state', ARGV[2], 'by_' .. ARGV[2], ARGV[3], 'at_' .. ARGV[2], ARGV[4])
if ARGV[1] == 'pending' then redis.call('ZREM', KEYS[2], ARGV[6]) end
return 'ok'
"""

DECISIONS = ("approved", "denied", "withdrawn")


@dataclass(frozen=True)
class RunRecord:
    """A run request as stored; ``body`` is the exact Agents API request to send."""

    id: str
    runbook: str
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
    created_at: float
    expires_at: float
    state: str
    fields: dict[str, str]

    @property
    def run_thread(self) -> str:
        """Where the run's progress goes: the card's own thread, or the thread it sits in."""
        return self.thread_ts or self.card_ts

    def by(self, state: str) -> str | None:
        return self.fields.get(f"by_{state}")

    def at(self, state: str) -> float | None:
        raw = self.fields.get(f"at_{state}")
        return float(raw) if raw else None


def new_id() -> str:
    return uuid.uuid4().hex


class RequestStore:
    def __init__(self, client: redis.Redis) -> None:
        self._redis = client
        self._move = client.register_script(_MOVE)

    async def create(self, record: RunRecord) -> None:
        mapping: dict[Any, Any] = {
            **record.fields,
            "runbook": record.runbook,
            "requester": record.requester,
            "team": record.team,
            "channel": record.channel,
            "card_ts": record.card_ts,
            "thread_ts": record.thread_ts,
            "values": json.dumps(record.values),
            "body": json.dumps(record.body),
            "approvers": json.dumps(record.approvers),
            "allow_self": "1" if record.allow_self_approval else "0",
            "needs_approval": "1" if record.needs_approval else "0",
            "created_at": str(record.created_at),
            "expires_at": str(record.expires_at),
            "state": record.state,
        }
        key = keys.request(record.id)
        async with redis_errors(), self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping=mapping)
            pipe.expire(key, keys.REQUEST_TTL)
            if record.state == "pending":
                pipe.zadd(keys.pending_requests(), {record.id: record.expires_at})
            recent = keys.recent_requests()
            pipe.zadd(recent, {record.id: record.created_at})
            pipe.zremrangebyrank(recent, 0, -keys.RECENT_REQUESTS_MAX - 1)
            pipe.expire(recent, keys.REQUEST_TTL)
            await pipe.execute()

    async def set_card(self, request_id: str, card_ts: str) -> None:
        async with redis_errors():
            await self._redis.hset(keys.request(request_id), "card_ts", card_ts)

    async def get(self, request_id: str) -> RunRecord | None:
        async with redis_errors():
            raw: dict[str, str] = await self._redis.hgetall(keys.request(request_id))  # type: ignore[assignment]
        return _record(request_id, raw) if raw else None

    async def recent(self, limit: int = keys.RECENT_REQUESTS_MAX) -> list[RunRecord]:
        """The newest requests first; ids whose hash has expired are skipped."""
        async with redis_errors():
            newest = await self._redis.zrevrange(keys.recent_requests(), 0, limit - 1)
            ids = [str(i) for i in newest]
            async with self._redis.pipeline(transaction=False) as pipe:
                for request_id in ids:
                    pipe.hgetall(keys.request(request_id))
                rows: list[dict[str, str]] = await pipe.execute()
        return [_record(i, raw) for i, raw in zip(ids, rows, strict=True) if raw]

    async def move(self, request_id: str, source: str, target: str, who: str) -> str:
        """Move ``source → target`` atomically; 'ok', or the state that prevented it."""
        check_expiry = "1" if source == "pending" and target != "expired" else "0"
        args = [source, target, who, repr(time.time()), check_expiry, request_id]
        async with redis_errors():
            result = await self._move(
                keys=[keys.request(request_id), keys.pending_requests()], args=args
            )
        return str(result)

    async def due_for_expiry(self, now: float, limit: int = 50) -> list[str]:
        async with redis_errors():
            ids = await self._redis.zrangebyscore(
                keys.pending_requests(), "-inf", now, start=0, num=limit
            )
        return [str(i) for i in ids]

    async def forget_pending(self, request_id: str) -> None:
        async with redis_errors():
            await self._redis.zrem(keys.pending_requests(), request_id)

    async def audit(self, what: str, **fields: str) -> None:
        entry: dict[Any, Any] = {**fields, "action": what, "at": repr(time.time())}
        async with redis_errors():
            await self._redis.xadd(
                keys.audit_log(), entry, maxlen=keys.AUDIT_MAXLEN, approximate=True
            )


def _record(request_id: str, f: dict[str, str]) -> RunRecord:
    return RunRecord(
        id=request_id,
        runbook=f.get("runbook", ""),
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
        created_at=float(f.get("created_at", "0")),
        expires_at=float(f.get("expires_at", "0")),
        state=f.get("state", ""),
        fields=f,
    )
