"""Who was greeted in the Messages tab today: one flag per person and UTC day, living until
that day ends, so a person opening the tab many times is greeted once, and every process
agrees on it."""

from __future__ import annotations

import time

import redis.asyncio as redis

from bot.state import keys
from bot.state.connect import redis_errors

_DAY = 24 * 3600


def day_of(now: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(now))


def seconds_left_today(now: float) -> int:
    return max(1, _DAY - int(now) % _DAY)


class Greetings:
    def __init__(self, client: redis.Redis) -> None:
        self._redis = client

    async def claim(self, user: str, now: float) -> bool:
        """True for the first caller today: that one greets. Atomic, so two processes
        handling two opens at once send one greeting."""
        key = keys.greeted(user, day_of(now))
        async with redis_errors():
            return bool(await self._redis.set(key, "1", nx=True, ex=seconds_left_today(now)))

    async def release(self, user: str, now: float) -> None:
        """The greeting could not be sent: the next open tries again."""
        async with redis_errors():
            await self._redis.delete(keys.greeted(user, day_of(now)))
