"""Only our idle timeout and deadline end a stream: not the HTTP client's read timeout."""

from __future__ import annotations

import httpx
import pytest

from bot.errors import InferenceTimeout
from bot.inference import AgentMessage, AgentsClient
from tests.fakes import FakeInference
from tests.fakes.inference import agent_completion

BODY = {"messages": [{"role": "user", "content": "migrate"}], "tools": []}


def agents_client(
    http: httpx.AsyncClient, inference: FakeInference, *, idle_timeout: float
) -> AgentsClient:
    return AgentsClient(
        http,
        base_url=inference.base_url,
        api_key="inf-test",
        model="m",
        idle_timeout=idle_timeout,
        deadline=10.0,
    )


async def test_a_quiet_tool_longer_than_the_client_read_timeout_is_not_an_error(
    inference: FakeInference,
) -> None:
    # A tool that works quietly (Heroku allows 120 s) outlasts a short client read timeout.
    inference.agent_events(
        [("message", agent_completion("Done after a quiet tool.")), ("done", "[DONE]")], delay=0.6
    )
    async with httpx.AsyncClient(timeout=httpx.Timeout(0.2)) as http:
        agents = agents_client(http, inference, idle_timeout=3.0)
        events = [e async for e in agents.stream_agent(BODY)]
    assert [e.content for e in events if isinstance(e, AgentMessage)] == [
        "Done after a quiet tool."
    ]


async def test_the_idle_timeout_still_ends_a_silent_stream(inference: FakeInference) -> None:
    inference.agent_events(
        [
            ("message", agent_completion("calling a tool", finish_reason="tool_calls")),
            ("message", agent_completion("late")),
        ],
        delay=2.0,
    )
    async with httpx.AsyncClient(timeout=httpx.Timeout(30.0)) as http:
        agents = agents_client(http, inference, idle_timeout=0.3)
        with pytest.raises(InferenceTimeout):
            _ = [e async for e in agents.stream_agent(BODY)]
