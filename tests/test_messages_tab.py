"""The Messages tab: opening the bot's DM greets a person once a day with what the copilot
can do and up to four suggested prompts from the runbooks, through the real endpoint."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from bot.state import keys
from bot.state.greetings import day_of, seconds_left_today
from tests.fakes import FakeInference, FakeSlack
from tests.processes import bot_env
from tests.rig import BotUnderTest
from tests.scenarios import ALICE, BOB

GREETED = "Messages tab: greeted"
ALREADY = "Messages tab: already greeted today"
NOT_SERVED = "Messages tab: not greeting someone the bot does not serve"
FAILED = "could not greet in the Messages tab"
SAMPLE_PROMPTS = [
    "Diagnose shop-staging",
    "Run database migrations on shop-staging",
    "Read recent logs",
]

Logged = Callable[[str, int], Awaitable[None]]


def dm(user: str) -> str:
    return f"D0{user[2:]}"


@pytest.fixture
def logged(caplog: pytest.LogCaptureFixture) -> Logged:
    """Wait until ``line`` was logged ``n`` times: the handler's observable end."""
    caplog.set_level(logging.INFO)

    async def wait(line: str, n: int = 1) -> None:
        deadline = time.monotonic() + 5.0
        while True:
            found = [r for r in caplog.records if r.getMessage().startswith(line)]
            if len(found) >= n:
                return
            assert time.monotonic() < deadline, f"{line!r} logged {len(found)} times, not {n}"
            await asyncio.sleep(0.01)

    return wait


def messages_opened(user: str) -> dict[str, Any]:
    return {
        "type": "app_home_opened",
        "user": user,
        "channel": dm(user),
        "tab": "messages",
        "event_ts": f"{time.time():.6f}",
    }


async def open_messages(bot: BotUnderTest, user: str) -> None:
    assert (await bot.event(messages_opened(user))).status_code == 200


async def test_first_open_of_the_day_greets_with_prompts_from_the_runbooks(
    act: BotUnderTest, slack: FakeSlack, logged: Logged, redis_url: str
) -> None:
    await open_messages(act, ALICE)
    await logged(GREETED, 1)

    [greeting] = slack.messages(dm(ALICE))
    assert greeting.thread_ts is None
    assert f"<@{ALICE}>" in greeting.body
    assert "`/run`" in greeting.body and "`migrate`" in greeting.body
    [suggested] = slack.agent.prompts_in(dm(ALICE))
    assert suggested.after_ts == greeting.ts  # attached to the greeting, not a thread
    assert [p["title"] for p in suggested.prompts] == SAMPLE_PROMPTS
    assert len(suggested.prompts) <= 4
    assert "Run database migrations on shop-staging" in [p["message"] for p in suggested.prompts]
    [call] = slack.calls_to("assistant.threads.setSuggestedPrompts")
    assert "thread_ts" not in call.params  # an agent app's call with one silently does nothing

    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        ttl = await client.ttl(keys.greeted(ALICE, day_of(time.time())))
        # Both calls took their turn in the workspace's shared Slack budget.
        budgets = [
            keys.slack_budget("T0TEAM", "chat.postMessage", dm(ALICE)),
            keys.slack_budget("T0TEAM", "assistant.threads.setSuggestedPrompts"),
        ]
        assert await client.exists(*budgets) == 2
    finally:
        await client.aclose()
    assert 0 < ttl <= seconds_left_today(time.time()) + 1


async def test_later_opens_the_same_day_do_nothing(
    act: BotUnderTest, slack: FakeSlack, logged: Logged
) -> None:
    await open_messages(act, ALICE)
    await logged(GREETED, 1)
    await open_messages(act, ALICE)
    await open_messages(act, ALICE)
    await logged(ALREADY, 2)
    assert len(slack.messages(dm(ALICE))) == 1
    assert slack.count("assistant.threads.setSuggestedPrompts") == 1

    await open_messages(act, BOB)  # each person has their own day
    await logged(GREETED, 2)
    assert len(slack.messages(dm(BOB))) == 1


async def test_the_greeting_stands_when_slack_refuses_prompts(
    act: BotUnderTest, slack: FakeSlack, logged: Logged, caplog: pytest.LogCaptureFixture
) -> None:
    slack.agent.declared = False  # no assistant:write: Slack answers missing_scope
    await open_messages(act, ALICE)
    await logged(GREETED, 1)
    assert len(slack.messages(dm(ALICE))) == 1
    assert slack.agent.prompts_in(dm(ALICE)) == []
    assert any("could not set suggested prompts" in r.getMessage() for r in caplog.records)


async def test_a_greeting_slack_refused_is_tried_again_at_the_next_open(
    act: BotUnderTest, slack: FakeSlack, logged: Logged
) -> None:
    slack.set_channel_error(dm(ALICE), "channel_not_found")
    await open_messages(act, ALICE)
    await logged(FAILED, 1)
    assert slack.messages(dm(ALICE)) == []

    slack.channel_errors.pop(dm(ALICE))
    await open_messages(act, ALICE)
    await logged(GREETED, 1)
    assert len(slack.messages(dm(ALICE))) == 1


async def test_a_guest_is_told_once_and_offered_no_prompts(
    act: BotUnderTest, slack: FakeSlack, logged: Logged
) -> None:
    guest = "U0GUEST"
    slack.directory.add_person(guest, guest=True)
    await open_messages(act, guest)
    await logged(NOT_SERVED, 1)
    [told] = slack.messages(dm(guest))
    assert "migrate" not in told.body
    assert slack.agent.prompts_in(dm(guest)) == []


async def test_socket_mode_greets_too(
    slack: FakeSlack, inference: FakeInference, redis_url: str, start: Any
) -> None:
    env = bot_env(slack, inference, redis_url, SLACK_APP_TOKEN="xapp-test")
    del env["SLACK_SIGNING_SECRET"]
    bot = await start(env)
    await bot.wait_for_line("connected to Slack in Socket Mode")
    await slack.socket.connected()
    body = {"type": "event_callback", "team_id": "T0TEAM", "event_id": "EvTAB",
            "event": messages_opened(ALICE)}  # fmt: skip
    envelope = await slack.socket.send(body)
    await slack.wait_for(lambda s: s.socket.acked(envelope))
    await slack.wait_for(lambda s: bool(s.agent.prompts_in(dm(ALICE))), timeout=10)
    [greeting] = slack.messages(dm(ALICE))
    assert f"<@{ALICE}>" in greeting.body
