"""Work in progress, counted, so shutdown can wait for it and refuse new work.

Bolt runs listeners after acknowledging Slack; nothing else knows they are still running.
Heroku gives a dyno 30 seconds between SIGTERM and SIGKILL: enough to finish most answers.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class InFlight:
    def __init__(self) -> None:
        self._count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def count(self) -> int:
        return self._count

    @asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        self._count += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._count -= 1
            if self._count == 0:
                self._idle.set()

    async def drain(self, grace: float) -> bool:
        """Wait for what runs; False if it did not finish within ``grace`` seconds."""
        try:
            await asyncio.wait_for(self._idle.wait(), grace)
        except TimeoutError:
            return False
        return True
