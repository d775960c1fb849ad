"""The real process: start-up lines, serving over HTTP, and a graceful SIGTERM."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import httpx

from tests.fakes import FakeInference, FakeSlack
from tests.processes import bot_env, signed
from tests.scenarios import CHANNEL, mention

ROOT = Path(__file__).resolve().parent.parent


async def test_token_refused_by_slack_stops_with_one_line(
    slack: FakeSlack, inference: FakeInference, redis_url: str, tmp_path: Path, start: Any
) -> None:
    env = bot_env(
        slack,
        inference,
        redis_url,
        SLACK_BOT_TOKEN="xoxb-wrong-token-value",
    )
    bot = await start(env)
    assert await asyncio.wait_for(bot.proc.wait(), 20) == 2
    assert bot.proc.stderr is not None
    err = (await bot.proc.stderr.read()).decode()
    assert "SLACK_BOT_TOKEN was refused by Slack (invalid_auth)" in err
    assert "Traceback" not in err and "xoxb-wrong-token-value" not in err


async def test_unreachable_redis_is_one_line_and_healthz_503(
    slack: FakeSlack, inference: FakeInference, tmp_path: Path, start: Any
) -> None:
    env = bot_env(slack, inference, "redis://127.0.0.1:1/0")
    bot = await start(env)
    line = await bot.wait_for_line("Redis is not reachable")
    await bot.wait_for_line("serving HTTP")
    assert "Traceback" not in "".join(bot.lines) and line.count("\n") == 1
    async with httpx.AsyncClient() as http:
        assert (await http.get(f"{bot.url}/healthz")).status_code == 503


async def test_sigterm_lets_the_answer_in_flight_finish(
    slack: FakeSlack, inference: FakeInference, redis_url: str, tmp_path: Path, start: Any
) -> None:
    answer = " ".join(f"w{i}" for i in range(30))
    inference.reply_text(answer, pieces=30, delay=0.05)  # about 1.5 s of streaming
    bot = await start(bot_env(slack, inference, redis_url))
    await bot.wait_for_line("serving HTTP")
    body, headers = signed(mention("long one", "20.1"))
    async with httpx.AsyncClient() as http:
        response = await http.post(f"{bot.url}/slack/events", content=body, headers=headers)
    assert response.status_code == 200
    await inference.wait_for_requests(1)
    bot.proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(bot.proc.wait(), 20) == 0
    assert "".join(slack.thread_bodies(CHANNEL, "20.1")) == answer
    assert slack.count("chat.stopStream") == 1


async def test_socket_mode_answers_without_a_public_url(
    slack: FakeSlack, inference: FakeInference, redis_url: str, tmp_path: Path, start: Any
) -> None:
    inference.reply_text("Hello over Socket Mode.")
    env = bot_env(slack, inference, redis_url, SLACK_APP_TOKEN="xapp-test")
    del env["SLACK_SIGNING_SECRET"]  # Socket Mode needs none
    bot = await start(env)
    await bot.wait_for_line("connected to Slack in Socket Mode")
    await slack.socket.connected()
    body = {"type": "event_callback", "team_id": "T0TEAM", "event_id": "EvSOCK",
            "event": mention("over the socket?", "50.1")}  # fmt: skip
    envelope = await slack.socket.send(body)
    await slack.wait_for(lambda s: s.socket.acked(envelope))
    await slack.wait_for(
        lambda s: "".join(s.thread_bodies(CHANNEL, "50.1")) == "Hello over Socket Mode."
    )
    # $PORT still answers /healthz (a Heroku web dyno must bind it), but not /slack/events.
    async with httpx.AsyncClient() as http:
        assert (await http.get(f"{bot.url}/healthz")).status_code == 200
        assert (await http.post(f"{bot.url}/slack/events", content="{}")).status_code in (404, 405)
