"""Run requests in Redis: one hash per request, the indexes beside it, and the audit log.

This module stores what the run domain (``bot.runs``) gives it and knows nothing of what
the states mean: a move names its target, the fields to stamp, and the source states the
domain's table allows, and one Lua step checks and applies it. So two approvers clicking at
once, or one double-clicking, make exactly one move.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping
from typing import Any

import redis.asyncio as redis

from bot.state import keys
from bot.state.connect import redis_errors

_MOVE = """
local request_key = KEYS[1]
local pending_key = KEYS[2]
local to_start_key = KEYS[3]
local target = ARGV[1]
local now = tonumber(ARGV[2])
local before_expiry = ARGV[3] == '1'
local request_id = ARGV[4]
local to_start = ARGV[5] == '1'
local to_start_ttl = ARGV[6]
local stamp_count = tonumber(ARGV[7])
-- ARGV[8 .. 7 + 2 * stamp_count]: field, value pairs written with the move;
-- the rest: the states the move may start from.
local first_source = 8 + 2 * stamp_count

local state = redis.call('HGET', request_key, 'state')
if not state then return {'missing', ''} end
local allowed = false
for i = first_source, #ARGV do
  if ARGV[i] == state then allowed = true end
end
if not allowed then return {'wrong_state', state} end
if before_expiry and now >= tonumber(redis.call('HGET', request_key, 'expires_at')) then
  return {'expired', state}
end
redis.call('HSET', request_key, 'state', target)
for i = 8, first_source - 1, 2 do
  redis.call('HSET', request_key, ARGV[i], ARGV[i + 1])
end
-- Nothing moves back to waiting: whatever moved has left the expiry index. Likewise the
-- index of runs to start holds a request only until its next move.
redis.call('ZREM', pending_key, request_id)
redis.call('ZREM', to_start_key, request_id)
if to_start then
  redis.call('ZADD', to_start_key, now, request_id)
  redis.call('EXPIRE', to_start_key, to_start_ttl)
end
return {'moved', state}
"""


class RequestStore:
    def __init__(self, client: redis.Redis) -> None:
        self._redis = client
        self._move = client.register_script(_MOVE)

    async def create(
        self, request_id: str, fields: Mapping[str, str], *, created_at: float, expires_at: float
    ) -> None:
        """Store a new request; ``expires_at`` > 0 puts it in the expiry index."""
        key = keys.request(request_id)
        mapping: dict[Any, Any] = dict(fields)
        async with redis_errors(), self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping=mapping)
            pipe.expire(key, keys.REQUEST_TTL)
            if expires_at > 0:
                pipe.zadd(keys.pending_requests(), {request_id: expires_at})
                pipe.expire(keys.pending_requests(), keys.REQUEST_TTL)
            recent = keys.recent_requests()
            pipe.zadd(recent, {request_id: created_at})
            pipe.zremrangebyrank(recent, 0, -keys.RECENT_REQUESTS_MAX - 1)
            pipe.expire(recent, keys.REQUEST_TTL)
            await pipe.execute()

    async def set_field(self, request_id: str, name: str, value: str) -> None:
        async with redis_errors():
            await self._redis.hset(keys.request(request_id), name, value)

    async def get(self, request_id: str) -> dict[str, str] | None:
        async with redis_errors():
            raw: dict[str, str] = await self._redis.hgetall(keys.request(request_id))  # type: ignore[assignment]
        return raw or None

    async def recent(
        self, limit: int = keys.RECENT_REQUESTS_MAX
    ) -> list[tuple[str, dict[str, str]]]:
        """The newest requests first; ids whose hash has expired are skipped."""
        async with redis_errors():
            newest = await self._redis.zrevrange(keys.recent_requests(), 0, limit - 1)
            ids = [str(i) for i in newest]
            async with self._redis.pipeline(transaction=False) as pipe:
                for request_id in ids:
                    pipe.hgetall(keys.request(request_id))
                rows: list[dict[str, str]] = await pipe.execute()
        return [(i, raw) for i, raw in zip(ids, rows, strict=True) if raw]

    async def move(
        self,
        request_id: str,
        *,
        target: str,
        sources: Collection[str],
        stamps: Mapping[str, str],
        before_expiry: bool,
        now: float,
        to_start: bool = False,
    ) -> tuple[str, str]:
        """Apply one move atomically: ``(verdict, state before)``, the verdict being
        'moved', 'wrong_state', 'expired' or 'missing'. ``to_start`` puts the request in
        the index of runs waiting to start (``approved_before``) in the same step."""
        pairs = [item for pair in stamps.items() for item in pair]
        args = [
            target,
            repr(now),
            "1" if before_expiry else "0",
            request_id,
            "1" if to_start else "0",
            str(keys.REQUEST_TTL),
            str(len(stamps)),
            *pairs,
            *sources,
        ]
        key_list = [keys.request(request_id), keys.pending_requests(), keys.approved_runs()]
        async with redis_errors():
            verdict, state = await self._move(keys=key_list, args=args)
        return str(verdict), str(state)

    async def approved_before(self, cutoff: float, limit: int = 50) -> list[str]:
        """Requests in the index of runs to start since before ``cutoff`` (epoch seconds):
        approved, and no process has started them since."""
        async with redis_errors():
            ids = await self._redis.zrangebyscore(
                keys.approved_runs(), "-inf", cutoff, start=0, num=limit
            )
        return [str(i) for i in ids]

    async def forget_approved(self, request_id: str) -> None:
        async with redis_errors():
            await self._redis.zrem(keys.approved_runs(), request_id)

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
        await self._append(keys.audit_log(), keys.AUDIT_MAXLEN, what, fields)

    async def refused(self, what: str, **fields: str) -> None:
        """Audit a refusal in a stream of its own, capped apart from decisions and runs."""
        await self._append(keys.refused_log(), keys.REFUSED_MAXLEN, what, fields)

    async def _append(self, stream: str, maxlen: int, what: str, fields: dict[str, str]) -> None:
        entry: dict[Any, Any] = {**fields, "action": what, "at": repr(time.time())}
        async with redis_errors():
            await self._redis.xadd(stream, entry, maxlen=maxlen, approximate=True)
