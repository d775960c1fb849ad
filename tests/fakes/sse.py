"""Builders for the bytes Heroku Inference streams: OpenAI-style chunks and Agents events."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

Json = dict[str, Any]
DEFAULT_MODEL = "claude-4-5-sonnet"
FINGERPRINT = "heroku-inf-fake01"


def sse_data(payload: Json | str) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload)
    return f"data: {data}\n\n".encode()


def sse_event(name: str, data: str) -> bytes:
    # Heroku's Agents API writes no space after the colons.
    return f"event:{name}\ndata:{data}\n\n".encode()


def split_text(text: str, pieces: int | list[str] | None = None) -> list[str]:
    """Split ``text`` into ``pieces`` near-equal parts (default: about 4 characters each),
    or into exactly the pieces given."""
    if isinstance(pieces, list):
        assert "".join(pieces) == text
        return pieces
    if not text:
        return []
    count = max(1, min(len(text), pieces if pieces else -(-len(text) // 4)))
    size, extra = divmod(len(text), count)
    parts, start = [], 0
    for index in range(count):
        end = start + size + (1 if index < extra else 0)
        parts.append(text[start:end])
        start = end
    return parts


def chat_chunk(
    delta: Json | None,
    *,
    model: str = DEFAULT_MODEL,
    finish: str | None = None,
    created: int | None = None,
) -> Json:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": created or int(time.time()),
        "model": model,
        "choices": choices,
    }


def usage(prompt: int = 12, completion: int = 34) -> Json:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def text_stream(
    text: str,
    *,
    model: str = DEFAULT_MODEL,
    pieces: int | list[str] | None = None,
    with_usage: bool = True,
    finish: str = "stop",
) -> list[bytes]:
    """A whole chat-completions stream that says ``text``, one SSE event per list item."""
    parts = [chat_chunk({"role": "assistant", "content": ""}, model=model)]
    parts += [chat_chunk({"content": piece}, model=model) for piece in split_text(text, pieces)]
    return [sse_data(chunk) for chunk in parts] + _ending(model, finish, with_usage)


def tool_call_stream(
    calls: Sequence[tuple[str, str]],
    *,
    text: str = "",
    model: str = DEFAULT_MODEL,
    arg_pieces: int = 3,
    with_usage: bool = True,
) -> list[bytes]:
    """A stream that optionally says ``text`` and then calls tools ``(name, arguments_json)``."""
    chunks = [chat_chunk({"role": "assistant", "content": ""}, model=model)]
    chunks += [chat_chunk({"content": piece}, model=model) for piece in split_text(text)]
    for index, (name, arguments) in enumerate(calls):
        head = {
            "index": index,
            "id": f"call_{index + 1}",
            "type": "function",
            "function": {"name": name, "arguments": ""},
        }
        chunks.append(chat_chunk({"tool_calls": [head]}, model=model))
        chunks += [
            chat_chunk(
                {"tool_calls": [{"index": index, "function": {"arguments": p}}]}, model=model
            )
            for p in split_text(arguments, arg_pieces)
        ]
    return [sse_data(chunk) for chunk in chunks] + _ending(model, "tool_calls", with_usage)


def _ending(model: str, finish: str, with_usage: bool) -> list[bytes]:
    parts = [sse_data(chat_chunk({}, model=model, finish=finish))]
    if with_usage:
        parts.append(sse_data({**chat_chunk(None, model=model), "usage": usage()}))
    return [*parts, sse_data("[DONE]")]


def completion(text: str, *, model: str = DEFAULT_MODEL, finish: str = "stop") -> Json:
    """A non-streaming chat.completion object."""
    message = {"role": "assistant", "content": text, "refusal": None}
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": usage(),
    }


def agent_completion(
    content: str | None,
    tool_calls: list[Json] | None = None,
    finish_reason: str = "stop",
    *,
    model: str = DEFAULT_MODEL,
) -> str:
    """The JSON data of an Agents API ``message`` event in which the assistant speaks."""
    message: Json = {"role": "assistant", "content": content, "refusal": None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    body = {
        **completion("", model=model),
        "system_fingerprint": FINGERPRINT,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
    }
    return json.dumps(body)


def agent_tool_call(call_id: str, name: str, arguments: str = "{}") -> Json:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def agent_tool_result(tool_call_id: str, name: str, result: str) -> str:
    """The JSON data of an Agents API ``message`` event carrying a tool's result."""
    message = {
        "role": "tool",
        "content": f"Tool '{name}' returned result: {result}",
        "refusal": None,
        "tool_call_id": tool_call_id,
        "name": name,
    }
    return json.dumps(
        {
            "id": f"toolcmpl-{tool_call_id}",
            "object": "tool.completion",
            "created": int(time.time()),
            "system_fingerprint": FINGERPRINT,
            "choices": [{"index": 0, "message": message, "finish_reason": ""}],
            "usage": {},
        }
    )
