"""The worker: answers the threads that web processes put on the work queue.

Answers are the heavy part of the bot (model streams, Slack pacing, Redis state); keeping
them out of the web process means acknowledging Slack never waits behind them. A worker
takes as many threads as it has answer slots, tries each thread's lock, acknowledges the
entry, and answers the thread's queue while it holds the lock. Entries a dead worker had
taken are claimed again after ``RECLAIM_AFTER`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time

from bot.ask import ThreadScheduler
from bot.background import Background
from bot.errors import BotError
from bot.state.work_queue import Entry, WorkQueue

log = logging.getLogger(__name__)

# Workers acknowledge an entry milliseconds after reading it; one still unacknowledged after
# this long belongs to a worker that died in between.
RECLAIM_AFTER = 30.0
# Entries read at a time: small enough that several workers share a burst.
BATCH = 25
READ_BLOCK = 1.0


class Worker:
    def __init__(
        self,
        queue: WorkQueue,
        scheduler: ThreadScheduler,
        background: Background,
        *,
        capacity: int,
        parent: int | None = None,
        reclaim_after: float = RECLAIM_AFTER,
    ) -> None:
        self._queue = queue
        self._scheduler = scheduler
        self._background = background
        self._capacity = capacity
        self._busy = 0
        self._room = asyncio.Event()
        self._room.set()
        # Started by a web process: stop when it is gone rather than linger unsupervised.
        self._parent = parent
        self._reclaim_after = reclaim_after

    async def run(self, stop: asyncio.Event) -> None:
        """Take and answer threads until ``stop`` is set; answers in progress go on."""
        next_reclaim = 0.0
        while not stop.is_set() and not self._orphaned():
            await self._room.wait()
            try:
                free = min(BATCH, self._capacity - self._busy)
                entries = await self._queue.take(free, READ_BLOCK)
                if time.monotonic() >= next_reclaim:
                    next_reclaim = time.monotonic() + self._reclaim_after / 2
                    entries += await self._queue.reclaim(self._reclaim_after, BATCH)
            except BotError as exc:
                log.warning("work queue unavailable: %s", exc)
                await _sleep_unless(stop, 1.0)
                continue
            for entry in entries:
                self._start(entry)

    def _start(self, entry: Entry) -> None:
        self._busy += 1
        if self._busy >= self._capacity:
            self._room.clear()
        self._background.spawn(self._answer(entry), "answering a thread")

    async def _answer(self, entry: Entry) -> None:
        try:
            token = await self._scheduler.lock(entry.thread)
            # The lock now says who answers: the entry has done its job either way. One
            # left unacknowledged comes back later and finds the thread taken or empty.
            with contextlib.suppress(BotError):
                await self._queue.done(entry)
            if token is not None:
                await self._scheduler.drain_locked(entry.thread, token)
        except BotError as exc:
            # Unacknowledged entries come back after RECLAIM_AFTER; a taken lock expires.
            log.warning("could not take thread %s: %s", entry.thread, exc)
        finally:
            self._busy -= 1
            self._room.set()

    def _orphaned(self) -> bool:
        if self._parent is not None and os.getppid() != self._parent:
            log.warning("the web process that started this worker is gone; stopping")
            return True
        return False


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
