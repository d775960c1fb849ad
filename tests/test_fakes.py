"""The fakes themselves behave like Slack and Heroku Inference."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx
import pytest
from httpx_sse import aconnect_sse
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes import FakeInference, FakeSlack
from tests.fakes.inference import AGENTS, agent_completion
from tests.fakes.sse import split_text

CHANNEL = "C0OPS"


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as fake:
        yield fake


@pytest.fixture
async def inference() -> AsyncIterator[FakeInference]:
    async with FakeInference() as fake:
        yield fake


def client(slack: FakeSlack, token: str = "xoxb-test") -> AsyncWebClient:
    return AsyncWebClient(base_url=slack.base_url, token=token)


async def stream_events(fake: FakeInference, body: dict[str, object]) -> list[str]:
    async with (
        httpx.AsyncClient(headers={"Authorization": "Bearer inf-test"}) as http,
        aconnect_sse(http, "POST", f"{fake.base_url}/v1/chat/completions", json=body) as source,
    ):
        return [event.data async for event in source.aiter_sse()]


async def test_post_update_and_body(slack: FakeSlack) -> None:
    web = client(slack)
    posted = await web.chat_postMessage(channel=CHANNEL, text="thinking…", thread_ts="1.1")
    blocks = [{"type": "markdown", "text": "**done**"}]
    await web.chat_update(channel=CHANNEL, ts=posted["ts"], text="done", blocks=blocks)
    [message] = slack.messages(CHANNEL, "1.1")
    assert (message.body, message.updates, slack.count("chat.update")) == ("**done**", 1, 1)
    assert slack.thread_bodies(CHANNEL, "1.1") == ["**done**"]
    with pytest.raises(SlackApiError) as failure:
        await web.chat_update(channel=CHANNEL, ts=posted["ts"], text="x" * 4001)
    assert failure.value.response["error"] == "msg_too_long"


async def test_wrong_token_and_unknown_method(slack: FakeSlack) -> None:
    with pytest.raises(SlackApiError) as failure:
        await client(slack, "xoxb-wrong").chat_postMessage(channel=CHANNEL, text="hi")
    assert failure.value.response["error"] == "invalid_auth"
    with pytest.raises(SlackApiError) as unknown:
        await client(slack).api_call("chat.nothing")
    assert unknown.value.response["error"] == "unknown_method"
    assert (await client(slack).auth_test())["user_id"] == "U0BOT"


async def test_stream_needs_recipient_outside_dms(slack: FakeSlack) -> None:
    web = client(slack)
    with pytest.raises(SlackApiError) as failure:
        await web.chat_startStream(channel=CHANNEL, thread_ts="1.1", markdown_text="a")
    assert failure.value.response["error"] == "invalid_arguments"
    started = await web.chat_startStream(channel="D0ALICE", thread_ts="1.1", markdown_text="a")
    await web.chat_appendStream(channel="D0ALICE", ts=started["ts"], markdown_text="b")
    await web.chat_stopStream(channel="D0ALICE", ts=started["ts"], markdown_text="c")
    [message] = slack.messages("D0ALICE", "1.1")
    assert (message.body, message.stream_stopped) == ("abc", True)


async def test_append_after_stop_or_expiry_is_refused(slack: FakeSlack) -> None:
    web = client(slack)
    first = await web.chat_startStream(
        channel=CHANNEL, thread_ts="1.1", recipient_user_id="U0A", recipient_team_id="T0TEAM"
    )
    await web.chat_stopStream(channel=CHANNEL, ts=first["ts"])
    slack.stream_ttl = 0.05
    second = await web.chat_startStream(
        channel=CHANNEL, thread_ts="1.1", recipient_user_id="U0A", recipient_team_id="T0TEAM"
    )
    await asyncio.sleep(0.06)
    for ts in (first["ts"], second["ts"]):
        with pytest.raises(SlackApiError) as failure:
            await web.chat_appendStream(channel=CHANNEL, ts=ts, markdown_text="late")
        assert failure.value.response["error"] == "message_not_in_streaming_state"
    await web.chat_update(channel=CHANNEL, ts=second["ts"], text="replaced")
    assert slack.thread_bodies(CHANNEL, "1.1") == ["", "replaced"]


async def test_fail_next_429_reaches_slack_sdk_with_retry_after(slack: FakeSlack) -> None:
    slack.fail_next("chat.postMessage", status=429, retry_after=7)
    with pytest.raises(SlackApiError) as failure:
        await client(slack).chat_postMessage(channel=CHANNEL, text="hi")
    assert failure.value.response.status_code == 429
    assert failure.value.response.headers["Retry-After"] == "7"
    await client(slack).chat_postMessage(channel=CHANNEL, text="hi")
    assert (slack.count("chat.postMessage"), len(slack.messages())) == (2, 1)


async def test_rate_limit_bucket(slack: FakeSlack) -> None:
    slack.limit("chat.update", per_minute=60, burst=2)
    web = client(slack)
    posted = await web.chat_postMessage(channel=CHANNEL, text="a")
    statuses = []
    for _ in range(3):
        try:
            updated = await web.chat_update(channel=CHANNEL, ts=posted["ts"], text="b")
            statuses.append(updated.status_code)
        except SlackApiError as failure:
            statuses.append(failure.response.status_code)
    assert (statuses, slack.rate_limited) == ([200, 200, 429], {"chat.update": 1})


async def test_file_upload_round_trip(slack: FakeSlack) -> None:
    await client(slack).files_upload_v2(
        channel=CHANNEL, thread_ts="1.1", content="line\n" * 3, filename="out.txt", title="Out"
    )
    [upload] = slack.files.values()
    assert (upload.content, upload.title, upload.channel) == (b"line\n" * 3, "Out", CHANNEL)


async def test_reply_text_streams_expected_pieces(inference: FakeInference) -> None:
    inference.reply_text("Hello, world!", pieces=3)
    body = {"model": "claude-4-5-haiku", "stream": True, "messages": []}
    events = await stream_events(inference, body)
    chunks = [json.loads(data) for data in events[:-1]]
    contents = [c["choices"][0]["delta"].get("content") for c in chunks if c["choices"]]
    assert contents[1:4] == split_text("Hello, world!", 3) == ["Hello", ", wo", "rld!"]
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert (chunks[-1]["choices"], chunks[-1]["usage"]["total_tokens"] > 0) == ([], True)
    assert (events[-1], chunks[0]["model"]) == ("[DONE]", "claude-4-5-haiku")


async def test_empty_script_echoes(inference: FakeInference) -> None:
    body = {"stream": True, "messages": [{"role": "user", "content": "ping"}]}
    events = await stream_events(inference, body)
    chunks = [json.loads(data) for data in events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "echo: ping"


async def test_reply_raw_sends_exact_bytes(inference: FakeInference) -> None:
    parts = [b'data: {"x": "\xc3', b'\xa9"}\n', b"\n: keep-alive\n\n"]
    inference.reply_raw(parts, delay=0.01)
    async with httpx.AsyncClient(headers={"Authorization": "Bearer inf-test"}) as http:
        response = await http.post(f"{inference.base_url}/v1/chat/completions", json={})
    assert response.content == b"".join(parts)


async def test_agent_events_have_no_space_after_colons(inference: FakeInference) -> None:
    inference.agent_events([("message", agent_completion("hi")), ("done", "[DONE]")])
    async with httpx.AsyncClient(headers={"Authorization": "Bearer inf-test"}) as http:
        response = await http.post(f"{inference.base_url}{AGENTS}", json={"messages": []})
    assert response.text.startswith("event:message\ndata:{")
    assert response.text.endswith("event:done\ndata:[DONE]\n\n")
    assert len(inference.agent_requests) == 1


async def test_wrong_key_gets_401(inference: FakeInference) -> None:
    async with httpx.AsyncClient(headers={"Authorization": "Bearer nope"}) as http:
        response = await http.post(f"{inference.base_url}/v1/chat/completions", json={})
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"
    assert inference.requests[0].headers["authorization"] == "Bearer nope"


async def test_drop_and_stall(inference: FakeInference) -> None:
    inference.reply_drop([b"data: {}\n\n"])
    inference.reply_stall([b"data: {}\n\n"], stall_seconds=5)
    async with httpx.AsyncClient(headers={"Authorization": "Bearer inf-test"}) as http:
        url = f"{inference.base_url}/v1/chat/completions"
        with pytest.raises(httpx.RemoteProtocolError):
            await http.post(url, json={})
        with pytest.raises(httpx.ReadTimeout):
            await http.post(url, json={}, timeout=0.2)
