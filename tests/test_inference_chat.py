"""Byte-level tests of the chat stream, through httpx's own transport seam (MockTransport)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest

from bot.errors import (
    InferenceAuthError,
    InferenceBadRequest,
    InferenceRateLimited,
    InferenceStreamError,
    InferenceTimeout,
    InferenceUnavailable,
)
from bot.inference import Finish, InferenceClient, TextDelta, ToolCallDelta, Usage
from bot.inference.translate import parse_duration
from tests.transport import KEY, Handler, Parts, Recorder, sse_response


def make_client(
    response: httpx.Response | Handler,
    *,
    base_url: str = "https://inference.test",
    idle_timeout: float = 5.0,
    deadline: float = 10.0,
) -> tuple[InferenceClient, Recorder]:
    recorder = Recorder(response)
    http = httpx.AsyncClient(transport=httpx.MockTransport(recorder))
    client = InferenceClient(
        http,
        base_url=base_url,
        api_key=KEY,
        model="claude-4-5-sonnet",
        idle_timeout=idle_timeout,
        deadline=deadline,
    )
    return client, recorder


def data(payload: object) -> bytes:
    # ensure_ascii=False: put real multi-byte UTF-8 on the wire, not \u escapes.
    text = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
    return f"data: {text}\n\n".encode()


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None) -> dict[str, Any]:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return {"id": "c1", "object": "chat.completion.chunk", "model": "m", "choices": choices}


USAGE = {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}
HELLO = b"".join(
    [
        data(chunk({"role": "assistant", "content": ""})),
        data(chunk({"content": "Hé"})),
        data(chunk({"content": "llo 🚀"})),
        data(chunk({}, finish="stop")),
        data({**chunk(), "usage": USAGE}),
        data("[DONE]"),
    ]
)
HELLO_EVENTS = [TextDelta("Hé"), TextDelta("llo 🚀"), Finish("stop"), Usage(3, 5, 8)]
QUESTION = [{"role": "user", "content": "hi"}]


async def collect(client: InferenceClient, **kwargs: Any) -> list[object]:
    return [event async for event in client.stream_chat(QUESTION, **kwargs)]


async def collect_into(seen: list[object], client: InferenceClient) -> None:
    """Like ``collect``, but what came before an error stays visible to the test."""
    async for event in client.stream_chat(QUESTION):
        seen.append(event)


async def test_text_finish_and_usage() -> None:
    client, _ = make_client(sse_response(Parts(HELLO)))
    assert await collect(client) == HELLO_EVENTS


@pytest.mark.parametrize("base_url", ["https://inference.test", "https://inference.test/"])
async def test_request_with_tools(base_url: str) -> None:
    client, recorder = make_client(sse_response(Parts(HELLO)), base_url=base_url)
    tools = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
    await collect(client, tools=tools, max_tokens=100, temperature=0.2)
    request = recorder.requests[0]
    assert str(request.url) == "https://inference.test/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["accept"] == "text/event-stream"
    assert recorder.body == {
        "model": "claude-4-5-sonnet",
        "messages": QUESTION,
        "stream": True,
        "stream_options": {"include_usage": True},
        "tools": tools,
        "tool_choice": "auto",
        "max_tokens": 100,
        "temperature": 0.2,
    }


async def test_request_without_tools_has_no_tool_choice() -> None:
    client, recorder = make_client(sse_response(Parts(HELLO)))
    await collect(client)
    assert "tool_choice" not in recorder.body
    assert "tools" not in recorder.body
    assert "max_tokens" not in recorder.body


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"])
@pytest.mark.parametrize("prefix", [b"data: ", b"data:"])
async def test_line_endings_and_data_prefix(newline: bytes, prefix: bytes) -> None:
    raw = HELLO.replace(b"data: ", prefix).replace(b"\n", newline)
    client, _ = make_client(sse_response(Parts(raw)))
    assert await collect(client) == HELLO_EVENTS


async def test_every_split_point_gives_the_same_events() -> None:
    # Covers a data: line cut anywhere and UTF-8 characters (é, 🚀) cut between bytes.
    assert "é".encode() in HELLO
    assert "🚀".encode() in HELLO
    for cut in range(1, len(HELLO)):
        client, _ = make_client(sse_response(Parts(HELLO[:cut], HELLO[cut:])))
        assert await collect(client) == HELLO_EVENTS, f"cut at byte {cut}"


async def test_one_byte_at_a_time_with_a_split_emoji() -> None:
    rocket = "🚀".encode()
    raw = data(chunk({"content": "🚀"}, finish="stop"))
    assert rocket in raw
    parts = [raw[i : i + 1] for i in range(len(raw))]
    client, _ = make_client(sse_response(Parts(*parts)))
    assert await collect(client) == [TextDelta("🚀"), Finish("stop")]


async def test_comments_empty_data_and_unknown_fields_are_skipped() -> None:
    raw = b": keep-alive\n\n" + b"data:\n\n" + b"id: 7\nretry: 10\n\n" + HELLO
    client, _ = make_client(sse_response(Parts(raw)))
    assert await collect(client) == HELLO_EVENTS


async def test_reasoning_is_ignored() -> None:
    raw = data(chunk({"reasoning": "thinking…"})) + data(chunk({"content": "ok"}, finish="stop"))
    client, _ = make_client(sse_response(Parts(raw)))
    assert await collect(client) == [TextDelta("ok"), Finish("stop")]


async def test_tool_call_deltas() -> None:
    head = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "dyno_run"}}
    tail = {"index": 0, "function": {"arguments": '{"cmd": "ls"}'}}
    raw = data(chunk({"tool_calls": [head]})) + data(chunk({"tool_calls": [tail]}))
    raw += data(chunk({}, finish="tool_calls")) + data("[DONE]")
    client, _ = make_client(sse_response(Parts(raw)))
    assert await collect(client) == [
        ToolCallDelta(index=0, id="call_1", name="dyno_run", arguments=""),
        ToolCallDelta(index=0, id=None, name=None, arguments='{"cmd": "ls"}'),
        Finish("tool_calls"),
    ]


async def test_done_stops_reading_and_closes() -> None:
    stream = Parts(data(chunk({"content": "a"})) + data("[DONE]") + b"data: {broken\n\n")
    client, _ = make_client(sse_response(stream))
    assert await collect(client) == [TextDelta("a")]
    assert stream.closed


async def test_an_event_named_done_ends_it_as_in_the_agents_api() -> None:
    raw = data(chunk({"content": "a"}, finish="stop")) + b"event: done\ndata: {}\n\n"
    stream = Parts(raw + data(chunk({"content": "late"})) + b"data: {broken\n\n")
    client, _ = make_client(sse_response(stream))
    assert await collect(client) == [TextDelta("a"), Finish("stop")]
    assert stream.closed


async def test_usage_without_a_total_is_added_up_and_empty_usage_is_none() -> None:
    raw = data({**chunk({"content": "a"}, finish="stop"), "usage": {}})
    raw += data({**chunk(), "usage": {"prompt_tokens": 3, "completion_tokens": 5}})
    client, _ = make_client(sse_response(Parts(raw)))
    assert await collect(client) == [TextDelta("a"), Finish("stop"), Usage(3, 5, 8)]


async def test_finish_without_done_ends_normally() -> None:
    client, _ = make_client(sse_response(Parts(data(chunk({"content": "a"}, finish="length")))))
    assert await collect(client) == [TextDelta("a"), Finish("length")]


async def test_close_before_finish_is_unavailable() -> None:
    stream = Parts(data(chunk({"content": "a"})))
    client, _ = make_client(sse_response(stream))
    with pytest.raises(InferenceUnavailable, match="ended early"):
        await collect(client)
    assert stream.closed


@pytest.mark.parametrize(
    ("raw", "error", "words"),
    [
        (data({"error": {"message": "model overloaded", "type": "server_error"}}),
         InferenceStreamError, "model overloaded"),
        (b'event: error\ndata: {"message": "boom"}\n\n', InferenceStreamError, "boom"),
        (b"event:error\ndata:plain words\n\n", InferenceStreamError, "plain words"),
        (data({"error": {"message": "slow down", "type": "rate_limit_error"}}),
         InferenceRateLimited, "slow down"),
    ],
)  # fmt: skip
async def test_error_inside_the_stream(raw: bytes, error: type[Exception], words: str) -> None:
    stream = Parts(data(chunk({"content": "a"})) + raw + HELLO)
    client, _ = make_client(sse_response(stream))
    seen: list[object] = []
    with pytest.raises(error, match=words):
        await collect_into(seen, client)
    assert seen == [TextDelta("a")]
    assert stream.closed


async def test_invalid_json_is_a_stream_error_quoting_what_came() -> None:
    junk = "{not json " + "x" * 1000
    client, _ = make_client(sse_response(Parts(data(junk))))
    with pytest.raises(InferenceStreamError) as caught:
        await collect(client)
    assert "{not json xxx" in str(caught.value)
    assert len(str(caught.value)) < 300


async def test_not_an_event_stream() -> None:
    client, _ = make_client(sse_response(Parts(b'{"choices": []}'), "application/json"))
    with pytest.raises(InferenceStreamError, match="application/json"):
        await collect(client)


async def test_sse_is_utf8_whatever_the_charset_and_bom_is_dropped() -> None:
    raw = "\ufeff".encode() + data(chunk({"content": "é"}, finish="stop"))
    response = sse_response(Parts(raw), "text/event-stream; charset=iso-8859-1")
    client, _ = make_client(response)
    assert await collect(client) == [TextDelta("é"), Finish("stop")]


@pytest.mark.parametrize(
    ("status", "body", "error", "words"),
    [
        (401, b'{"error":{"code":401,"message":"Invalid API key","type":"authentication_error"}}',
         InferenceAuthError, "Invalid API key"),
        (403, b'{"error":{"code":403,"message":"You do not have access to that model"}}',
         InferenceAuthError, "You do not have access to that model"),
        (400, b'{"error": "bad_request", "message": "max_tokens is too large"}',
         InferenceBadRequest, "bad_request: max_tokens is too large"),
        (404, b"", InferenceBadRequest, "Not Found"),
        (500, b'{"error":{"message":"internal","type":"server_error"}}',
         InferenceUnavailable, "internal"),
        (503, b"<html>upstream unavailable</html>", InferenceUnavailable, "upstream unavailable"),
        (429, b'{"error":{"message":"Rate limit exceeded"}}', InferenceRateLimited, "exceeded"),
    ],
)  # fmt: skip
async def test_status_errors(status: int, body: bytes, error: type[Exception], words: str) -> None:
    stream = Parts(body[:10], 0.01, body[10:])  # the body is streamed: it must be read
    client, _ = make_client(httpx.Response(status, stream=stream))
    with pytest.raises(error, match=words) as caught:
        await collect(client)
    assert getattr(caught.value, "status", None) == status
    assert stream.closed


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after": "7"}, 7.0),
        ({"retry-after": "7", "x-ratelimit-reset-requests": "51s"}, 7.0),
        ({"x-ratelimit-reset-requests": "51s"}, 51.0),
        ({"x-ratelimit-reset-requests": "1m30s"}, 90.0),
        ({"x-ratelimit-reset-tokens": "500ms"}, 0.5),
        ({"x-ratelimit-reset-requests": "2s", "x-ratelimit-reset-tokens": "51s"}, 51.0),
        ({"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "2s",
          "x-ratelimit-remaining-tokens": "900", "x-ratelimit-reset-tokens": "51s"}, 2.0),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, None),
        ({}, None),
    ],
)  # fmt: skip
async def test_rate_limit_retry_after(headers: dict[str, str], seconds: float | None) -> None:
    client, _ = make_client(httpx.Response(429, headers=headers, content=b"{}"))
    with pytest.raises(InferenceRateLimited) as caught:
        await collect(client)
    assert caught.value.retry_after == seconds


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("51s", 51.0), ("1m30s", 90.0), ("500ms", 0.5), ("1h", 3600.0), ("12", 12.0),
     ("2.5s", 2.5), (" 3s ", 3.0), ("", None), ("soon", None), ("-1", None), ("5x", None)],
)  # fmt: skip
def test_parse_duration(text: str, seconds: float | None) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("exc", "error"),
    [
        (httpx.ConnectError("refused"), InferenceUnavailable),
        (httpx.RemoteProtocolError("bad"), InferenceUnavailable),
        (httpx.ConnectTimeout("slow"), InferenceTimeout),
    ],
)
async def test_transport_errors_are_translated(exc: Exception, error: type[Exception]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    client, _ = make_client(handler)
    with pytest.raises(error) as caught:
        await collect(client)
    assert not isinstance(caught.value, httpx.HTTPError)
    assert KEY not in str(caught.value)


async def test_connection_dropped_mid_stream() -> None:
    stream = Parts(data(chunk({"content": "a"})), httpx.ReadError("connection reset"))
    client, _ = make_client(sse_response(stream))
    seen: list[object] = []
    with pytest.raises(InferenceUnavailable, match="ReadError"):
        await collect_into(seen, client)
    assert seen == [TextDelta("a")]
    assert stream.closed


async def assert_times_out(client: InferenceClient, match: str, within: float) -> None:
    started = time.monotonic()
    with pytest.raises(InferenceTimeout, match=match):
        await collect(client)
    assert time.monotonic() - started < within


async def test_stall_after_some_events() -> None:
    stream = Parts(data(chunk({"content": "a"})), 30.0, HELLO)
    client, _ = make_client(sse_response(stream), idle_timeout=0.2)
    await assert_times_out(client, "no event .* for 0.2s", within=1.0)
    assert stream.closed


async def test_stall_with_no_bytes_at_all() -> None:
    client, _ = make_client(sse_response(Parts(30.0, HELLO)), idle_timeout=0.2)
    await assert_times_out(client, "no event", within=1.0)


async def test_stall_before_the_response_headers() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(30)
        return sse_response(Parts(HELLO))

    client, _ = make_client(handler, idle_timeout=0.2)
    await assert_times_out(client, "no event", within=1.0)


async def test_keep_alive_comments_do_not_reset_the_idle_timer() -> None:
    pings = [part for _ in range(60) for part in (b": keep-alive\n\n", 0.05)]
    client, _ = make_client(sse_response(Parts(*pings, HELLO)), idle_timeout=0.3)
    await assert_times_out(client, "no event", within=1.5)


async def test_deadline_for_the_whole_stream() -> None:
    trickle = [part for _ in range(100) for part in (data(chunk({"content": "a"})), 0.05)]
    client, _ = make_client(sse_response(Parts(*trickle)), idle_timeout=1.0, deadline=0.4)
    await assert_times_out(client, "deadline", within=1.5)


async def test_a_slow_consumer_is_not_an_idle_stream() -> None:
    client, _ = make_client(sse_response(Parts(HELLO)), idle_timeout=0.1)
    seen = []
    async for event in client.stream_chat(QUESTION):
        await asyncio.sleep(0.15)  # longer than the idle timeout, spent on our side
        seen.append(event)
    assert seen == HELLO_EVENTS


async def test_early_aclose_closes_the_response() -> None:
    stream = Parts(data(chunk({"content": "a"})), 30.0, HELLO)
    client, _ = make_client(sse_response(stream))
    events = client.stream_chat(QUESTION)
    assert await anext(events) == TextDelta("a")
    assert not stream.closed
    await events.aclose()
    assert stream.closed


async def test_complete() -> None:
    reply = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "pong"}}]}
    client, recorder = make_client(httpx.Response(200, json=reply))
    assert await client.complete(QUESTION) == "pong"
    assert recorder.body == {"model": "claude-4-5-sonnet", "messages": QUESTION, "max_tokens": 1}
    assert recorder.requests[0].headers["authorization"] == f"Bearer {KEY}"


async def test_complete_errors() -> None:
    client, _ = make_client(httpx.Response(401, json={"error": {"message": "bad key"}}))
    with pytest.raises(InferenceAuthError, match="bad key"):
        await client.complete(QUESTION)
    client, _ = make_client(httpx.Response(200, text="<html>"))
    with pytest.raises(InferenceStreamError, match="html"):
        await client.complete(QUESTION)


def test_repr_hides_the_key() -> None:
    client, _ = make_client(httpx.Response(200))
    assert KEY not in repr(client)
    assert "inference.test" in repr(client)
