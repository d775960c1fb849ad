"""Work in flight, recorded in Redis so that a process that dies is noticed.

Each process refreshes a heartbeat and keeps a hash of what it is doing. Another process
that finds a work hash without a heartbeat claims it in one Lua step (so two survivors
never both report the same loss) and tells the affected threads and cards.
"""

from __future__ import annotations

import json
import uuid
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


class WorkRegistry:
    def __init__(self, client: redis.Redis, *, heartbeat_ttl: float) -> None:
        self.process = uuid.uuid4().hex[:12]
        self._redis = client
        self._ttl_ms = int(heartbeat_ttl * 1000)
        self._claim = client.register_script(_CLAIM)

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
        """Claim this process's own unfinished work (at shutdown, after the grace period)."""
        async with redis_errors():
            await self._redis.delete(keys.heartbeat(self.process))
        return await self._claim_hash(self.process)

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
