"""Ask, end to end: signed events in, answers streamed into the fake Slack thread."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from bot.slack.events import TOP_LEVEL
from bot.state import keys
from tests.fakes import FakeInference, FakeSlack
from tests.rig import BotUnderTest
from tests.scenarios import (
    CHANNEL,
    USER,
    BotLog,
    channel_message,
    mention,
    thread_settled,
    wait_answer,
    wait_settled,
)


def dm(text: str, ts: str) -> dict[str, Any]:
    return {
        "type": "message",
        "channel_type": "im",
        "user": USER,
        "text": text,
        "ts": ts,
        "channel": "D0ALICE",
        "team": "T0TEAM",
        "event_ts": ts,
    }


def stream_finished(channel: str, thread_ts: str):  # type: ignore[no-untyped-def]
    def check(slack: FakeSlack) -> bool:
        msgs = slack.messages(channel, thread_ts)
        return (
            bool(msgs)
            and not any(m.streaming and not m.stream_stopped for m in msgs)
            and any(c.method in ("chat.stopStream", "chat.update") for c in slack.calls)
        )

    return check


async def test_mention_is_answered_in_its_thread_with_native_streaming(
    bot: BotUnderTest, slack: FakeSlack, inference: FakeInference
) -> None:
    answer = "Roll back with `heroku releases:rollback v41 -a shop`.\n\nThen check **logs**."
    inference.reply_text(answer, pieces=12)
    response = await bot.event(mention("how do I roll back?", "100.1"))
    assert response.status_code == 200
    await wait_answer(slack, CHANNEL, "100.1", answer)
    await slack.wait_for(lambda s: s.count("chat.stopStream") == 1)

    start = slack.calls_to("chat.startStream")[0].params
    assert start["thread_ts"] == "100.1"
    assert start["recipient_user_id"] == USER
    assert start["recipient_team_id"] == "T0TEAM"
    body = inference.chat_requests[0].json
    assert body["stream"] is True
    assert body["model"] == "claude-4-5-sonnet"
    assert body["messages"][-1] == {"role": "user", "content": "how do I roll back?"}
    assert inference.chat_requests[0].headers["authorization"] == "Bearer inf-test"


async def test_dm_is_answered_in_its_thread_without_recipient_fields(
    bot: BotUnderTest, slack: FakeSlack, inference: FakeInference
) -> None:
    inference.reply_text("Hello from the DM.")
    await bot.event(dm("hi there", "200.1"))
    await wait_answer(slack, "D0ALICE", "200.1", "Hello from the DM.")
    start = slack.calls_to("chat.startStream")[0].params
    assert "recipient_user_id" not in start
    assert slack.count("assistant.threads.setStatus") == 1  # DMs are assistant threads


async def test_follow_up_in_thread_carries_history_without_a_mention(
    bot: BotUnderTest, slack: FakeSlack, inference: FakeInference
) -> None:
    inference.reply_text("Use heroku releases.")
    await bot.event(mention("how do I list releases?", "300.1"))
    await wait_answer(slack, CHANNEL, "300.1", "Use heroku releases.")
    await slack.wait_for(lambda s: s.count("chat.stopStream") == 1)

    inference.reply_text("Add -n 50 to see more.")
    await bot.event(channel_message("and more of them?", "300.5", thread_ts="300.1"))
    await wait_answer(slack, CHANNEL, "300.1", "Use heroku releases.Add -n 50 to see more.")

    messages = inference.chat_requests[1].json["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[1]["content"] == "how do I list releases?"
    assert messages[2]["content"] == "Use heroku releases."
    assert messages[3]["content"] == "and more of them?"


async def test_thread_the_bot_is_not_in_and_its_own_messages_are_ignored(
    bot: BotUnderTest, slack: FakeSlack, inference: FakeInference, bot_log: BotLog
) -> None:
    await bot.event(channel_message("people talking", "400.2", thread_ts="400.1"))
    await bot.event(channel_message("top-level chatter", "400.3"))
    own = channel_message("my own answer", "400.4", thread_ts="400.1", user="U0BOT")
    await bot.event(own)
    await bot.event({**channel_message("bot post", "400.5", thread_ts="400.1"), "bot_id": "B0X"})
    # Each delivery is done with once the bot has said why it gets no answer.
    ignored = "message ignored"
    await bot_log.wait_for(ignored, reason="a thread the bot takes no part in")
    await bot_log.wait_for(ignored, reason=TOP_LEVEL)
    await bot_log.wait_for(ignored, count=2, reason="a bot's post")
    assert len(bot_log.lines(ignored)) == 4
    assert await thread_settled(bot.runtime.redis, "400.1")  # nothing queued
    assert await thread_settled(bot.runtime.redis, "400.3")
    assert inference.chat_requests == []
    assert slack.messages() == []


async def test_retries_and_double_deliveries_are_answered_once(
    bot: BotUnderTest, slack: FakeSlack, inference: FakeInference, bot_log: BotLog
) -> None:
    inference.reply_text("Only once.", delay=0.02)
    event = mention("say it once", "500.1")
    retry = {"x-slack-retry-num": "1", "x-slack-retry-reason": "http_timeout"}
    # Slack's own retry (same event_id) and the message.channels copy of the same @mention.
    results = await asyncio.gather(
        bot.event(event, event_id="EvSAME"),
        bot.event(event, event_id="EvSAME", headers=retry),
        bot.event({**channel_message("<@U0BOT> say it once", "500.1")}, event_id="EvOTHER"),
    )
    assert [r.status_code for r in results] == [200, 200, 200]
    await wait_answer(slack, CHANNEL, "500.1", "Only once.")
    # Done: the retry dropped as a duplicate, the channel copy ignored (no mention outside
    # a thread), and the one answer over with nothing left in its thread.
    await bot_log.wait_for("duplicate delivery ignored")
    await bot_log.wait_for("message ignored", reason=TOP_LEVEL)
    await wait_settled(bot.runtime.redis, "500.1")
    assert len(inference.chat_requests) == 1
    assert len(slack.messages(CHANNEL, "500.1")) == 1


async def test_follow_ups_are_answered_one_at_a_time_in_order(
    bot: BotUnderTest, slack: FakeSlack, inference: FakeInference
) -> None:
    inference.reply_text("first answer", delay=0.05)
    inference.reply_text("second answer")
    inference.reply_text("third answer")
    await bot.event(mention("one", "600.1"))
    await inference.wait_for_requests(1)
    await bot.event(channel_message("two", "600.2", thread_ts="600.1"))
    await bot.event(channel_message("three", "600.3", thread_ts="600.1"))
    await wait_answer(slack, CHANNEL, "600.1", "first answersecond answerthird answer")

    asked = [r.json["messages"][-1]["content"] for r in inference.chat_requests]
    assert asked == ["one", "two", "three"]
    # The third question saw both earlier exchanges, so none ran in parallel.
    third = [m["content"] for m in inference.chat_requests[2].json["messages"][1:]]
    assert third == ["one", "first answer", "two", "second answer", "three"]


async def test_falls_back_to_editing_when_streaming_is_refused(
    bot: BotUnderTest, slack: FakeSlack, inference: FakeInference
) -> None:
    slack.refuse_streaming(CHANNEL, error="channel_type_not_supported")
    answer = "Fallback **answer** " * 20
    inference.reply_text(answer, pieces=30, delay=0.01)
    await bot.event(mention("question", "700.1"))
    await wait_answer(slack, CHANNEL, "700.1", answer)
    assert slack.count("chat.update") >= 1
    [message] = slack.messages(CHANNEL, "700.1")
    assert message.blocks
    assert message.blocks[0]["type"] == "markdown"


async def test_long_answer_continues_in_more_messages_and_nothing_is_cut(
    bot: BotUnderTest, slack: FakeSlack, inference: FakeInference
) -> None:
    paragraphs = [f"Paragraph {i}: " + "lorem ipsum dolor sit amet " * 30 for i in range(40)]
    answer = "\n\n".join(paragraphs)  # about 33 KB
    inference.reply_text(answer, pieces=200)
    await bot.event(mention("write a lot", "800.1"))
    await wait_answer(slack, CHANNEL, "800.1", answer)
    messages = slack.messages(CHANNEL, "800.1")
    assert len(messages) >= 4
    assert all(len(m.body.encode()) <= 10_000 for m in messages)


async def test_expired_stream_continues_in_a_new_message(
    bot: BotUnderTest, slack: FakeSlack, inference: FakeInference
) -> None:
    answer = " ".join(f"word{i}" for i in range(300))
    inference.reply_text(answer, pieces=60, delay=0.01)
    slack.fail_next("chat.appendStream", "message_not_in_streaming_state", times=1)
    await bot.event(mention("long one", "900.1"))
    await wait_answer(slack, CHANNEL, "900.1", answer)
    assert len(slack.messages(CHANNEL, "900.1")) >= 2


async def test_forged_or_stale_requests_get_401_and_do_nothing(
    bot: BotUnderTest, slack: FakeSlack, inference: FakeInference
) -> None:
    body = json.dumps(
        {
            "type": "event_callback",
            "event_id": "Ev1",
            "team_id": "T0TEAM",
            "event": mention("hack", "1000.1"),
        }
    )
    forged = await bot.post(body, "application/json", headers={"x-slack-signature": "v0=bad"})
    unsigned = await bot.post(body, "application/json", signed=False)
    stale = await bot.post(body, "application/json", timestamp=1_000_000_000)
    garbled = await bot.post(
        body, "application/json", headers={"x-slack-request-timestamp": "yesterday"}
    )
    statuses = [r.status_code for r in (forged, unsigned, stale, garbled)]
    assert statuses == [401, 401, 401, 401]
    # A message event is taken (deduped and queued) before its response: after a 401 the
    # bot is done with it, and nothing of it may be in Redis.
    redis = bot.runtime.redis
    assert not await redis.exists(keys.seen_message(CHANNEL, "1000.1"), keys.seen_event("Ev1"))
    assert await thread_settled(redis, "1000.1")
    assert inference.chat_requests == []
    assert slack.messages() == []
    # Nor did they use up the message: the genuine delivery is answered, and only it.
    inference.reply_text("Genuine.")
    await bot.event(mention("hack", "1000.1"), event_id="Ev1")
    await wait_answer(slack, CHANNEL, "1000.1", "Genuine.")
    await wait_settled(redis, "1000.1")
    assert len(inference.chat_requests) == 1


async def test_healthz_reports_redis(bot: BotUnderTest) -> None:
    response = await bot.http.get(f"{bot.url}/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "redis": "ok"}
