"""Threads read from Slack, cached for ``keys.THREAD_READ_TTL`` seconds, and the mark that a
thread was told once that it could not be read."""

from __future__ import annotations

import redis.asyncio as redis

from bot.state import keys
from bot.state.connect import redis_errors
from bot.thread_context import ThreadRead


class ThreadReads:
    def __init__(self, client: redis.Redis) -> None:
        self._redis = client

    async def get(self, channel: str, thread_ts: str) -> ThreadRead | None:
        async with redis_errors():
            raw: str | bytes | None = await self._redis.get(keys.thread_read(channel, thread_ts))
        return None if raw is None else ThreadRead.from_json(raw)

    async def keep(self, channel: str, thread_ts: str, read: ThreadRead) -> None:
        key = keys.thread_read(channel, thread_ts)
        async with redis_errors():
            await self._redis.set(key, read.to_json(), ex=keys.THREAD_READ_TTL)

    async def first_note(self, thread: str) -> bool:
        """True the first time a note that ``thread`` could not be read is to be shown."""
        key = keys.told_no_context(thread)
        async with redis_errors():
            return bool(await self._redis.set(key, "1", nx=True, ex=keys.CONTEXT_NOTE_TTL))
