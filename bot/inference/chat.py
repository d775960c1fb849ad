"""Chat completions on Heroku Managed Inference, streamed as typed events.

``POST /v1/chat/completions`` answers with OpenAI-style chunks (``data: {json}``) and ends
with ``data: [DONE]``. No verbatim Heroku chunk is published, so every field is read
defensively: a chunk without ``choices``, a usage-only chunk or an unknown field is fine;
an error object inside the stream or data that is not JSON is an error.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Any

import httpx
from httpx_sse import ServerSentEvent

from bot.errors import InferenceStreamError, InferenceUnavailable
from bot.inference.events import ChatEvent, Finish, TextDelta, ToolCallDelta, Usage
from bot.inference.sse import Connection
from bot.inference.translate import clip, stream_error

CHAT_PATH = "/v1/chat/completions"
DONE = "[DONE]"


class InferenceClient:
    """Chat with one model. The ``httpx.AsyncClient`` is the caller's to create and close."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        base_url: str,
        api_key: str,
        model: str,
        idle_timeout: float = 30.0,
        deadline: float = 300.0,
    ) -> None:
        self.model = model
        self._connection = Connection(
            http, base_url=base_url, api_key=api_key, idle_timeout=idle_timeout, deadline=deadline
        )

    def __repr__(self) -> str:
        return f"InferenceClient({self._connection!r}, model={self.model!r})"

    async def stream_chat(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> AsyncGenerator[ChatEvent, None]:
        """Yield the answer as it is written; raises ``InferenceError`` subclasses only."""
        body = self._body(messages, tools=tools, max_tokens=max_tokens, temperature=temperature)
        finished = False
        async with contextlib.aclosing(self._connection.events(CHAT_PATH, body)) as events:
            async for sse in events:
                decoded = decode_event(sse)
                if decoded is None:
                    return
                for event in decoded:
                    finished = finished or isinstance(event, Finish)
                    yield event
        # A clean close after a finish_reason is a complete answer; before one it is not.
        if not finished:
            raise InferenceUnavailable("stream ended early")

    async def complete(self, messages: Sequence[Mapping[str, Any]], *, max_tokens: int = 1) -> str:
        """One non-streaming completion (a cheap health check); returns the text."""
        body = {"model": self.model, "messages": list(messages), "max_tokens": max_tokens}
        reply = await self._connection.post(CHAT_PATH, body)
        if not isinstance(reply, dict) or not isinstance(reply.get("choices"), list):
            raise InferenceStreamError(f"no choices in the reply: {clip(json.dumps(reply))!r}")
        message = first_choice(reply).get("message")
        content = message.get("content") if isinstance(message, dict) else None
        return content if isinstance(content, str) else ""

    def _body(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        tools: Sequence[Mapping[str, Any]] | None,
        max_tokens: int | None,
        temperature: float | None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": list(messages),
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if tools:
            # One Heroku doc gives "required" as the default; a chat must be free to answer.
            body |= {"tools": list(tools), "tool_choice": "auto"}
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
        if temperature is not None:
            body["temperature"] = temperature
        return body


def decode_event(sse: ServerSentEvent) -> list[ChatEvent] | None:
    """The chat events in one SSE event; None at ``[DONE]``. Raises on in-stream errors."""
    data = sse.data.strip()
    if sse.event == "error":
        raise stream_error(_loads_or_text(data))
    if not data:
        return []
    if data == DONE:
        return None
    return decode_chunk(_loads(data))


def decode_chunk(chunk: Mapping[str, Any]) -> list[ChatEvent]:
    if chunk.get("error"):
        raise stream_error(chunk)
    choice = first_choice(chunk)
    delta = choice.get("delta")
    events = _delta_events(delta) if isinstance(delta, dict) else []
    reason = choice.get("finish_reason")
    if isinstance(reason, str) and reason:
        events.append(Finish(reason))
    usage = parse_usage(chunk.get("usage"))
    return [*events, usage] if usage else events


def parse_usage(value: object) -> Usage | None:
    """``usage`` as Heroku sends it; None when absent or empty (``{}``)."""
    if not isinstance(value, dict) or not value:
        return None
    prompt, completion = _int(value.get("prompt_tokens")), _int(value.get("completion_tokens"))
    total = value.get("total_tokens")
    return Usage(prompt, completion, _int(total) if total is not None else prompt + completion)


def _delta_events(delta: Mapping[str, Any]) -> list[ChatEvent]:
    # ``delta.reasoning`` (extended thinking) is deliberately not shown.
    events: list[ChatEvent] = []
    content = delta.get("content")
    if isinstance(content, str) and content:
        events.append(TextDelta(content))
    calls = delta.get("tool_calls")
    for position, call in enumerate(calls if isinstance(calls, list) else []):
        if isinstance(call, dict):
            events.append(_tool_call_delta(call, position))
    return events


def _tool_call_delta(call: Mapping[str, Any], position: int) -> ToolCallDelta:
    function = call.get("function")
    function = function if isinstance(function, dict) else {}
    index, name, arguments = call.get("index"), function.get("name"), function.get("arguments")
    return ToolCallDelta(
        index=index if isinstance(index, int) else position,
        id=call.get("id") if isinstance(call.get("id"), str) else None,
        name=name if isinstance(name, str) else None,
        arguments=arguments if isinstance(arguments, str) else "",
    )


def first_choice(chunk: object) -> dict[str, Any]:
    choices = chunk.get("choices") if isinstance(chunk, dict) else None
    first = choices[0] if isinstance(choices, list) and choices else None
    return first if isinstance(first, dict) else {}


def _loads(data: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise InferenceStreamError(f"could not read a stream event: {clip(data)!r}")
    return value


def _loads_or_text(data: str) -> object:
    try:
        return json.loads(data)
    except ValueError:
        return data or "no details"


def _int(value: object) -> int:
    return value if isinstance(value, int) else 0
