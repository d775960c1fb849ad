"""The heartbeat that says a process is alive: an OS thread with its own Redis connection.

Why a thread and not a task, or a lease renewed as work progresses: a process is taken for
dead when its heartbeat misses three intervals, and the cost of a wrong verdict is high
(its answers are marked "interrupted" while they go on). A task on the event loop misses
beats whenever the loop is busy: a burst of answers, a long synchronous step, a slow
Redis that the answers' connection pool queues behind. A lease renewed by progress has
the same blind spot, since progress is made on that loop. The thread needs only the GIL,
which Python hands over every few milliseconds even to a busy loop, and its connection
is its own, so nothing the answers do can delay a beat.

What it cannot tell: a loop stuck for good still beats. Answers have their own deadline
(``COPILOT_ANSWER_DEADLINE``), and a process that is gone stops beating at once.

Between beats the thread waits on the process's ping list (``keys.ping``) instead of
sleeping: a push there makes it beat at once, so a replacement with the same ``DYNO``
learns within milliseconds whether the process it replaces still lives.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time

import redis
from redis.exceptions import RedisError

from bot.state import keys

log = logging.getLogger(__name__)

# How long stop() waits for the thread to finish its last command.
STOP_WAIT = 3.0


class Heartbeat:
    def __init__(
        self,
        client: redis.Redis,
        process: str,
        *,
        interval: float,
        ttl: float,
        name: str | None = None,
    ) -> None:
        self._client = client
        self._process = process
        self._name = name
        self._interval = interval
        self._ttl_ms = int(ttl * 1000)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat:{process}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    async def stop(self) -> None:
        """Beat no more; the key expires by itself unless the caller deletes it."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        await asyncio.to_thread(self._wake_and_join)

    def _wake_and_join(self) -> None:
        if self._thread.is_alive():
            # Failing that, it wakes at its next beat and sees it must stop.
            with contextlib.suppress(RedisError, OSError):
                self._client.lpush(keys.ping(self._process), "stop")
            self._thread.join(STOP_WAIT)
        self._client.close()

    def _run(self) -> None:
        failing = False
        while not self._stopping.is_set():
            try:
                self._beat()
                self._client.blpop([keys.ping(self._process)], timeout=self._interval)
                failing = False
            except (RedisError, OSError) as exc:
                if not failing:
                    log.warning("heartbeat failed: %s; retrying", type(exc).__name__)
                failing = True
                self._stopping.wait(min(self._interval, 1.0))

    def _beat(self) -> None:
        with self._client.pipeline(transaction=False) as pipe:
            # A new value each time: whoever pinged sees that this process answered.
            pipe.set(keys.heartbeat(self._process), str(time.time_ns()), px=self._ttl_ms)
            pipe.expire(keys.work(self._process), keys.WORK_TTL)
            if self._name is not None:
                pipe.expire(keys.incarnation(self._name), keys.WORK_TTL)
            pipe.execute()
