"""Thread state in Redis: dedupe of Slack deliveries, per-thread queues and history.

One answer at a time per thread, in arrival order, across every process: a question is
queued and the process that holds the thread's lock drains the queue. Releasing the lock
and checking the queue is one Lua step, so a question queued at the moment the holder
finishes is never stranded.
"""

from __future__ import annotations

import enum
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import redis.asyncio as redis
from redis.exceptions import RedisError

from bot.conversation import Question, Turn
from bot.errors import StateError
from bot.state import keys
from bot.state.batch import ScriptBatch

# KEYS: the dedupe keys (ARGV[1] of them), then queue, active marker, lock, work queue,
# waiting threads.
# Returns an ``Accepted`` value. A follow-up is only ours if the thread is active; the work
# queue hears of the thread only when no one holds its lock, because a holder drains the
# queue before letting go (see _RELEASE_IF_EMPTY).
_ACCEPT = """
local n = tonumber(ARGV[1])
if ARGV[6] == '1' and redis.call('EXISTS', KEYS[n + 2]) == 0 then return 2 end
for i = 1, n do
  if redis.call('EXISTS', KEYS[i]) == 1 then return 0 end
end
for i = 1, n do
  redis.call('SET', KEYS[i], '1', 'EX', ARGV[2])
end
redis.call('RPUSH', KEYS[n + 1], ARGV[3])
redis.call('EXPIRE', KEYS[n + 1], ARGV[4])
redis.call('SET', KEYS[n + 2], '1', 'EX', ARGV[5])
redis.call('ZADD', KEYS[n + 5], ARGV[10], ARGV[8])
if redis.call('EXISTS', KEYS[n + 3]) == 1 then return 3 end
if ARGV[7] == '1' then
  redis.call('XADD', KEYS[n + 4], 'MAXLEN', '~', ARGV[9], '*', 'thread', ARGV[8])
end
return 1
"""


class Accepted(enum.IntEnum):
    """What became of a delivery."""

    DUPLICATE = 0
    QUEUED = 1  # no one is answering in the thread: it needs an answerer now
    NOT_FOLLOWING = 2  # a follow-up in a thread the bot takes no part in
    WAITING = 3  # queued behind the answer in progress, whose holder will get to it


# KEYS: queue, lock, work queue. 0 while the thread is locked; else announces its queue.
_ANNOUNCE = """
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
if redis.call('LLEN', KEYS[1]) > 0 then
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[2], '*', 'thread', ARGV[1])
end
return 1
"""

_RELEASE_IF_EMPTY = """
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return -1 end
if redis.call('LLEN', KEYS[1]) > 0 then return 0 end
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[2])
return 1
"""

# KEYS[1]: waiting threads; then queue and lock of each thread in ARGV. Returns the
# threads whose questions wait with no one holding them; forgets those with none left.
_STRANDED = """
local stranded = {}
for i, thread in ipairs(ARGV) do
  if redis.call('EXISTS', KEYS[2 * i + 1]) == 0 then
    if redis.call('LLEN', KEYS[2 * i]) > 0 then
      table.insert(stranded, thread)
    else
      redis.call('ZREM', KEYS[1], thread)
    end
  end
end
return stranded
"""

_BREAK = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])
"""

_REFRESH = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('PEXPIRE', KEYS[1], ARGV[2])
"""


@asynccontextmanager
async def redis_errors() -> AsyncIterator[None]:
    """Translate redis-py failures into StateError at this seam."""
    try:
        yield
    except RedisError as exc:
        raise StateError(f"state store unavailable ({type(exc).__name__})") from exc
    except OSError as exc:
        raise StateError(f"state store unreachable ({type(exc).__name__})") from exc


