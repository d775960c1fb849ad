"""The stop button: a click in one process stops the answer streaming in another.

The web process that receives ``agent_session_stopped`` marks the thread in Redis
(``press``); each process answering questions looks, a few times a second, for marks on
the threads it is streaming in, with one read for all of them (``watch``). A mark older
than the answer it would stop is someone's earlier click: it stops nothing, so a question
queued behind a stopped answer is still answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, field
from typing import Any

from bot.errors import StateError
from bot.state import keys
from bot.state.sessions import SessionStore, StopMark

log = logging.getLogger(__name__)

POLL_SECONDS = 0.3


@dataclass
class Stop:
    """One answer's stop signal: ``by`` is who pressed the button, once someone did."""

    since: float
    by: str | None = None
    pressed: asyncio.Event = field(default_factory=asyncio.Event)

    def press(self, user: str) -> None:
        self.by = user
        self.pressed.set()


class StopSignals:
    def __init__(self, store: SessionStore, poll_seconds: float = POLL_SECONDS) -> None:
        self._store = store
        self._poll_seconds = poll_seconds
        self._watched: dict[str, Stop] = {}
        self._poller: asyncio.Task[None] | None = None

    async def press(self, team: str, channel: str, thread_ts: str, user: str) -> bool:
        """Ask whoever answers in the thread to stop; False when nothing is answering."""
        thread = keys.thread_id(team, channel, thread_ts)
        if not await self._store.locked(thread):
            return False
        await self._store.mark_stop(thread, StopMark(user=user, at=time.time()))
        return True

    @contextlib.asynccontextmanager
    async def watch(self, thread: str) -> AsyncIterator[Stop]:
        """The stop signal of the answer now starting in ``thread`` (one at a time: its
        lock is held)."""
        stop = Stop(since=time.time())
        self._watched[thread] = stop
        if self._poller is None or self._poller.done():
            self._poller = asyncio.create_task(self._poll())
        try:
            yield stop
        finally:
            if self._watched.get(thread) is stop:
                del self._watched[thread]

    async def _poll(self) -> None:
        while self._watched:
            await asyncio.sleep(self._poll_seconds)
            threads = list(self._watched)
            try:
                marks = await self._store.stops(threads)
            except StateError as exc:
                log.warning("cannot look for stop clicks right now: %s", exc)
                continue
            for thread, mark in marks.items():
                stop = self._watched.get(thread)
                if stop is not None and stop.by is None and mark.at >= stop.since:
                    stop.press(mark.user)


async def until_stopped(work: Coroutine[Any, Any, None], stop: Stop) -> None:
    """Run ``work`` until it ends or ``stop`` is pressed; then it is cancelled at once (for
    a model stream: its HTTP response closes as it unwinds), even mid-wait. One task for
    the whole answer, not one per piece."""
    task = asyncio.ensure_future(work)
    pressed = asyncio.ensure_future(stop.pressed.wait())
    try:
        await asyncio.wait({task, pressed}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        pressed.cancel()
        if not task.done():
            task.cancel()
            await asyncio.wait({task})
    if not task.cancelled():
        task.result()  # its error, if it failed
