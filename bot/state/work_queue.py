"""The queue between the web process and the workers: threads that need an answerer, and
approved runs that need a process to run them.

A Redis stream read through one consumer group, so each entry goes to one worker. An entry
only names a thread or a run request. A thread's questions stay in its own queue and its
lock decides who answers; a run starts only by the atomic ``approved → running`` move. So
an entry delivered twice (after a worker died holding it) costs one failed lock attempt or
move and nothing else. A worker acknowledges an entry once it has tried the lock or move.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import redis.asyncio as redis
from redis.exceptions import ResponseError

from bot.state import keys
from bot.state.connect import redis_errors

GROUP = "answerers"


@dataclass(frozen=True)
class ThreadEntry:
    """A thread with questions waiting and no one answering it."""

    id: str
    thread: str


@dataclass(frozen=True)
class RunEntry:
    """An approved run request that no process has started."""

    id: str
    run: str


Entry = ThreadEntry | RunEntry


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
        it died between reading them and trying the thread's lock or the run's move."""
        async with redis_errors():
            reply = await self._redis.xautoclaim(
                self._key, GROUP, self.consumer, int(idle * 1000), "0-0", count=count
            )
        return list(_entries(reply[1])) if reply else []

    async def hand_over_run(self, request_id: str) -> None:
        """Put an approved run on the queue for a worker, and in the index of runs to start
        in the same step: if the entry is lost, a worker's sweep still finds the run."""
        index = keys.approved_runs()
        fields: dict[Any, Any] = {"run": request_id}
        async with redis_errors(), self._redis.pipeline(transaction=True) as pipe:
            pipe.zadd(index, {request_id: time.time()}, nx=True)
            pipe.expire(index, keys.REQUEST_TTL)
            pipe.xadd(self._key, fields, maxlen=keys.WORK_QUEUE_MAXLEN, approximate=True)
            await pipe.execute()

    async def done(self, entry: Entry) -> None:
        async with redis_errors(), self._redis.pipeline(transaction=False) as pipe:
            pipe.xack(self._key, GROUP, entry.id)
            pipe.xdel(self._key, entry.id)
            await pipe.execute()


def _entries(items: list[tuple[str, dict[str, str]]] | None) -> list[Entry]:
    return [entry for entry_id, fields in items or [] if (entry := _entry(entry_id, fields))]


def _entry(entry_id: str, fields: dict[str, str] | None) -> Entry | None:
    """The entry's one field names its kind (the store's Lua script writes ``thread``)."""
    if fields and "thread" in fields:
        return ThreadEntry(entry_id, fields["thread"])
    if fields and "run" in fields:
        return RunEntry(entry_id, fields["run"])
    return None  # deleted meanwhile