class ThreadStore:
    def __init__(
        self, client: redis.Redis, *, thread_ttl: int, history_turns: int, lock_ttl: float = 30.0
    ) -> None:
        self._redis = client
        self.lock_ttl = lock_ttl
        self._lock_ttl_ms = int(lock_ttl * 1000)
        self._thread_ttl = thread_ttl
        self._history_turns = history_turns
        self._accept = ScriptBatch(client, client.register_script(_ACCEPT))
        self._release = client.register_script(_RELEASE_IF_EMPTY)
        self._announce = client.register_script(_ANNOUNCE)
        self._stranded = client.register_script(_STRANDED)
        self._refresh = client.register_script(_REFRESH)
        self._break = client.register_script(_BREAK)

    async def ping(self) -> None:
        async with redis_errors():
            await self._redis.ping()

    async def accept(
        self,
        thread: str,
        question: Question,
        dedupe: Sequence[str],
        *,
        follow_up: bool = False,
        announce: bool = False,
    ) -> Accepted:
        """Queue a question unless any of its dedupe keys was seen, in one step. A
        ``follow_up`` is taken only in an active thread; ``announce`` puts a thread that needs
        an answerer on the work queue, for the worker processes."""
        key_list = [*dedupe, keys.queue(thread), keys.active(thread), keys.lock(thread)]
        key_list += [keys.work_queue(), keys.waiting_threads()]
        args: list[Any] = [
            len(dedupe),
            keys.DEDUPE_TTL,
            question.to_json(),
            keys.QUEUE_TTL,
            self._thread_ttl,
            int(follow_up),
            int(announce),
            thread,
            keys.WORK_QUEUE_MAXLEN,
            int(time.time() * 1000),
        ]
        async with redis_errors():
            return Accepted(int(await self._accept(key_list, args)))

    async def announce(self, thread: str) -> bool:
        """Put a thread with waiting questions on the work queue, unless someone holds it;
        False while it is locked."""
        key_list = [keys.queue(thread), keys.lock(thread), keys.work_queue()]
        async with redis_errors():
            added = await self._announce(keys=key_list, args=[thread, keys.WORK_QUEUE_MAXLEN])
        return bool(added)

    async def try_lock(self, thread: str) -> str | None:
        """Take the thread's lock; returns the holder's token, or None if someone has it."""
        token = uuid.uuid4().hex
        async with redis_errors():
            got = await self._redis.set(keys.lock(thread), token, nx=True, px=self._lock_ttl_ms)
        return token if got else None

    async def refresh_lock(self, thread: str, token: str) -> bool:
        async with redis_errors():
            return bool(
                await self._refresh(keys=[keys.lock(thread)], args=[token, self._lock_ttl_ms])
            )

    async def break_lock(self, thread: str, token: str) -> bool:
        """Free a lock whose holder is gone; only if that holder still has it."""
        async with redis_errors():
            return bool(await self._break(keys=[keys.lock(thread)], args=[token]))

    async def next_question(self, thread: str) -> Question | None:
        async with redis_errors():
            raw: str | bytes | None = await self._redis.lpop(keys.queue(thread))  # type: ignore[assignment]
        return Question.from_json(raw) if raw is not None else None

    async def release_if_empty(self, thread: str, token: str) -> bool:
        """Drop the lock if no question waits; False means keep draining."""
        async with redis_errors():
            result = await self._release(
                keys=[keys.queue(thread), keys.lock(thread), keys.waiting_threads()],
                args=[token, thread],
            )
        return int(result) != 0

    async def stranded(self, older_than: float, limit: int = 100) -> list[str]:
        """Threads whose questions have waited more than ``older_than`` seconds with no one
        answering: the process that queued or drained them gave up or died."""
        cutoff = int((time.time() - older_than) * 1000)
        async with redis_errors():
            waiting = await self._redis.zrangebyscore(
                keys.waiting_threads(), "-inf", cutoff, start=0, num=limit
            )
            threads = [str(thread) for thread in waiting]
            if not threads:
                return []
            key_list = [keys.waiting_threads()]
            for thread in threads:
                key_list += [keys.queue(thread), keys.lock(thread)]
            found = await self._stranded(keys=key_list, args=threads)
        return [str(thread) for thread in found]

    async def history(self, thread: str) -> list[Turn]:
        async with redis_errors():
            raw = await self._redis.lrange(keys.history(thread), 0, -1)
        turns = (Turn.from_json(item) for item in raw)
        return [turn for turn in turns if turn is not None]

    async def remember(self, thread: str, *turns: Turn) -> None:
        """Append turns, keep the newest ``history_turns``, and keep the thread alive."""
        key = keys.history(thread)
        async with redis_errors(), self._redis.pipeline(transaction=True) as pipe:
            pipe.rpush(key, *(turn.to_json() for turn in turns))
            pipe.ltrim(key, -self._history_turns, -1)
            pipe.expire(key, self._thread_ttl)
            pipe.set(keys.active(thread), "1", ex=self._thread_ttl)
            await pipe.execute()
