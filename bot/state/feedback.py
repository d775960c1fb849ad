"""Votes on answers in Redis: the latest vote per person and answer, and per-day counts.

Slack's feedback buttons toggle with no "unselected" signal, so a person's last click on an
answer is their vote: one Lua step swaps it and moves the count it stood in, so a change of
mind (or two processes handling two clicks) never counts one person twice.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import redis.asyncio as redis

from bot.state import keys
from bot.state.connect import redis_errors

_VOTE = """
local vote_key = KEYS[1]
local count_key = KEYS[2]
local vote = ARGV[1]
local ttl = tonumber(ARGV[2])

local before = redis.call('GET', vote_key)
local old_vote = ''
if before then
  local old_count
  old_vote, old_count = string.match(before, '^(%a+)|(.*)$')
  if old_vote == vote then
    redis.call('EXPIRE', vote_key, ttl)
    return old_vote
  end
  -- A count that expired has nothing left to take the old vote from.
  if redis.call('EXISTS', old_count) == 1 then redis.call('DECR', old_count) end
end
redis.call('INCR', count_key)
redis.call('EXPIRE', count_key, ttl)
redis.call('SET', vote_key, vote .. '|' .. count_key, 'EX', ttl)
return old_vote
"""


@dataclass(frozen=True)
class Tally:
    up: int = 0
    down: int = 0


class FeedbackStore:
    def __init__(self, client: redis.Redis) -> None:
        self._redis = client
        self._vote = client.register_script(_VOTE)

    async def vote(self, answer: str, user: str, vote: str, now: float | None = None) -> str:
        """Make ``vote`` (up/down) ``user``'s vote on ``answer``; returns the vote it
        replaced ('' for none; the same vote when clicked again)."""
        count_key = keys.feedback_count(_day(now), vote)
        async with redis_errors():
            before = await self._vote(
                keys=[keys.feedback_vote(answer, user), count_key],
                args=[vote, keys.FEEDBACK_TTL],
            )
        return _text(before)

    async def tally(self, now: float | None = None) -> Tally:
        """Votes standing from the last ``FEEDBACK_DAYS`` UTC days, today included."""
        at = time.time() if now is None else now
        days = [_day(at - n * 86400) for n in range(keys.FEEDBACK_DAYS)]
        names = [keys.feedback_count(day, vote) for day in days for vote in ("up", "down")]
        async with redis_errors():
            values = await self._redis.mget(names)
        counts = [max(int(v or 0), 0) for v in values]
        return Tally(up=sum(counts[0::2]), down=sum(counts[1::2]))

    async def audit(self, **fields: str) -> None:
        entry: dict[Any, Any] = {**fields, "action": "feedback", "at": repr(time.time())}
        async with redis_errors():
            await self._redis.xadd(
                keys.audit_log(), entry, maxlen=keys.AUDIT_MAXLEN, approximate=True
            )


def _day(now: float | None) -> str:
    return time.strftime("%Y%m%d", time.gmtime(time.time() if now is None else now))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value or "")
