"""The queue between the web process and the workers: threads that need an answerer.

A Redis stream read through one consumer group, so each entry goes to one worker. The entry
only names a thread; its questions stay in the thread's own queue and its lock decides who
answers, so an entry delivered twice (after a worker died holding it) costs one failed
lock attempt and nothing else. A worker acknowledges an entry once it has tried the lock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis.asyncio as redis
from redis.exceptions import ResponseError

from bot.state import keys
from bot.state.connect import redis_errors

GROUP = "answerers"


@dataclass(frozen=True)
class Entry:
    id: str
    thread: str


class WorkQueue:
    def __init__(self, client: redis.Redis, consumer: str) -> None:
        self._redis = client
        self._key = keys.work_queue()
        self.consumer = consumer

    async def ensure_group(self) -> None:
        """Create the consumer group, reading from the start: entries added before any
        worker existed are still answered."""
        async with redis_errors():
            try:
                await self._redis.xgroup_create(self._key, GROUP, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    async def take(self, count: int, block: float) -> list[Entry]:
        """Up to ``count`` new entries for this consumer, waiting up to ``block`` seconds."""
        async with redis_errors():
            try:
                reply = await self._redis.xreadgroup(
                    GROUP, self.consumer, {self._key: ">"}, count=count, block=int(block * 1000)
                )
            except ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                # Redis restarted empty (or was flushed): the group is gone; make it again.
                await self._redis.xgroup_create(self._key, GROUP, id="0", mkstream=True)
                return []
        streams: list[tuple[str, Any]] = reply or []  # type: ignore[assignment]
        return [entry for _, items in streams for entry in _entries(items)]

    async def reclaim(self, idle: float, count: int = 100) -> list[Entry]:
        """Entries another worker took more than ``idle`` seconds ago and never finished:
        it died between reading them and trying the thread's lock."""
        async with redis_errors():
            reply = await self._redis.xautoclaim(
                self._key, GROUP, self.consumer, int(idle * 1000), "0-0", count=count
            )
        return list(_entries(reply[1])) if reply else []

    async def done(self, entry: Entry) -> None:
        async with redis_errors(), self._redis.pipeline(transaction=False) as pipe:
            pipe.xack(self._key, GROUP, entry.id)
            pipe.xdel(self._key, entry.id)
            await pipe.execute()


def _entries(items: list[tuple[str, dict[str, str]]] | None) -> list[Entry]:
    return [Entry(entry_id, fields["thread"]) for entry_id, fields in items or [] if fields]
