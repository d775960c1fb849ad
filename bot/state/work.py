"""Work in flight, recorded in Redis so that a process that dies is noticed.

Each process refreshes a heartbeat (``Heartbeat``) and keeps a hash of what it is doing.
Another process that finds a work hash without a heartbeat claims it in one Lua step (so
two survivors never both report the same loss) and tells the affected threads and cards.

A process with a stable name (Heroku's ``DYNO``, ``web.1``, the same after a restart)
records which incarnation runs under it. Its replacement reads that at start, pings the
previous one, and claims its work at once if it does not answer, instead of waiting for
its heartbeat to expire and a sweep to come round.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from typing import Any

import redis.asyncio as redis

from bot.conversation import Question
from bot.state import keys
from bot.state.connect import redis_errors

# The work of a process whose heartbeat is gone, taken by exactly one caller; nil while
# the process is alive.
_CLAIM = """
local heartbeat_key = KEYS[1]
local work_key = KEYS[2]
if redis.call('EXISTS', heartbeat_key) == 1 then return false end
local items = redis.call('HVALS', work_key)
redis.call('DEL', work_key)
return items
"""

# The work of a process that did not answer a ping, taken only if its heartbeat still
# holds the value seen before the ping (it never beat since), by exactly one caller; nil
# when it beat meanwhile.
_CLAIM_SILENT = """
local heartbeat_key = KEYS[1]
local work_key = KEYS[2]
local seen = ARGV[1]
local beat = redis.call('GET', heartbeat_key)
if beat and beat ~= seen then return false end
redis.call('DEL', heartbeat_key)
local items = redis.call('HVALS', work_key)
redis.call('DEL', work_key)
return items
"""

# A live heartbeat thread answers a ping in milliseconds; this leaves room for a loaded
# machine and a slow Redis.
PING_WAIT = 2.0
_PING_POLL = 0.05


@dataclass(frozen=True)
class Predecessor:
    """The process that ran under this process's name before it."""

    process: str
    alive: bool
    work: list[dict[str, Any]]


class WorkRegistry:
    def __init__(
        self, client: redis.Redis, *, heartbeat_ttl: float, name: str | None = None
    ) -> None:
        self.name = name
        # Unique per incarnation: a restarted web.1 must not inherit its predecessor's keys.
        suffix = uuid.uuid4().hex[:12]
        self.process = f"{name}#{suffix}" if name else suffix
        self._redis = client
        self._ttl_ms = int(heartbeat_ttl * 1000)
        self._claim = client.register_script(_CLAIM)
        self._claim_silent = client.register_script(_CLAIM_SILENT)

    async def heartbeat(self) -> None:
        async with redis_errors(), self._redis.pipeline(transaction=False) as pipe:
            pipe.set(keys.heartbeat(self.process), "1", px=self._ttl_ms)
            pipe.expire(keys.work(self.process), keys.WORK_TTL)
            await pipe.execute()

    async def start(self, name: str, record: dict[str, Any]) -> None:
        async with redis_errors(), self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(keys.work(self.process), name, json.dumps(record))
            pipe.expire(keys.work(self.process), keys.WORK_TTL)
            await pipe.execute()

    async def finish(self, name: str) -> None:
        async with redis_errors():
            await self._redis.hdel(keys.work(self.process), name)

    async def mine(self) -> list[dict[str, Any]]:
        """Claim this process's own unfinished work (at shutdown, after the grace period),
        whatever its heartbeat says: a last beat of its thread cannot hide it."""
        async with redis_errors(), self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(keys.heartbeat(self.process))
            pipe.hvals(keys.work(self.process))
            pipe.delete(keys.work(self.process))
            _, items, _ = await pipe.execute()
        return [json.loads(item) for item in items]

    async def orphans(self) -> list[dict[str, Any]]:
        """Claim the work of processes whose heartbeat has expired."""
        found: list[dict[str, Any]] = []
        async with redis_errors():
            names = [k async for k in self._redis.scan_iter(match=keys.work_pattern(), count=100)]
        for name in names:
            process = str(name).rsplit(":", 1)[-1]
            if process != self.process:
                found.extend(await self._claim_hash(process))
        return found

    async def take_over(self, *, wait: float = PING_WAIT) -> Predecessor | None:
        """Become the process running under this name; claim the work of the one before
        unless it answers a ping (Heroku may run an old and a new ``web.1`` side by side
        for a while, and the old one finishes its own work). None without a predecessor."""
        if self.name is None:
            return None
        async with redis_errors():
            found = await self._redis.set(
                keys.incarnation(self.name), self.process, ex=keys.WORK_TTL, get=True
            )
        if not isinstance(found, str) or found == self.process:
            return None
        previous = found
        seen = await self._silent(previous, wait)
        items = None
        if seen is not None:
            async with redis_errors():
                keys_ = [keys.heartbeat(previous), keys.work(previous)]
                items = await self._claim_silent(keys=keys_, args=[seen])
        if items is None:
            return Predecessor(previous, alive=True, work=[])
        return Predecessor(previous, alive=False, work=[json.loads(item) for item in items])

    async def _silent(self, process: str, wait: float) -> str | None:
        """Ping ``process``: None if it beat within ``wait`` seconds (it lives), else the
        heartbeat it kept all along ("" for none)."""
        beat = keys.heartbeat(process)
        async with redis_errors():
            seen = await self._redis.get(beat)
            if not isinstance(seen, str):
                return ""
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.lpush(keys.ping(process), "ping")
                pipe.expire(keys.ping(process), keys.PING_TTL)
                await pipe.execute()
            deadline = asyncio.get_running_loop().time() + wait
            while asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(_PING_POLL)
                now = await self._redis.get(beat)
                if now is not None and now != seen:
                    return None
        return seen

    async def _claim_hash(self, process: str) -> list[dict[str, Any]]:
        async with redis_errors():
            items = await self._claim(keys=[keys.heartbeat(process), keys.work(process)])
        return [json.loads(item) for item in items or []]

    async def save_retry(self, question: Question) -> str:
        retry_id = uuid.uuid4().hex
        async with redis_errors():
            await self._redis.set(keys.retry(retry_id), question.to_json(), ex=keys.RETRY_TTL)
        return retry_id

    async def take_retry(self, retry_id: str) -> Question | None:
        """The question behind a Retry button, once: a second click finds nothing."""
        async with redis_errors():
            raw = await self._redis.getdel(keys.retry(retry_id))
        return Question.from_json(raw) if raw else None
