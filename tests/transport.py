"""Byte-level test pieces for httpx's own seam, ``MockTransport``: a response body made of
exact byte parts (split wherever a test likes), and a handler that records the requests."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx

KEY = "inf-secret-key"
Handler = Callable[[httpx.Request], httpx.Response | Awaitable[httpx.Response]]


class Parts(httpx.AsyncByteStream):
    """Exactly these byte parts; a float is a pause in seconds; an exception is raised."""

    def __init__(self, *parts: bytes | float | Exception) -> None:
        self.parts = parts
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for part in self.parts:
            if isinstance(part, float):
                await asyncio.sleep(part)
            elif isinstance(part, Exception):
                raise part
            else:
                yield part

    async def aclose(self) -> None:
        self.closed = True


def sse_response(stream: Parts, content_type: str = "text/event-stream") -> httpx.Response:
    return httpx.Response(200, headers={"content-type": content_type}, stream=stream)


class Recorder:
    """A MockTransport handler that answers with one response and keeps the requests."""

    def __init__(self, response: httpx.Response | Handler) -> None:
        self.response = response
        self.requests: list[httpx.Request] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if isinstance(self.response, httpx.Response):
            return self.response
        answer = self.response(request)
        return await answer if isinstance(answer, Awaitable) else answer

    @property
    def body(self) -> dict[str, Any]:
        return dict(json.loads(self.requests[-1].content))
