"""Ask when things break: every failure reaches the person, and the next question works."""

from __future__ import annotations

import json

import pytest

from tests.fakes import FakeInference, FakeSlack
from tests.rig import BotUnderTest, serve, settings_for
from tests.scenarios import CHANNEL, answer_in, mention, wait_answer


async def ask_and_read(bot: BotUnderTest, slack: FakeSlack, ts: str) -> str:
    await bot.event(mention("what broke?", ts))
    await slack.wait_for(lambda s: ":warning:" in answer_in(s, CHANNEL, ts), timeout=10)
    return answer_in(slack, CHANNEL, ts)


async def then_next_question_works(
    bot: BotUnderTest, slack: FakeSlack, inference: FakeInference
) -> None:
    inference.reply_text("Back to normal.")
    await bot.event(mention("still there?", "9999.1"))
    await wait_answer(slack, CHANNEL, "9999.1", "Back to normal.")


@pytest.mark.parametrize(
    ("status", "body", "headers", "expected"),
    [
        (
            429,
            {"error": {"code": 429, "message": "Too many requests", "type": "rate_limit_error"}},
            {"retry-after": "20"},
            "rate-limited right now. Please try again in about 20 seconds",
        ),
        (
            401,
            {"error": {"code": 401, "message": "Invalid key", "type": "authentication_error"}},
            {},
            "INFERENCE_KEY",
        ),
        (
            403,
            {
                "error": {
                    "code": 403,
                    "message": "You do not have access to that model",
                    "type": "authorization_error",
                }
            },
            {},
            "INFERENCE_MODEL_ID",
        ),
        (
            503,
            {"error": "server_error", "message": "upstream unavailable"},
            {},
            "Heroku Inference is unavailable right now",
        ),
    ],
)
async def test_inference_errors_reach_the_thread(
    bot: BotUnderTest,
    slack: FakeSlack,
    inference: FakeInference,
    status: int,
    body: dict[str, object],
    headers: dict[str, str],
    expected: str,
) -> None:
    inference.reply_error(status, body, headers=headers)
    shown = await ask_and_read(bot, slack, "1.1")
    assert expected in shown
    assert "Traceback" not in shown
    assert "inf-test" not in shown
    await then_next_question_works(bot, slack, inference)


async def test_stalled_stream_times_out_and_keeps_the_partial_answer(
    bot: BotUnderTest, slack: FakeSlack, inference: FakeInference
) -> None:
    chunk = {"choices": [{"index": 0, "delta": {"content": "Partial text"}}]}
    inference.reply_stall([f"data: {json.dumps(chunk)}\n\n".encode()], stall_seconds=10)
    shown = await ask_and_read(bot, slack, "2.1")
    assert shown.startswith("Partial text")
    assert "stopped responding" in shown
    await then_next_question_works(bot, slack, inference)


async def test_dropped_connection_is_reported(
    bot: BotUnderTest, slack: FakeSlack, inference: FakeInference
) -> None:
    chunk = {"choices": [{"index": 0, "delta": {"content": "Half an ans"}}]}
    inference.reply_drop([f"data: {json.dumps(chunk)}\n\n".encode()])
    shown = await ask_and_read(bot, slack, "3.1")
    assert shown.startswith("Half an ans")
    assert "unavailable" in shown
    await then_next_question_works(bot, slack, inference)


async def test_error_inside_the_stream_is_reported(
    bot: BotUnderTest, slack: FakeSlack, inference: FakeInference
) -> None:
    error = {"error": {"message": "model overloaded", "type": "server_error"}}
    inference.reply_raw([f"data: {json.dumps(error)}\n\n".encode()])
    shown = await ask_and_read(bot, slack, "4.1")
    assert "model overloaded" in shown
    await then_next_question_works(bot, slack, inference)


async def test_slack_rate_limit_mid_answer_loses_nothing(
    bot: BotUnderTest, slack: FakeSlack, inference: FakeInference
) -> None:
    answer = " ".join(f"token{i}" for i in range(80))
    inference.reply_text(answer, pieces=40, delay=0.01)
    slack.fail_next("chat.appendStream", status=429, retry_after=1, times=1)
    await bot.event(mention("busy day", "5.1"))
    await wait_answer(slack, CHANNEL, "5.1", answer)
    assert slack.count("chat.appendStream") >= 2


async def test_channel_the_bot_cannot_post_in_does_not_stop_the_bot(
    bot: BotUnderTest, slack: FakeSlack, inference: FakeInference
) -> None:
    slack.set_channel_error("C0LOCKED", "not_in_channel")
    slack.refuse_streaming("C0LOCKED", error="not_in_channel")
    event = {**mention("hello?", "6.1"), "channel": "C0LOCKED"}
    await bot.event(event)
    await slack.wait_for(lambda s: s.count("chat.postMessage") >= 1)
    await then_next_question_works(bot, slack, inference)


async def test_redis_unreachable_is_told_to_the_person_and_healthz_says_503(
    slack: FakeSlack, inference: FakeInference
) -> None:
    settings = settings_for(slack, inference, "redis://127.0.0.1:1/0")
    async with serve(settings) as bot:
        health = await bot.http.get(f"{bot.url}/healthz")
        assert health.status_code == 503
        assert health.json()["redis"] == "unreachable"
        await bot.event(mention("are you there?", "7.1"))
        await slack.wait_for(lambda s: any("Redis" in m.body for m in s.messages(CHANNEL, "7.1")))
    assert inference.chat_requests == []


async def test_embedded_store_answers_without_redis(
    slack: FakeSlack, inference: FakeInference
) -> None:
    inference.reply_text("Embedded works.")
    async with serve(settings_for(slack, inference, None)) as bot:
        await bot.event(mention("no redis?", "8.1"))
        await wait_answer(slack, CHANNEL, "8.1", "Embedded works.")
