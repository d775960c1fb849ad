"""Shared call budgets in Redis: a GCRA token bucket per Slack method and workspace.

Each reservation is one Lua step on the method's theoretical arrival time (TAT), so every
stream in every process draws from the same bucket. ``block`` pushes the TAT past a
rate-limit window, holding the method for everyone until it ends.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import redis.asyncio as redis

from bot.state import keys
from bot.state.connect import redis_errors

# Returns the wait in ms before the reserved slot, or -1 (nothing reserved) if it would
# exceed the max wait.
_RESERVE = """
local tat_key = KEYS[1]
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local tolerance = tonumber(ARGV[3])
local max_wait = tonumber(ARGV[4])  -- ms; -1: any
local tat = tonumber(redis.call('GET', tat_key) or '0')
if tat < now then tat = now end
local wait = tat - tolerance - now
if wait < 0 then wait = 0 end
if max_wait >= 0 and wait > max_wait then return -1 end
local new_tat = tat + interval
redis.call('SET', tat_key, tostring(new_tat), 'PX', math.ceil(new_tat - now + tolerance) + 1000)
return math.floor(wait)
"""

# Reserves the next slot of whichever budget has the soonest one (the first listed on a
# tie): returns {index (1-based), wait in ms}, or {0, -1} (nothing reserved) if even the
# soonest would exceed the max wait. ARGV[2 + 2i - 1], ARGV[2 + 2i] are KEYS[i]'s interval and
# tolerance. It reads several keys in one step, as one Redis (not a Cluster) allows.
_RESERVE_FIRST = """
local now = tonumber(ARGV[1])
local max_wait = tonumber(ARGV[2])  -- ms; -1: any
local best, best_wait, best_tat, best_interval, best_tolerance = 0, -1, 0, 0, 0
for i, tat_key in ipairs(KEYS) do
  local interval = tonumber(ARGV[2 + 2 * i - 1])
  local tolerance = tonumber(ARGV[2 + 2 * i])
  local tat = tonumber(redis.call('GET', tat_key) or '0')
  if tat < now then tat = now end
  local wait = tat - tolerance - now
  if wait < 0 then wait = 0 end
  if best == 0 or wait < best_wait then
    best, best_wait, best_tat, best_interval, best_tolerance = i, wait, tat, interval, tolerance
  end
end
if best == 0 or (max_wait >= 0 and best_wait > max_wait) then return {0, -1} end
local new_tat = best_tat + best_interval
redis.call('SET', KEYS[best], tostring(new_tat), 'PX',
  math.ceil(new_tat - now + best_tolerance) + 1000)
return {best, math.floor(best_wait)}
"""

# Moves the TAT forward to ``until_tat`` (never back), kept for ``ttl_ms``.
_BLOCK = """
local tat_key = KEYS[1]
local until_tat = tonumber(ARGV[1])
local ttl_ms = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', tat_key) or '0')
if until_tat > tat then
  redis.call('SET', tat_key, tostring(until_tat), 'PX', math.ceil(ttl_ms))
end
return 1
"""


@dataclass(frozen=True)
class Rate:
    per_minute: float
    burst: int

    @property
    def interval_ms(self) -> float:
        return 60_000 / self.per_minute

    @property
    def tolerance_ms(self) -> float:
        """How far ahead of its TAT a call may go: the burst beyond the first call."""
        return (self.burst - 1) * self.interval_ms


class BudgetStore:
    """The budgets of one workspace; ``scope`` splits a method's budget (by channel)."""

    def __init__(self, client: redis.Redis, team: str) -> None:
        self._team = team
        self._reserve = client.register_script(_RESERVE)
        self._block = client.register_script(_BLOCK)
        self._reserve_first = client.register_script(_RESERVE_FIRST)

    async def reserve(
        self, method: str, scope: str, rate: Rate, max_wait: float | None = None
    ) -> float | None:
        """Reserve the next slot: seconds to wait before using it, or None (nothing
        reserved) if that is more than ``max_wait`` seconds. Raises StateError."""
        args = [
            _now_ms(),
            rate.interval_ms,
            rate.tolerance_ms,
            -1 if max_wait is None else max_wait * 1000,
        ]
        async with redis_errors():
            wait_ms = int(await self._reserve(keys=[self._key(method, scope)], args=args))
        return None if wait_ms < 0 else wait_ms / 1000

    async def reserve_first(
        self, choices: list[tuple[str, str, Rate]], max_wait: float | None = None
    ) -> tuple[int, float] | None:
        """Reserve the soonest slot among ``(method, scope, rate)`` choices: the index of
        the one reserved and the seconds to wait before using it, or None (nothing
        reserved) if even the soonest is more than ``max_wait`` away. Raises StateError."""
        args: list[float] = [_now_ms(), -1 if max_wait is None else max_wait * 1000]
        for _, _, rate in choices:
            args += [rate.interval_ms, rate.tolerance_ms]
        names = [self._key(method, scope) for method, scope, _ in choices]
        async with redis_errors():
            index, wait_ms = await self._reserve_first(keys=names, args=args)
        if int(index) == 0:
            return None
        return int(index) - 1, int(wait_ms) / 1000

    async def block(self, method: str, scope: str, rate: Rate, seconds: float) -> None:
        """No slot for ``method`` for the next ``seconds``. Raises StateError."""
        window_ms = seconds * 1000 + rate.tolerance_ms
        async with redis_errors():
            await self._block(
                keys=[self._key(method, scope)], args=[_now_ms() + window_ms, window_ms]
            )

    def _key(self, method: str, scope: str) -> str:
        return keys.slack_budget(self._team, method, scope)


def _now_ms() -> float:
    return time.time() * 1000
