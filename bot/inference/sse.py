"""One request to Heroku Inference, read as server-sent events under two clocks.

httpx-sse does the SSE framing (CRLF/CR/LF line ends, ``: comments``, ``data:`` with or
without a space, multi-line data) on top of httpx's incremental decoder, which keeps a
UTF-8 character split across network chunks whole. What this layer adds:

* SSE is always UTF-8 (a leading BOM is dropped) whatever charset the server claims;
* an idle timeout around *each* read, so a stream that sends nothing at all is noticed,
  and one deadline for the whole request;
* statuses and httpx exceptions become ``bot.errors`` (see ``translate``);
* the response is closed in every case, including a consumer that stops early.

Comment lines (``: keep-alive``) do not reset the idle timer: they show that the proxy is
alive, not that the model is making progress, and a model stalled behind keep-alives
should time out like one behind silence.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from typing import Any, TypeVar

import httpx
from httpx_sse import EventSource, ServerSentEvent

from bot.errors import InferenceStreamError, InferenceTimeout
from bot.inference.translate import clip, httpx_errors, status_error

T = TypeVar("T")


class Clock:
    """An idle timeout for each wait plus one deadline, both starting now."""

    def __init__(self, idle_timeout: float, deadline: float) -> None:
        self._idle = idle_timeout
        self._deadline = deadline
        self._ends_at = asyncio.get_running_loop().time() + deadline

    async def within(self, start: Callable[[], Awaitable[T]]) -> T:
        """Await ``start()`` for no longer than the idle timeout or what is left of the deadline.

        A timeout is applied per wait, not across ``yield``: a timer held while the consumer
        runs would cancel the consumer's own work. A read cancelled here is never resumed.
        """
        now = asyncio.get_running_loop().time()
        if now >= self._ends_at:
            raise self._expired(idle=False)
        idle_at = now + self._idle
        timer = asyncio.timeout_at(min(idle_at, self._ends_at))
        try:
            async with timer:
                return await start()
        except TimeoutError:
            if not timer.expired():
                raise
            raise self._expired(idle=idle_at < self._ends_at) from None

    def _expired(self, *, idle: bool) -> InferenceTimeout:
        if idle:
            return InferenceTimeout(f"no event from Heroku Inference for {self._idle:g}s")
        return InferenceTimeout(f"the response ran past its {self._deadline:g}s deadline")


class Connection:
    """How to reach Heroku Inference: the injected client, base URL, key and timeouts."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        base_url: str,
        api_key: str,
        idle_timeout: float,
        deadline: float,
    ) -> None:
        self._http = http
        self._base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._idle_timeout = idle_timeout
        self._deadline = deadline

    def __repr__(self) -> str:
        return f"Connection(base_url={self._base_url!r})"

    async def events(
        self, path: str, body: Mapping[str, Any], *, opened: Callable[[], None] | None = None
    ) -> AsyncGenerator[ServerSentEvent, None]:
        """POST ``body`` and yield the response's events until the server closes it;
        ``opened`` is called once the server has accepted the request and starts its reply."""
        clock = Clock(self._idle_timeout, self._deadline)
        with httpx_errors():
            request = self._request(path, body, accept="text/event-stream")
            response = await clock.within(lambda: self._http.send(request, stream=True))
            try:
                await _raise_for_status(response, clock)
                if opened is not None:
                    opened()
                response.encoding = "utf-8-sig"
                async with contextlib.aclosing(EventSource(response).aiter_sse()) as events:
                    while (event := await clock.within(lambda: anext(events, None))) is not None:
                        yield event
            finally:
                await response.aclose()

    async def post(self, path: str, body: Mapping[str, Any]) -> Any:
        """POST ``body`` and return the decoded JSON response."""
        clock = Clock(self._idle_timeout, self._deadline)
        with httpx_errors():
            request = self._request(path, body, accept="application/json")
            response = await clock.within(lambda: self._http.send(request))
        if not response.is_success:
            raise status_error(response)
        try:
            return response.json()
        except ValueError:
            raise InferenceStreamError(f"not JSON: {clip(response.text)!r}") from None

    def _request(self, path: str, body: Mapping[str, Any], *, accept: str) -> httpx.Request:
        headers = {"Authorization": f"Bearer {self._api_key}", "Accept": accept}
        # The Clock is the only timer on reads: httpx's own read timeout would cut off an
        # agent run whose tool works quietly for longer than it (Heroku allows 120 s).
        timeout = httpx.Timeout(connect=10.0, read=None, write=30.0, pool=10.0)
        return self._http.build_request(
            "POST", self._base_url + path, json=body, headers=headers, timeout=timeout
        )


async def _raise_for_status(response: httpx.Response, clock: Clock) -> None:
    if response.is_success:
        return
    # The body is streamed: read it (under the same clock) so the error can quote it.
    await clock.within(response.aread)
    raise status_error(response)
