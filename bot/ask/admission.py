"""Admission control for answers starting at once.

Starting an answer is the expensive, contended part: the access check, the thread's history
and context, the first Slack call and the model request. When hundreds of questions arrive
in the same second, starting them all at once makes every one of them slow (they share one
event loop and one Redis); starting a few at a time, in the order they came, lets the first
ones show text while later ones wait their turn. An answer frees its place once Heroku
starts its reply: waiting for the first token is not contention.
"""

from __future__ import annotations

import asyncio
from types import TracebackType

# Enough to keep the model, Slack and Redis round trips overlapping; few enough that a burst
# is started in arrival order rather than all at once.
STARTING = 20


class Admission:
    """How many answers of this process may be starting at the same time."""

    def __init__(self, starting: int = STARTING) -> None:
        self._places = asyncio.Semaphore(starting)

    def place(self) -> Place:
        return Place(self._places)


class Place:
    """One answer's place among those starting: taken on entry, freed once the model's
    reply starts (``release``) or when the answer ends, whichever comes first."""

    def __init__(self, places: asyncio.Semaphore) -> None:
        self._places = places
        self._held = False

    async def __aenter__(self) -> Place:
        await self._places.acquire()
        self._held = True
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.release()

    def release(self) -> None:
        if self._held:
            self._held = False
            self._places.release()
