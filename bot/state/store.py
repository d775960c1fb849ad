"""Thread state in Redis: dedupe of Slack deliveries, per-thread queues and history.

One answer at a time per thread, in arrival order, across every process: a question is
queued and the process that holds the thread's lock drains the queue. Releasing the lock
and checking the queue is one Lua step, so a question queued at the moment the holder
finishes is never stranded. The per-asker and per-thread limits on questions are decided
in the step that queues, so a refused question costs no extra round trip.
"""

from __future__ import annotations

import enum
import time
import uuid
from collections.abc import Sequence
from typing import Any

import redis.asyncio as redis

from bot.conversation import Question, Turn
from bot.state import keys
from bot.state.batch import ScriptBatch
from bot.state.connect import redis_errors

# Returns an ``Accepted`` value. A follow-up is only ours if the thread is active. The
# limits are decided here, before anything is queued, so a flood costs no model call; a
# refused delivery is still remembered, so Slack's retry of it is refused too. The work
# queue hears of the thread only when no one holds its lock, because a holder drains the
# queue before letting go (see _RELEASE_IF_EMPTY).
_ACCEPT = """
local queue_key = KEYS[1]
local active_key = KEYS[2]
local lock_key = KEYS[3]
local work_queue_key = KEYS[4]
local waiting_key = KEYS[5]
local asked_key = KEYS[6]
local told_too_many_key = KEYS[7]
local told_full_key = KEYS[8]
-- KEYS[9] to KEYS[#KEYS]: the delivery's dedupe keys, if any.
local dedupe_ttl = ARGV[1]
local question = ARGV[2]
local queue_ttl = tonumber(ARGV[3])
local thread_ttl = ARGV[4]
local follow_up = ARGV[5] == '1'
local announce = ARGV[6] == '1'
local thread = ARGV[7]
local work_queue_maxlen = ARGV[8]
local now_ms = tonumber(ARGV[9])
local message = ARGV[10]
local max_asked = tonumber(ARGV[11])  -- 0: no per-asker limit
local window_ms = tonumber(ARGV[12])
local queue_max = tonumber(ARGV[13])
local waiting_max = tonumber(ARGV[14])
if follow_up and redis.call('EXISTS', active_key) == 0 then return 2 end
for i = 9, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then return 0 end
end
for i = 9, #KEYS do
  redis.call('SET', KEYS[i], '1', 'EX', dedupe_ttl)
end
if max_asked > 0 then
  redis.call('ZREMRANGEBYSCORE', asked_key, '-inf', now_ms - window_ms)
  if redis.call('ZCARD', asked_key) >= max_asked then
    if redis.call('SET', told_too_many_key, '1', 'PX', window_ms, 'NX') then return 4 end
    return 5
  end
end
if redis.call('LLEN', queue_key) >= queue_max then
  if redis.call('SET', told_full_key, '1', 'PX', window_ms, 'NX') then return 6 end
  return 7
end
if max_asked > 0 then
  redis.call('ZADD', asked_key, now_ms, message)
  redis.call('PEXPIRE', asked_key, window_ms)
end
redis.call('RPUSH', queue_key, question)
redis.call('EXPIRE', queue_key, queue_ttl)
redis.call('SET', active_key, '1', 'EX', thread_ttl)
redis.call('ZADD', waiting_key, now_ms, thread)
-- An entry older than the queue TTL names a queue that has expired.
redis.call('ZREMRANGEBYSCORE', waiting_key, '-inf', now_ms - queue_ttl * 1000)
redis.call('ZREMRANGEBYRANK', waiting_key, 0, -waiting_max - 1)
redis.call('EXPIRE', waiting_key, queue_ttl)
if redis.call('EXISTS', lock_key) == 1 then return 3 end
if announce then
  redis.call('XADD', work_queue_key, 'MAXLEN', '~', work_queue_maxlen, '*', 'thread', thread)
end
return 1
"""


class Accepted(enum.IntEnum):
    """What became of a delivery."""

    DUPLICATE = 0
    QUEUED = 1  # no one is answering in the thread: it needs an answerer now
    NOT_FOLLOWING = 2  # a follow-up in a thread the bot takes no part in
    WAITING = 3  # queued behind the answer in progress, whose holder will get to it
    TOO_MANY_QUESTIONS = 4  # the asker is past the per-minute limit: tell them, once
    TOO_MANY_QUESTIONS_AGAIN = 5  # ... and was told so this minute already
    QUEUE_FULL = 6  # the thread's queue is full: tell the thread, once
    QUEUE_FULL_AGAIN = 7  # ... and it was told so this minute already

    @property
    def refused(self) -> bool:
        """Refused by a limit: not queued, no model call."""
        return self >= Accepted.TOO_MANY_QUESTIONS

    @property
    def to_tell(self) -> bool:
        """A refusal the person should read about (the first of its kind this minute)."""
        return self in (Accepted.TOO_MANY_QUESTIONS, Accepted.QUEUE_FULL)


