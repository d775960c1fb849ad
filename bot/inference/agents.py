"""The Heroku Agents API (``POST /v1/agents/heroku``), streamed as typed events.

Heroku runs the tools itself and streams one whole message per step: events named
``message`` whose data is a ``chat.completion`` (the assistant, maybe calling tools) or a
``tool.completion`` (a tool's result), then an event ``done`` with data ``[DONE]``.

Error events are not documented. A run goes on on Heroku whatever we do, so anything the
stream says is shown rather than raised: an ``error`` event or a ``tool.error`` /
``agent.error`` object becomes ``AgentError``, anything unknown (including data that is not
JSON) becomes ``AgentUnknown``. Only transport failures, HTTP statuses and timeouts raise,
exactly as for chat (the code is shared in ``sse`` and ``translate``).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncGenerator, Mapping
from typing import Any

import httpx
from httpx_sse import ServerSentEvent

from bot.errors import InferenceUnavailable
from bot.inference.chat import DONE, first_choice, parse_usage
from bot.inference.events import (
    AgentError,
    AgentEvent,
    AgentMessage,
    AgentToolCall,
    AgentToolResult,
    AgentUnknown,
)
from bot.inference.sse import Connection
from bot.inference.translate import describe_error

AGENTS_PATH = "/v1/agents/heroku"
# Heroku runs one tool call for up to 120 s (ttl_seconds) without sending anything.
DEFAULT_IDLE_TIMEOUT = 180.0
DEFAULT_DEADLINE = 900.0


class AgentsClient:
    """Start agent runs and watch them. The ``httpx.AsyncClient`` is the caller's."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        base_url: str,
        api_key: str,
        model: str,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        deadline: float = DEFAULT_DEADLINE,
    ) -> None:
        self.model = model
        self._connection = Connection(
            http, base_url=base_url, api_key=api_key, idle_timeout=idle_timeout, deadline=deadline
        )

    def __repr__(self) -> str:
        return f"AgentsClient({self._connection!r}, model={self.model!r})"

    async def stream_agent(self, body: Mapping[str, Any]) -> AsyncGenerator[AgentEvent, None]:
        """Send ``body`` (``messages``, ``tools``, …) as is and yield the run's events.

        ``model`` is filled in only when ``body`` has none. Closing this generator closes the
        connection, the only way to stop watching; whether Heroku stops the run is undocumented.
        """
        request = {"model": self.model, **body}
        finished = False
        async with contextlib.aclosing(self._connection.events(AGENTS_PATH, request)) as events:
            async for sse in events:
                decoded = decode_agent_event(sse)
                if decoded is None:
                    return
                for event in decoded:
                    finished = finished or _is_final(event)
                    yield event
        if not finished:
            raise InferenceUnavailable("agent stream ended early")


def decode_agent_event(sse: ServerSentEvent) -> list[AgentEvent] | None:
    """The agent events in one SSE event; None when the run is done."""
    data = sse.data.strip()
    if sse.event == "done" or data == DONE:
        return None
    if sse.event == "error":
        return [AgentError(_error_words(_loads(data) or data or "no details"))]
    if sse.event not in ("message", ""):
        return [AgentUnknown(f"event:{sse.event} data:{sse.data}")]
    if not data:
        return []
    payload = _loads(data)
    return [decode_object(payload, data) if payload is not None else AgentUnknown(data)]


def decode_object(payload: Mapping[str, Any], raw: str) -> AgentEvent:
    kind = payload.get("object")
    if kind == "chat.completion":
        return _message(payload)
    if kind == "tool.completion":
        return _tool_result(payload)
    if kind in ("tool.error", "agent.error") or payload.get("error"):
        return AgentError(_error_words(payload))
    return AgentUnknown(raw)


def _message(payload: Mapping[str, Any]) -> AgentMessage:
    choice = first_choice(payload)
    message = _dict(choice.get("message"))
    calls = message.get("tool_calls")
    return AgentMessage(
        content=_str(message.get("content")),
        tool_calls=tuple(_tool_call(c) for c in (calls if isinstance(calls, list) else [])),
        finish_reason=_str(choice.get("finish_reason")),
        usage=parse_usage(payload.get("usage")),
    )


def _tool_call(call: object) -> AgentToolCall:
    call = _dict(call)
    function = _dict(call.get("function"))
    arguments = function.get("arguments")
    if not isinstance(arguments, str):
        # Heroku sends a JSON string; an object would still be the same arguments.
        arguments = "" if arguments is None else json.dumps(arguments)
    return AgentToolCall(
        id=_str(call.get("id")), name=_str(function.get("name")), arguments=arguments
    )


def _tool_result(payload: Mapping[str, Any]) -> AgentToolResult:
    message = _dict(first_choice(payload).get("message"))

    def field(name: str) -> str:
        return _str(message.get(name)) or _str(payload.get(name))

    return AgentToolResult(
        tool_call_id=field("tool_call_id"), name=field("name"), content=field("content")
    )


def _error_words(payload: object) -> str:
    content = _dict(first_choice(payload).get("message")).get("content")
    return content if isinstance(content, str) and content else describe_error(payload)


def _is_final(event: AgentEvent) -> bool:
    return isinstance(event, AgentMessage) and event.finish_reason not in ("", "tool_calls")


def _loads(data: str) -> dict[str, Any] | None:
    try:
        value = json.loads(data)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""
