"""Restarts: work cut off by SIGTERM or by a crash is reported, questions can be retried."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from typing import Any

import httpx

from tests.fakes import FakeInference, FakeSlack
from tests.fakes.inference import agent_completion
from tests.processes import STALL, answering_stalled, bot_env, signed_form, soon_dead_env
from tests.rig import BotUnderTest, serve, settings_for
from tests.scenarios import CHANNEL, SAMPLE, answer_in


def retry_button(slack: FakeSlack, thread_ts: str) -> str | None:
    for message in slack.messages(CHANNEL, thread_ts):
        for block in message.blocks or []:
            for element in block.get("elements", []):
                if element.get("action_id") == "copilot_retry":
                    return str(element["value"])
    return None


async def click_retry(bot: BotUnderTest, slack: FakeSlack, retry_id: str) -> None:
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": {"id": "U0ALICE"},
        "team": {"id": "T0TEAM"},
        "channel": {"id": CHANNEL},
        "response_url": slack.response_url("retry"),
        "actions": [{"action_id": "copilot_retry", "value": retry_id, "type": "button"}],
    }
    assert (await bot.action(payload)).status_code == 200


async def test_sigterm_past_the_grace_marks_the_answer_interrupted_and_retry_works(
    slack: FakeSlack, inference: FakeInference, redis_url: str, tmp_path: Path, start: Any
) -> None:
    inference.reply_stall(STALL, stall_seconds=30)
    env = bot_env(
        slack,
        inference,
        redis_url,
        COPILOT_SHUTDOWN_GRACE="0.5",
        COPILOT_IDLE_TIMEOUT="60",
    )
    bot = await answering_stalled(start, env, slack, "slow one", "30.1")
    bot.proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(bot.proc.wait(), 20) == 0
    retry_id = retry_button(slack, "30.1")
    assert retry_id is not None
    assert "interrupted by a restart" in answer_in(slack, CHANNEL, "30.1")

    inference.reply_text("Answered after all.")
    async with serve(settings_for(slack, inference, redis_url)) as survivor:
        await click_retry(survivor, slack, retry_id)
        await slack.wait_for(lambda s: "Answered after all." in answer_in(s, CHANNEL, "30.1"))
        await click_retry(survivor, slack, retry_id)  # a second click asks nothing again
        await slack.wait_for(lambda s: bool(s.responses_to("retry")))
    assert [r.json["messages"][-1]["content"] for r in inference.chat_requests] == [
        "slow one",
        "slow one",
    ]


async def test_a_crashed_process_is_noticed_by_the_next_one(
    slack: FakeSlack, inference: FakeInference, redis_url: str, tmp_path: Path, start: Any
) -> None:
    inference.reply_stall(STALL, stall_seconds=30)
    env = soon_dead_env(slack, inference, redis_url)
    bot = await answering_stalled(start, env, slack, "doomed", "31.1")
    await bot.crash()

    settings = settings_for(
        slack,
        inference,
        redis_url,
        copilot_sweep_interval=0.2,
        copilot_heartbeat_interval=0.2,
        copilot_lock_ttl=1,
    )
    async with serve(settings) as survivor:
        await slack.wait_for(lambda s: retry_button(s, "31.1") is not None, timeout=10)
        inference.reply_text("Recovered.")
        await click_retry(survivor, slack, str(retry_button(slack, "31.1")))
        await slack.wait_for(lambda s: "Recovered." in answer_in(s, CHANNEL, "31.1"))
    notices = [m for m in slack.messages(CHANNEL, "31.1") if "interrupted" in m.body]
    assert len(notices) == 1
    # The session left "processing" when the interruption was reported, before the retry.
    assert slack.session_statuses(CHANNEL, "31.1")[:2] == ["processing", "active"]


async def test_a_run_cut_off_by_a_crash_is_failed_not_retried(
    slack: FakeSlack, inference: FakeInference, redis_url: str, tmp_path: Path, start: Any
) -> None:
    runbooks = tmp_path / "runbooks.toml"
    runbooks.write_text(SAMPLE)
    call = {"id": "c1", "type": "function", "function": {"name": "tail", "arguments": "{}"}}
    inference.agent_events(
        [
            (
                "message",
                agent_completion("Tailing…", tool_calls=[call], finish_reason="tool_calls"),
            ),
            ("message", agent_completion("never sent")),
        ],
        delay=30,
    )
    env = bot_env(
        slack,
        inference,
        redis_url,
        COPILOT_HEARTBEAT_INTERVAL="0.2",
        RUNBOOKS_FILE=str(runbooks),
    )
    bot = await start(env)
    await bot.wait_for_line("serving HTTP")
    body, headers = signed_form(
        {
            "command": "/run",
            "text": "logs app=shop",
            "user_id": "U0ALICE",
            "team_id": "T0TEAM",
            "channel_id": CHANNEL,
            "response_url": slack.response_url("cmd"),
        }
    )
    async with httpx.AsyncClient() as http:
        await http.post(f"{bot.url}/slack/events", content=body, headers=headers)
    await inference.wait_for_requests(1, path="/v1/agents/heroku")
    await slack.wait_for(lambda s: "Running" in json.dumps(s.messages(CHANNEL)[0].blocks))
    await bot.crash()

    settings = settings_for(
        slack,
        inference,
        redis_url,
        runbooks_file=str(runbooks),
        copilot_sweep_interval=0.2,
        copilot_heartbeat_interval=0.2,
    )
    async with serve(settings):
        await slack.wait_for(
            lambda s: "interrupted by a restart" in json.dumps(s.messages(CHANNEL)[0].blocks),
            timeout=10,
        )
    card = json.dumps(slack.messages(CHANNEL)[0].blocks)
    assert "Failed" in card and "copilot_cancel" not in card
    thread = answer_in(slack, CHANNEL, slack.messages(CHANNEL)[0].ts)
    assert "not started again" in thread
    assert len(inference.agent_requests) == 1
    assert slack.session_statuses(CHANNEL, slack.messages(CHANNEL)[0].ts) == [
        "processing",
        "active",
    ]


async def test_unknown_retry_id_is_answered_plainly(
    bot: BotUnderTest, slack: FakeSlack, inference: FakeInference
) -> None:
    await click_retry(bot, slack, "nope")
    await slack.wait_for(lambda s: bool(s.responses_to("retry")))
    assert "already retried" in json.dumps(slack.responses_to("retry"))
    assert inference.chat_requests == []
