"""Byte-level tests of the Agents API stream, in Heroku's spacing (``event:message``)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from bot.errors import InferenceAuthError, InferenceTimeout, InferenceUnavailable
from bot.inference import (
    AgentError,
    AgentMessage,
    AgentsClient,
    AgentToolCall,
    AgentToolResult,
    AgentUnknown,
    Usage,
)
from tests.transport import KEY, Parts, Recorder, sse_response

BODY: dict[str, Any] = {
    "model": "claude-4-5-sonnet",
    "messages": [{"role": "user", "content": "how many dynos?"}],
    "tools": [{"type": "heroku_tool", "name": "dyno_run_command", "runtime_params": {}}],
}
USAGE = {"prompt_tokens": 10, "completion_tokens": 4, "total_tokens": 14}


def event(name: str, payload: object) -> bytes:
    text = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
    return f"event:{name}\ndata:{text}\n\n".encode()


def assistant(content: str | None, finish: str, calls: list[Any] | None = None) -> bytes:
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
    if calls:
        message["tool_calls"] = calls
    return event(
        "message",
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "model": "claude-4-5-sonnet",
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": USAGE,
        },
    )


CALL = {"id": "tooluse_1", "type": "function",
        "function": {"name": "dyno_run_command", "arguments": '{"cmd": "ps"}'}}  # fmt: skip
TOOL_RESULT = event(
    "message",
    {
        "id": "toolcmpl-1",
        "object": "tool.completion",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "tool",
                    "content": "Tool 'dyno_run_command' returned result: web.1 up",
                    "tool_call_id": "tooluse_1",
                    "name": "dyno_run_command",
                },
                "finish_reason": "",
            }
        ],
        "usage": {},
    },
)
DONE = event("done", "[DONE]")
RUN = assistant("", "tool_calls", [CALL]) + TOOL_RESULT + assistant("One web dyno. ✅", "stop")
RUN_EVENTS = [
    AgentMessage("", (AgentToolCall("tooluse_1", "dyno_run_command", '{"cmd": "ps"}'),),
                 "tool_calls", Usage(10, 4, 14)),
    AgentToolResult("tooluse_1", "dyno_run_command",
                    "Tool 'dyno_run_command' returned result: web.1 up"),
    AgentMessage("One web dyno. ✅", (), "stop", Usage(10, 4, 14)),
]  # fmt: skip


def make_agents(
    response: httpx.Response, *, idle_timeout: float = 5.0
) -> tuple[AgentsClient, Recorder]:
    recorder = Recorder(response)
    http = httpx.AsyncClient(transport=httpx.MockTransport(recorder))
    client = AgentsClient(
        http,
        base_url="https://inference.test/",
        api_key=KEY,
        model="fallback-model",
        idle_timeout=idle_timeout,
        deadline=10.0,
    )
    return client, recorder


async def collect(client: AgentsClient, body: dict[str, Any] = BODY) -> list[object]:
    return [e async for e in client.stream_agent(body)]


async def test_a_run_in_herokus_shape() -> None:
    stream = Parts(RUN + DONE + b"event:message\ndata:{broken\n\n")
    client, recorder = make_agents(sse_response(stream))
    assert await collect(client) == RUN_EVENTS
    assert stream.closed
    request = recorder.requests[0]
    assert str(request.url) == "https://inference.test/v1/agents/heroku"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["accept"] == "text/event-stream"
    assert json.loads(request.content) == BODY


async def test_every_split_point_gives_the_same_events() -> None:
    raw = RUN + DONE
    for cut in range(1, len(raw), 7):
        client, _ = make_agents(sse_response(Parts(raw[:cut], raw[cut:])))
        assert await collect(client) == RUN_EVENTS, f"cut at byte {cut}"


async def test_model_is_filled_in_only_when_missing() -> None:
    client, recorder = make_agents(sse_response(Parts(RUN + DONE)))
    await collect(client, {"messages": [], "tools": []})
    assert json.loads(recorder.requests[0].content)["model"] == "fallback-model"


async def test_done_data_alone_also_ends() -> None:
    stream = Parts(RUN + b"data:[DONE]\n\n" + assistant("late", "stop"))
    client, _ = make_agents(sse_response(stream))
    assert await collect(client) == RUN_EVENTS


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (event("error", {"message": "tool quota exceeded"}), AgentError("tool quota exceeded")),
        (event("error", "plain words"), AgentError("plain words")),
        (event("message", {"object": "tool.error", "error": {"message": "dyno crashed"}}),
         AgentError("dyno crashed")),
        (event("message", {"object": "agent.error", "message": "gave up"}), AgentError("gave up")),
        (event("message", {"object": "tool.error", "choices": [
            {"message": {"role": "tool", "content": "cmd not allowed"}}]}),
         AgentError("cmd not allowed")),
        (event("progress", "50%"), AgentUnknown("event:progress data:50%")),
        (event("message", {"object": "run.step"}), AgentUnknown('{"object": "run.step"}')),
        (event("message", "{not json"), AgentUnknown("{not json")),
    ],
)  # fmt: skip
async def test_errors_and_unknowns_are_events(raw: bytes, expected: object) -> None:
    client, _ = make_agents(sse_response(Parts(raw + RUN + DONE)))
    assert await collect(client) == [expected, *RUN_EVENTS]


async def test_keep_alives_and_empty_data_are_skipped() -> None:
    raw = b": ping\n\n" + b"event:message\ndata:\n\n" + RUN + DONE
    client, _ = make_agents(sse_response(Parts(raw)))
    assert await collect(client) == RUN_EVENTS


async def test_tool_result_with_fields_at_the_top_level() -> None:
    payload = {"object": "tool.completion", "tool_call_id": "t9", "name": "pg", "content": "ok",
               "choices": [], "usage": {}, "finish_reason": ""}  # fmt: skip
    client, _ = make_agents(sse_response(Parts(event("message", payload) + RUN + DONE)))
    assert await collect(client) == [AgentToolResult("t9", "pg", "ok"), *RUN_EVENTS]


async def test_arguments_sent_as_an_object_are_kept_as_json() -> None:
    call = {"id": "c", "function": {"name": "f", "arguments": {"cmd": "ps"}}}
    client, _ = make_agents(sse_response(Parts(assistant(None, "stop", [call]) + DONE)))
    (message,) = await collect(client)
    assert isinstance(message, AgentMessage)
    assert message.content == ""
    assert message.tool_calls == (AgentToolCall("c", "f", '{"cmd": "ps"}'),)


async def test_end_after_the_final_message_without_done_is_normal() -> None:
    client, _ = make_agents(sse_response(Parts(RUN)))
    assert await collect(client) == RUN_EVENTS


async def test_end_mid_run_is_unavailable() -> None:
    client, _ = make_agents(sse_response(Parts(assistant("", "tool_calls", [CALL]))))
    with pytest.raises(InferenceUnavailable, match="ended early"):
        await collect(client)


async def test_status_and_timeouts_are_shared_with_chat() -> None:
    body = b'{"error":{"message":"You do not have access to that model"}}'
    client, _ = make_agents(httpx.Response(403, content=body))
    with pytest.raises(InferenceAuthError, match="do not have access"):
        await collect(client)
    client, _ = make_agents(sse_response(Parts(TOOL_RESULT, 30.0)), idle_timeout=0.2)
    with pytest.raises(InferenceTimeout, match="no event"):
        await collect(client)


async def test_early_aclose_closes_the_response() -> None:
    stream = Parts(RUN, 30.0, DONE)
    client, _ = make_agents(sse_response(stream))
    events = client.stream_agent(BODY)
    assert isinstance(await anext(events), AgentMessage)
    await events.aclose()
    assert stream.closed


def test_repr_hides_the_key() -> None:
    client, _ = make_agents(httpx.Response(200))
    assert KEY not in repr(client)
