"""What both clients share: how one is built, and the one loop that ends a stream.

A client says what to send and how one server-sent event reads as its typed items; this
loop does the rest for both. It stops at ``[DONE]`` (or at an event named ``done``, as the
Agents API sends it), and a stream the server closes before a final item (a finish reason)
raises ``InferenceUnavailable``: what came is not the whole answer. The clocks, HTTP
statuses and closing the response are ``sse.Connection``'s; an error sent inside the stream
is the decoder's to raise (chat) or to show (agents).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Callable, Iterable, Mapping
from typing import Any, TypeVar

import httpx
from httpx_sse import ServerSentEvent

from bot.errors import InferenceUnavailable
from bot.inference.sse import Connection

T = TypeVar("T")
DONE = "[DONE]"


class Client:
    """One model on Heroku Inference. The ``httpx.AsyncClient`` is the caller's to close.

    The two clocks (see ``sse.Clock``) have no defaults here: each API's pace is a setting
    (``bot.config``), and a second set of defaults would drift from it.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        base_url: str,
        api_key: str,
        model: str,
        idle_timeout: float,
        deadline: float,
    ) -> None:
        self.model = model
        self._connection = Connection(
            http, base_url=base_url, api_key=api_key, idle_timeout=idle_timeout, deadline=deadline
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._connection!r}, model={self.model!r})"

    async def _stream(
        self,
        path: str,
        body: Mapping[str, Any],
        decode: Callable[[ServerSentEvent], Iterable[T]],
        *,
        final: Callable[[T], bool],
        opened: Callable[[], None] | None = None,
    ) -> AsyncGenerator[T, None]:
        """POST ``body`` and yield what ``decode`` reads in each event, up to ``[DONE]``;
        ``opened`` is called once the server starts its reply."""
        finished = False
        stream = self._connection.events(path, body, opened=opened)
        async with contextlib.aclosing(stream) as events:
            async for event in events:
                if event.event == "done" or event.data.strip() == DONE:
                    return
                for item in decode(event):
                    finished = finished or final(item)
                    yield item
        # A clean close after a final item is a complete answer; before one it is not.
        if not finished:
            raise InferenceUnavailable("stream ended early")
