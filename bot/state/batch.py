"""Calls of one Lua script made in the same moment, sent to Redis as one pipeline.

A burst of Slack deliveries means dozens of ``accept`` calls in flight at once; each alone
costs a pool checkout, a write and a read, which is most of an ack's CPU. Calls made before
the event loop gets back to the batch share one round trip instead (measured: about a
quarter of the CPU each). A lone call waits only for the loop's next turn. Errors reach
each caller as redis-py raised them, for the caller's own translation.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import redis.asyncio as redis
from redis.commands.core import AsyncScript

Call = tuple[Sequence[str], Sequence[Any], asyncio.Future[Any]]


class ScriptBatch:
    def __init__(self, client: redis.Redis, script: AsyncScript) -> None:
        self._redis = client
        self._script = script
        self._pending: list[Call] = []
        self._flushing: set[asyncio.Task[None]] = set()

    async def __call__(self, keys: Sequence[str], args: Sequence[Any]) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if not self._pending:
            loop.call_soon(self._start_flush)
        self._pending.append((keys, args, future))
        return await future

    def _start_flush(self) -> None:
        calls, self._pending = self._pending, []
        task = asyncio.ensure_future(self._flush(calls))
        self._flushing.add(task)
        task.add_done_callback(self._flushing.discard)

    async def _flush(self, calls: list[Call]) -> None:
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for keys, args, _ in calls:
                    await self._script(keys=list(keys), args=list(args), client=pipe)
                results = await pipe.execute(raise_on_error=False)
        except asyncio.CancelledError:  # shutting down: no caller is left waiting
            for *_, future in calls:
                future.cancel()
            raise
        except Exception as exc:  # every caller hears of it
            for *_, future in calls:
                if not future.done():
                    future.set_exception(exc)
            return
        for (*_, future), result in zip(calls, results, strict=True):
            if future.done():
                continue  # its caller was cancelled
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)
