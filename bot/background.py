"""Work started from a request that outlives it: tracked, counted, and never silent.

Every such task holds the process's ``InFlight`` count, so shutdown waits for it, and any
exception it raises is logged instead of vanishing as "Task exception was never retrieved".
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from bot.inflight import InFlight

log = logging.getLogger(__name__)


class Background:
    def __init__(self, inflight: InFlight | None = None) -> None:
        self._inflight = inflight or InFlight()
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, work: Coroutine[Any, Any, object], what: str) -> None:
        async def run() -> None:
            async with self._inflight.hold():
                try:
                    await work
                except Exception:
                    log.exception("%s failed", what)

        task = asyncio.create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def stop_requested() -> bool:
    """True once the running task was told to stop. redis-py can turn a cancellation that
    lands inside a command into a connection error, which a retry loop would then swallow;
    loops that outlive requests check this so a task told to stop always stops."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
