"""The Heroku Agents API (``POST /v1/agents/heroku``), streamed as typed events.

Heroku runs the tools itself and streams one whole message per step: events named
``message`` whose data is a ``chat.completion`` (the assistant, maybe calling tools) or a
``tool.completion`` (a tool's result), then an event ``done`` with data ``[DONE]``.

Error events are not documented. A run goes on on Heroku whatever we do, so anything the
stream says is shown rather than raised: an ``error`` event or a ``tool.error`` /
``agent.error`` object becomes ``AgentError``, anything unknown (including data that is not
JSON) becomes ``AgentUnknown``. Only transport failures, HTTP statuses, timeouts and a
stream that ends mid-run raise, exactly as for chat (the loop is shared in ``client``).
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Mapping
from typing import Any

from httpx_sse import ServerSentEvent

from bot.inference import events
from bot.inference.client import Client
from bot.inference.payload import as_dict, as_str, error_details, first_choice, loads
from bot.inference.translate import describe_error

AGENTS_PATH = "/v1/agents/heroku"


class AgentsClient(Client):
    """Start agent runs and watch them. The ``httpx.AsyncClient`` is the caller's."""

    def stream_agent(self, body: Mapping[str, Any]) -> AsyncGenerator[events.AgentEvent, None]:
        """Send ``body`` (``messages``, ``tools``, …) as is and yield the run's events.

        ``model`` is filled in only when ``body`` has none. Closing this generator closes the
        connection, the only way to stop watching; whether Heroku stops the run is undocumented.
        """
        request = {"model": self.model, **body}
        return self._stream(AGENTS_PATH, request, decode_agent_event, final=_is_final)


def decode_agent_event(sse: ServerSentEvent) -> list[events.AgentEvent]:
    """The agent events in one SSE event; the end of the run is the client's to see."""
    data = sse.data.strip()
    if sse.event == "error":
        return [events.AgentError(_error_words(error_details(data)))]
    if sse.event not in ("message", ""):
        return [events.AgentUnknown(f"event:{sse.event} data:{sse.data}")]
    if not data:
        return []
    payload = loads(data)
    return [decode_object(payload, data) if payload is not None else events.AgentUnknown(data)]


def decode_object(payload: Mapping[str, Any], raw: str) -> events.AgentEvent:
    kind = payload.get("object")
    if kind == "chat.completion":
        return _message(payload)
    if kind == "tool.completion":
        return _tool_result(payload)
    if kind in ("tool.error", "agent.error") or payload.get("error"):
        return events.AgentError(_error_words(payload))
    return events.AgentUnknown(raw)


def _message(payload: Mapping[str, Any]) -> events.AgentMessage:
    choice = first_choice(payload)
    message = as_dict(choice.get("message"))
    calls = message.get("tool_calls")
    return events.AgentMessage(
        content=as_str(message.get("content")),
        tool_calls=tuple(_tool_call(c) for c in (calls if isinstance(calls, list) else [])),
        finish_reason=as_str(choice.get("finish_reason")),
        usage=events.Usage.parse(payload.get("usage")),
    )


def _tool_call(call: object) -> events.AgentToolCall:
    call = as_dict(call)
    function = as_dict(call.get("function"))
    arguments = function.get("arguments")
    if not isinstance(arguments, str):
        # Heroku sends a JSON string; an object would still be the same arguments.
        arguments = "" if arguments is None else json.dumps(arguments)
    return events.AgentToolCall(
        id=as_str(call.get("id")), name=as_str(function.get("name")), arguments=arguments
    )


def _tool_result(payload: Mapping[str, Any]) -> events.AgentToolResult:
    message = as_dict(first_choice(payload).get("message"))

    def field(name: str) -> str:
        return as_str(message.get(name)) or as_str(payload.get(name))

    return events.AgentToolResult(
        tool_call_id=field("tool_call_id"), name=field("name"), content=field("content")
    )


def _error_words(payload: object) -> str:
    content = as_dict(first_choice(payload).get("message")).get("content")
    return content if isinstance(content, str) and content else describe_error(payload)


def _is_final(event: events.AgentEvent) -> bool:
    return isinstance(event, events.AgentMessage) and event.finish_reason not in ("", "tool_calls")
