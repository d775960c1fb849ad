"""Counting run starts and runs in flight in Redis, so the limits hold across processes.

A reservation is one Lua step that forgets what has aged out, checks both limits and
counts the run, so two processes can never both take the last slot. Members are request
ids: a second click on the same request finds its reservation and counts nothing twice.
What the counts mean (whose start, which limit applies) is the run domain's business
(``bot.runs.limits``); this module only counts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import redis.asyncio as redis

from bot.state import keys
from bot.state.connect import redis_errors

# Returns {verdict, ms}: 'reserved' (counted now, or held already by this request),
# 'starts' (ms: when the oldest start leaves the window) or 'in_flight' (ms: when the
# soonest lease ends).
_RESERVE = """
local starts_key = KEYS[1]
local in_flight_key = KEYS[2]
local run_id = ARGV[1]
local now_ms = tonumber(ARGV[2])
local window_ms = tonumber(ARGV[3])
local max_starts = tonumber(ARGV[4])
local max_in_flight = tonumber(ARGV[5])
local lease_ms = tonumber(ARGV[6])
redis.call('ZREMRANGEBYSCORE', starts_key, '-inf', now_ms - window_ms)
redis.call('ZREMRANGEBYSCORE', in_flight_key, '-inf', now_ms)
if redis.call('ZSCORE', in_flight_key, run_id) then return {'reserved', 0} end
if redis.call('ZCARD', starts_key) >= max_starts then
  local oldest = redis.call('ZRANGE', starts_key, 0, 0, 'WITHSCORES')
  return {'starts', tonumber(oldest[2]) + window_ms}
end
if redis.call('ZCARD', in_flight_key) >= max_in_flight then
  local soonest = redis.call('ZRANGE', in_flight_key, 0, 0, 'WITHSCORES')
  return {'in_flight', tonumber(soonest[2])}
end
redis.call('ZADD', starts_key, now_ms, run_id)
redis.call('PEXPIRE', starts_key, window_ms)
redis.call('ZADD', in_flight_key, now_ms + lease_ms, run_id)
-- Processes may run with different deadlines: the set lives as long as its longest lease.
if redis.call('PTTL', in_flight_key) < lease_ms then
  redis.call('PEXPIRE', in_flight_key, lease_ms)
end
return {'reserved', 0}
"""


# Returns {verdict, ms}: 'counted' (now, or already) or 'full' (ms: when the oldest of the
# requester's requests leaves the window).
_ASKED = """
local asked_key = KEYS[1]
local request_id = ARGV[1]
local now_ms = tonumber(ARGV[2])
local window_ms = tonumber(ARGV[3])
local max_asked = tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', asked_key, '-inf', now_ms - window_ms)
if redis.call('ZSCORE', asked_key, request_id) then return {'counted', 0} end
if redis.call('ZCARD', asked_key) >= max_asked then
  local oldest = redis.call('ZRANGE', asked_key, 0, 0, 'WITHSCORES')
  return {'full', tonumber(oldest[2]) + window_ms}
end
redis.call('ZADD', asked_key, now_ms, request_id)
redis.call('PEXPIRE', asked_key, window_ms)
return {'counted', 0}
"""


@dataclass(frozen=True)
class TooManyAsked:
    retry_at: float  # epoch seconds when the requester's oldest request leaves the hour


@dataclass(frozen=True)
class Reserved:
    pass


@dataclass(frozen=True)
class TooManyStarts:
    retry_at: float  # epoch seconds when the requester's oldest start leaves the hour


@dataclass(frozen=True)
class TooManyInFlight:
    retry_at: float  # epoch seconds when the soonest lease ends, if its run never does


Reservation = Reserved | TooManyStarts | TooManyInFlight


@dataclass(frozen=True)
class RunQuota:
    """The limits one reservation is checked against."""

    starts_per_hour: int
    in_flight: int
    lease_seconds: float  # how long a slot outlives a process that died holding it


class LimitStore:
    def __init__(self, client: redis.Redis) -> None:
        self._redis = client
        self._reserve = client.register_script(_RESERVE)
        self._asked = client.register_script(_ASKED)

    async def count_request(
        self, request_id: str, user: str, *, per_hour: int
    ) -> Reserved | TooManyAsked:
        """Count a request that waits for a click, unless ``user`` made ``per_hour``
        such requests in the last hour already."""
        window_ms = keys.REQUESTS_WINDOW * 1000
        args: list[str | int] = [request_id, _now_ms(), window_ms, per_hour]
        async with redis_errors():
            verdict, ms = await self._asked(keys=[keys.requests_asked(user)], args=args)
        return TooManyAsked(int(ms) / 1000) if verdict == "full" else Reserved()

    async def reserve_run(self, run_id: str, user: str, quota: RunQuota) -> Reservation:
        """Count ``run_id`` as a start of ``user``'s and as in flight, unless either limit
        is reached. Raises StateError."""
        args: list[str | int] = [
            run_id,
            _now_ms(),
            keys.RUN_STARTS_WINDOW * 1000,
            quota.starts_per_hour,
            quota.in_flight,
            int(quota.lease_seconds * 1000),
        ]
        async with redis_errors():
            verdict, ms = await self._reserve(
                keys=[keys.run_starts(user), keys.runs_in_flight()], args=args
            )
        if verdict == "starts":
            return TooManyStarts(int(ms) / 1000)
        if verdict == "in_flight":
            return TooManyInFlight(int(ms) / 1000)
        return Reserved()

    async def release_run(self, run_id: str, user: str) -> None:
        """The run never started: it counts as neither a start nor in flight."""
        async with redis_errors(), self._redis.pipeline(transaction=True) as pipe:
            pipe.zrem(keys.run_starts(user), run_id)
            pipe.zrem(keys.runs_in_flight(), run_id)
            await pipe.execute()

    async def end_run(self, run_id: str) -> None:
        """The run ended: its slot is free; its start still counts for the hour."""
        async with redis_errors():
            await self._redis.zrem(keys.runs_in_flight(), run_id)


def _now_ms() -> int:
    return int(time.time() * 1000)
