"""Agent sessions in Redis: whether a workspace refuses them, and stop button clicks.

Both are shared by every process: a refusal learnt by one process spares the others the
same failing call, and a click received by a web process reaches the answer streaming in
whichever worker holds its thread.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import redis.asyncio as redis

from bot.state import keys
from bot.state.connect import redis_errors


@dataclass(frozen=True)
class StopMark:
    """Someone pressed a thread's stop button at ``at`` (epoch seconds)."""

    user: str
    at: float


class SessionStore:
    def __init__(self, client: redis.Redis) -> None:
        self._redis = client

    async def refused(self, team: str) -> bool:
        async with redis_errors():
            return bool(await self._redis.exists(keys.sessions_refused(team)))

    async def refuse(self, team: str, error: str) -> bool:
        """Remember that ``team`` refuses sessions; True only for the first to learn it."""
        async with redis_errors():
            first = await self._redis.set(
                keys.sessions_refused(team), error, nx=True, ex=keys.SESSIONS_REFUSED_TTL
            )
        return bool(first)

    async def mark_stop(self, thread: str, mark: StopMark) -> None:
        raw = json.dumps({"user": mark.user, "at": mark.at})
        async with redis_errors():
            await self._redis.set(keys.stop(thread), raw, ex=keys.STOP_TTL)

    async def stops(self, threads: list[str]) -> dict[str, StopMark]:
        """The stop marks of ``threads`` that have one, in one round trip."""
        if not threads:
            return {}
        async with redis_errors():
            values = await self._redis.mget([keys.stop(t) for t in threads])
        return {t: _mark(v) for t, v in zip(threads, values, strict=True) if v is not None}

    async def locked(self, thread: str) -> bool:
        """True while some process answers in the thread (it holds the thread's lock)."""
        async with redis_errors():
            return bool(await self._redis.exists(keys.lock(thread)))


def _mark(raw: str | bytes) -> StopMark:
    try:
        data = json.loads(raw)
        return StopMark(user=str(data["user"]), at=float(data["at"]))
    except (ValueError, KeyError, TypeError):
        return StopMark(user="", at=0.0)  # unreadable: an old mark stops nothing
