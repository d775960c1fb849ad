"""FakeInference: Heroku Managed Inference (chat completions and Agents) on loopback.

Replies are scripted per path, first in first out; an empty script echoes (chat) or finishes
at once (agents). Every request is recorded, including refused ones.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web

from tests.fakes.loopback import Loopback, LoopbackFake
from tests.fakes.sse import (
    DEFAULT_MODEL,
    agent_completion,
    agent_tool_call,
    agent_tool_result,
    completion,
    sse_event,
    text_stream,
    tool_call_stream,
)

__all__ = [
    "AGENTS",
    "CHAT",
    "FakeInference",
    "InferenceRequest",
    "agent_completion",
    "agent_tool_call",
    "agent_tool_result",
]

CHAT = "/v1/chat/completions"
AGENTS = "/v1/agents/heroku"
Json = dict[str, Any]
Ending = Literal["finish", "stall", "drop"]


@dataclass
class InferenceRequest:
    path: str
    headers: dict[str, str]  # keys lower-cased
    json: Json
    at: float


@dataclass
class _Reply:
    parts: Callable[[Json], list[bytes]]  # built from the request body, e.g. to echo its model
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "text/event-stream"
    delay: float = 0.0
    queued: float = 0.0  # seconds before the response starts (the model is busy)
    ending: Ending = "finish"
    stall: float = 0.0
    whole: bool = False  # one plain response instead of a stream
    text: str | None = None  # what a non-streaming chat request gets instead


class FakeInference(LoopbackFake):
    """Scripted Heroku Inference; point INFERENCE_URL at ``base_url``."""

    def __init__(self, key: str = "inf-test") -> None:
        self.key = key
        self.requests: list[InferenceRequest] = []
        # Streams the client closed before the reply was over (e.g. a stop button).
        self.closed_early: list[InferenceRequest] = []
        self._scripts: dict[str, deque[_Reply]] = {CHAT: deque(), AGENTS: deque()}
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post(CHAT, self._handle)
        app.router.add_post(AGENTS, self._handle)
        self._server = Loopback(app)

    @property
    def base_url(self) -> str:
        return self.root_url

    @property
    def chat_requests(self) -> list[InferenceRequest]:
        return [r for r in self.requests if r.path == CHAT]

    @property
    def agent_requests(self) -> list[InferenceRequest]:
        return [r for r in self.requests if r.path == AGENTS]

    def pending(self, path: str = CHAT) -> int:
        """How many scripted replies for ``path`` were not used yet."""
        return len(self._scripts[path])

    # A plain ``timeout`` argument reads best in scenario tests, hence the noqa.
    async def wait_for_requests(
        self,
        n: int,
        timeout: float = 5.0,  # noqa: ASYNC109
        path: str | None = None,
    ) -> None:
        deadline = time.monotonic() + timeout
        while len([r for r in self.requests if path in (None, r.path)]) < n:
            if time.monotonic() >= deadline:
                seen = [(r.path, r.at) for r in self.requests]
                raise AssertionError(f"expected {n} inference requests within {timeout}s: {seen}")
            await asyncio.sleep(0.01)

    # -- scripting -------------------------------------------------------------------------

    def reply_text(
        self,
        text: str,
        *,
        pieces: int | None = None,
        delay: float = 0.0,
        usage: bool = True,
        finish: str = "stop",
    ) -> None:
        """Stream ``text`` as OpenAI-style chunks (about 4 characters each unless ``pieces``)."""

        def build(body: Json) -> list[bytes]:
            return text_stream(
                text, model=_model(body), pieces=pieces, with_usage=usage, finish=finish
            )

        self._scripts[CHAT].append(_Reply(build, delay=delay, text=text))

    def reply_pieces(self, pieces: list[str], *, delay: float = 0.0, queued: float = 0.0) -> None:
        """Stream exactly these pieces of text, one chunk each, ``delay`` seconds apart;
        the response starts ``queued`` seconds after the request."""

        def build(body: Json) -> list[bytes]:
            return text_stream("".join(pieces), model=_model(body), pieces=pieces)

        reply = _Reply(build, delay=delay, queued=queued, text="".join(pieces))
        self._scripts[CHAT].append(reply)

    def reply_tool_calls(
        self,
        calls: list[tuple[str, str]],
        *,
        text: str = "",
        delay: float = 0.0,
        arg_pieces: int = 3,
    ) -> None:
        """Stream tool-call deltas for ``(name, arguments_json)`` pairs, after optional text."""

        def build(body: Json) -> list[bytes]:
            return tool_call_stream(calls, text=text, model=_model(body), arg_pieces=arg_pieces)

        self._scripts[CHAT].append(_Reply(build, delay=delay))

    def reply_raw(
        self,
        parts: list[bytes],
        *,
        delay: float = 0.0,
        status: int = 200,
        headers: dict[str, str] | None = None,
        content_type: str = "text/event-stream",
        path: str = CHAT,
    ) -> None:
        """Write exactly these parts, each flushed on its own, ``delay`` seconds apart."""
        self._scripts[path].append(
            _Reply(lambda _: list(parts), status, dict(headers or {}), content_type, delay)
        )

    def reply_error(
        self,
        status: int,
        body: Json | str,
        *,
        headers: dict[str, str] | None = None,
        path: str = CHAT,
    ) -> None:
        """Answer with an HTTP error; a dict body is sent as JSON, a str as plain text."""
        raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        kind = "text/plain" if isinstance(body, str) else "application/json"
        self._scripts[path].append(
            _Reply(lambda _: [raw], status, dict(headers or {}), kind, whole=True)
        )

    def reply_stall(
        self, first_parts: list[bytes], stall_seconds: float, *, path: str = CHAT
    ) -> None:
        """Send ``first_parts`` then keep the connection open and silent for ``stall_seconds``."""
        self._scripts[path].append(
            _Reply(lambda _: list(first_parts), ending="stall", stall=stall_seconds)
        )

    def reply_drop(self, parts: list[bytes], *, path: str = CHAT) -> None:
        """Send ``parts`` then abort the connection mid-response."""
        self._scripts[path].append(_Reply(lambda _: list(parts), ending="drop"))

    def agent_events(self, events: list[tuple[str, str]], delay: float = 0.0) -> None:
        """Stream Agents API events ``(name, data)`` as ``event:name\\ndata:data``."""
        parts = [sse_event(name, data) for name, data in events]
        self._scripts[AGENTS].append(_Reply(lambda _: list(parts), delay=delay))

    # -- HTTP ------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            body = json.loads(await request.text())
        except ValueError:
            body = None
        seen = InferenceRequest(request.path, headers, body or {}, time.monotonic())
        self.requests.append(seen)
        if headers.get("authorization") != f"Bearer {self.key}":
            return _error(401, "Invalid API key", "authentication_error")
        if not isinstance(body, dict):
            return _error(400, "request body must be a JSON object", "invalid_request_error")
        return await self._send(request, body, self._next_reply(request.path, body), seen)

    def _next_reply(self, path: str, body: Json) -> _Reply:
        script = self._scripts[path]
        if script:
            return script.popleft()
        if path == AGENTS:
            events = [("message", agent_completion("done", model=_model(body))), ("done", "[DONE]")]
            return _Reply(lambda _: [sse_event(name, data) for name, data in events])
        text = "echo: " + _last_user_text(body)
        return _Reply(lambda b: text_stream(text, model=_model(b)), text=text)

    async def _send(
        self, request: web.Request, body: Json, reply: _Reply, seen: InferenceRequest
    ) -> web.StreamResponse:
        if reply.text is not None and not body.get("stream"):
            return web.json_response(completion(reply.text, model=_model(body)))
        if reply.whole:
            return web.Response(
                body=b"".join(reply.parts(body)),
                status=reply.status,
                headers=reply.headers,
                content_type=reply.content_type,
            )
        if reply.queued and await self._server.pause(reply.queued):
            return web.Response(status=503)
        response = web.StreamResponse(status=reply.status, headers=reply.headers)
        response.content_type = reply.content_type
        await response.prepare(request)
        for index, part in enumerate(reply.parts(body)):
            if index and await self._server.pause(reply.delay):
                return response
            if request.transport is None or request.transport.is_closing():
                self.closed_early.append(seen)
                return response
            try:
                await response.write(part)
            except ConnectionError:
                self.closed_early.append(seen)
                return response
        return await self._finish(request, response, reply)

    async def _finish(
        self, request: web.Request, response: web.StreamResponse, reply: _Reply
    ) -> web.StreamResponse:
        if reply.ending == "drop":
            if request.transport is not None:
                request.transport.abort()
            return response
        if reply.ending == "stall" and await self._server.pause(reply.stall):
            return response
        await response.write_eof()
        return response


def _error(status: int, message: str, kind: str) -> web.Response:
    return web.json_response(
        {"error": {"code": status, "message": message, "type": kind}}, status=status
    )


def _model(body: Json) -> str:
    return str(body.get("model") or DEFAULT_MODEL)


def _last_user_text(body: Json) -> str:
    for message in reversed(body.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            return content if isinstance(content, str) else json.dumps(content)
    return ""
