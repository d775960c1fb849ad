"""Chat completions on Heroku Managed Inference, streamed as typed events.

``POST /v1/chat/completions`` answers with OpenAI-style chunks (``data: {json}``) and ends
with ``data: [DONE]``. No verbatim Heroku chunk is published, so every field is read
defensively: a chunk without ``choices``, a usage-only chunk or an unknown field is fine;
an error object inside the stream or data that is not JSON is an error.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from typing import Any

from httpx_sse import ServerSentEvent

from bot.errors import InferenceStreamError
from bot.inference.client import Client
from bot.inference.events import ChatEvent, Finish, TextDelta, ToolCallDelta, Usage
from bot.inference.payload import as_dict, as_str, error_details, first_choice, loads
from bot.inference.translate import clip, stream_error

CHAT_PATH = "/v1/chat/completions"


class InferenceClient(Client):
    """Chat with one model. The ``httpx.AsyncClient`` is the caller's to create and close."""

    def stream_chat(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        opened: Callable[[], None] | None = None,
    ) -> AsyncGenerator[ChatEvent, None]:
        """Yield the answer as it is written; raises ``InferenceError`` subclasses only.
        ``opened`` is called once Heroku accepts the request and starts streaming."""
        body = self._body(messages, tools=tools, max_tokens=max_tokens, temperature=temperature)
        return self._stream(CHAT_PATH, body, decode_event, final=_is_finish, opened=opened)

    async def complete(self, messages: Sequence[Mapping[str, Any]], *, max_tokens: int = 1) -> str:
        """One non-streaming completion (a cheap health check); returns the text."""
        body = {"model": self.model, "messages": list(messages), "max_tokens": max_tokens}
        reply = await self._connection.post(CHAT_PATH, body)
        if not isinstance(reply, dict) or not isinstance(reply.get("choices"), list):
            raise InferenceStreamError(f"no choices in the reply: {clip(json.dumps(reply))!r}")
        return as_str(as_dict(first_choice(reply).get("message")).get("content"))

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


def decode_event(sse: ServerSentEvent) -> list[ChatEvent]:
    """The chat events in one SSE event. Raises on an error sent inside the stream."""
    data = sse.data.strip()
    if sse.event == "error":
        raise stream_error(error_details(data))
    if not data:
        return []
    chunk = loads(data)
    if chunk is None:
        raise InferenceStreamError(f"could not read a stream event: {clip(data)!r}")
    return decode_chunk(chunk)


def decode_chunk(chunk: Mapping[str, Any]) -> list[ChatEvent]:
    if chunk.get("error"):
        raise stream_error(chunk)
    choice = first_choice(chunk)
    delta = choice.get("delta")
    events = _delta_events(delta) if isinstance(delta, dict) else []
    reason = choice.get("finish_reason")
    if isinstance(reason, str) and reason:
        events.append(Finish(reason))
    usage = Usage.parse(chunk.get("usage"))
    return [*events, usage] if usage else events


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
    function = as_dict(call.get("function"))
    index, name, arguments = call.get("index"), function.get("name"), function.get("arguments")
    return ToolCallDelta(
        index=index if isinstance(index, int) else position,
        id=call.get("id") if isinstance(call.get("id"), str) else None,
        name=name if isinstance(name, str) else None,
        arguments=arguments if isinstance(arguments, str) else "",
    )


def _is_finish(event: ChatEvent) -> bool:
    return isinstance(event, Finish)
