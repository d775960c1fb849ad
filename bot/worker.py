"""The worker: answers the threads and runs the approved runs that web processes put on the
work queue.

Answers and agent runs are the heavy part of the bot (model streams, Slack pacing, Redis
state); keeping them out of the web process means acknowledging Slack never waits behind
them. A worker takes as many entries as it has slots. For a thread it tries the thread's
lock, acknowledges the entry, and answers the thread's queue while it holds the lock. For
a run it tries the ``approved → running`` move, acknowledges the entry, and follows the
run if the move was its own. Entries a dead worker had taken are claimed again after
``RECLAIM_AFTER`` seconds.

A worker started by a web process (``--parent``) does not outlive it: once the web process
is gone (crashed, or killed alone) the worker, itself healthy, stops as at SIGTERM. It
takes no more threads, lets its answers finish within ``COPILOT_SHUTDOWN_GRACE`` and marks
what cannot finish, rather than leave them for a sweep to find half a minute later.
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
from bot.runs.service import RunService
from bot.state.work_queue import Entry, RunEntry, ThreadEntry, WorkQueue

log = logging.getLogger(__name__)

# Workers acknowledge an entry milliseconds after reading it; one still unacknowledged after
# this long belongs to a worker that died in between.
RECLAIM_AFTER = 30.0
# Entries read at a time: small enough that several workers share a burst.
BATCH = 25
READ_BLOCK = 1.0
# How often a worker checks that its web process is still there.
PARENT_POLL = 0.5


class Worker:
    def __init__(
        self,
        queue: WorkQueue,
        scheduler: ThreadScheduler,
        runs: RunService,
        background: Background,
        *,
        capacity: int,
        reclaim_after: float = RECLAIM_AFTER,
    ) -> None:
        self._queue = queue
        self._scheduler = scheduler
        self._runs = runs
        self._background = background
        self._capacity = capacity
        self._busy = 0
        self._room = asyncio.Event()
        self._room.set()
        self._reclaim_after = reclaim_after

    async def run(self, stop: asyncio.Event) -> None:
        """Take entries until ``stop`` is set; answers and runs in progress go on."""
        next_reclaim = 0.0
        while await _ready(self._room, stop):
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
        match entry:
            case ThreadEntry():
                self._background.spawn(self._answer(entry), "answering a thread")
            case RunEntry():
                self._background.spawn(self._follow(entry), "running an approved run")

    async def _answer(self, entry: ThreadEntry) -> None:
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
            self._free_slot()

    async def _follow(self, entry: RunEntry) -> None:
        try:
            record = await self._runs.begin(entry.run)
            # The move now says who runs it: the entry has done its job either way. One
            # left unacknowledged comes back later and finds the run begun.
            with contextlib.suppress(BotError):
                await self._queue.done(entry)
            if record is not None:
                await self._runs.follow(record)
        except BotError as exc:
            # Unacknowledged entries come back after RECLAIM_AFTER; the run stays approved,
            # where the sweep finds it too.
            log.warning("could not begin run %s: %s", entry.run, exc)
        finally:
            self._free_slot()

    def _free_slot(self) -> None:
        self._busy -= 1
        self._room.set()


async def watch_parent(parent: int, stop: asyncio.Event) -> None:
    """Set ``stop`` once the web process ``parent`` is gone (this worker was re-parented).
    A task of its own: a worker with every answer slot busy notices too."""
    while os.getppid() == parent:  # noqa: ASYNC110 (being re-parented sets no event)
        await asyncio.sleep(PARENT_POLL)
    log.warning("the web process that started this worker is gone; stopping")
    stop.set()


async def _ready(room: asyncio.Event, stop: asyncio.Event) -> bool:
    """Wait for a free answer slot; False once told to stop, even while every slot is busy."""
    if not room.is_set() and not stop.is_set():
        waits = [asyncio.ensure_future(event.wait()) for event in (room, stop)]
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for waiting in waits:
            waiting.cancel()
    return not stop.is_set()


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