# 0 while the thread is locked; else announces its queue.
_ANNOUNCE = """
local queue_key = KEYS[1]
local lock_key = KEYS[2]
local work_queue_key = KEYS[3]
local thread = ARGV[1]
local work_queue_maxlen = ARGV[2]
if redis.call('EXISTS', lock_key) == 1 then return 0 end
if redis.call('LLEN', queue_key) > 0 then
  redis.call('XADD', work_queue_key, 'MAXLEN', '~', work_queue_maxlen, '*', 'thread', thread)
end
return 1
"""

# -1: the lock is not the caller's; 0: questions wait, keep draining; 1: released.
_RELEASE_IF_EMPTY = """
local queue_key = KEYS[1]
local lock_key = KEYS[2]
local waiting_key = KEYS[3]
local token = ARGV[1]
local thread = ARGV[2]
if redis.call('GET', lock_key) ~= token then return -1 end
if redis.call('LLEN', queue_key) > 0 then return 0 end
redis.call('DEL', lock_key)
redis.call('ZREM', waiting_key, thread)
return 1
"""

# Returns the threads whose questions wait with no one holding them; forgets those with
# none left.
_STRANDED = """
local waiting_key = KEYS[1]
-- ARGV: the threads to look at. KEYS[2 * i] and KEYS[2 * i + 1]: the queue and the lock
-- of the thread in ARGV[i].
local stranded = {}
for i, thread in ipairs(ARGV) do
  local queue_key = KEYS[2 * i]
  local lock_key = KEYS[2 * i + 1]
  if redis.call('EXISTS', lock_key) == 0 then
    if redis.call('LLEN', queue_key) > 0 then
      table.insert(stranded, thread)
    else
      redis.call('ZREM', waiting_key, thread)
    end
  end
end
return stranded
"""

_BREAK = """
local lock_key = KEYS[1]
local token = ARGV[1]
if redis.call('GET', lock_key) ~= token then return 0 end
return redis.call('DEL', lock_key)
"""

_REFRESH = """
local lock_key = KEYS[1]
local token = ARGV[1]
local ttl_ms = ARGV[2]
if redis.call('GET', lock_key) ~= token then return 0 end
return redis.call('PEXPIRE', lock_key, ttl_ms)
"""


class ThreadStore:
    def __init__(
        self,
        client: redis.Redis,
        *,
        thread_ttl: int,
        history_turns: int,
        lock_ttl: float = 30.0,
        questions_per_minute: int | None = None,
    ) -> None:
        self._redis = client
        self.questions_per_minute = questions_per_minute
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
        an answerer on the work queue, for the worker processes. The same step refuses the
        question when its asker has had ``questions_per_minute`` questions queued in the last
        minute (None: no such limit; the bot always sets the policy's), or when the thread
        already has ``THREAD_QUEUE_MAX`` waiting."""
        key_list = [keys.queue(thread), keys.active(thread), keys.lock(thread)]
        key_list += [keys.work_queue(), keys.waiting_threads()]
        key_list += [
            keys.questions_asked(question.user),
            keys.told_too_many_questions(question.user),
            keys.told_queue_full(thread),
            *dedupe,
        ]
        args: list[Any] = [
            keys.DEDUPE_TTL,
            question.to_json(),
            keys.QUEUE_TTL,
            self._thread_ttl,
            int(follow_up),
            int(announce),
            thread,
            keys.WORK_QUEUE_MAXLEN,
            int(time.time() * 1000),
            f"{question.channel}:{question.ts}",
            self.questions_per_minute or 0,
            keys.QUESTIONS_WINDOW * 1000,
            keys.THREAD_QUEUE_MAX,
            keys.WAITING_THREADS_MAX,
        ]
        async with redis_errors():
            return Accepted(int(await self._accept(key_list, args)))

    async def asking_again_at(self, user: str) -> float:
        """When ``user``'s oldest question of the last minute leaves the count (epoch
        seconds): from then on they may ask again."""
        async with redis_errors():
            oldest = await self._redis.zrange(keys.questions_asked(user), 0, 0, withscores=True)
        now = time.time()
        return max(now, float(oldest[0][1]) / 1000 + keys.QUESTIONS_WINDOW) if oldest else now

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
