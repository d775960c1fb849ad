"""Pacing a text stream by time: the first piece at once, then one batch per interval.

Slack wants about one edit per second per message, while a model emits tokens every few
milliseconds. ``paced`` coalesces tokens into batches in the same task that writes them:
the next token is awaited as a future that keeps running while a batch is written, so
reading never stops, and pending text is flushed on time even when the model goes quiet.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator


async def paced(source: AsyncIterator[str], interval: float) -> AsyncGenerator[str, None]:
    loop = asyncio.get_running_loop()
    pending = ""
    due = loop.time()  # the first text goes out as soon as it arrives
    upcoming: asyncio.Future[str] = asyncio.ensure_future(anext(source))
    try:
        while True:
            wait = max(0.0, due - loop.time()) if pending else None
            done, _ = await asyncio.wait({upcoming}, timeout=wait)
            if done:
                try:
                    pending += upcoming.result()
                except StopAsyncIteration:
                    break
                except BaseException:
                    if pending:
                        yield pending
                    raise
                upcoming = asyncio.ensure_future(anext(source))
            if pending and loop.time() >= due:
                yield pending
                pending = ""
                due = loop.time() + interval
        if pending:
            yield pending
    finally:
        upcoming.cancel()
        with contextlib.suppress(BaseException):
            await upcoming
        aclose = getattr(source, "aclose", None)
        if aclose is not None:
            await aclose()
