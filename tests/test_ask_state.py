"""What Ask keeps and shows besides the answer: status, history bounds, thread keys."""

from __future__ import annotations

import redis

from tests.fakes import FakeInference, FakeSlack
from tests.rig import BotUnderTest, serve, settings_for
from tests.scenarios import CHANNEL, channel_message, mention, wait_answer


async def test_status_shows_before_the_first_token(
    bot: BotUnderTest, slack: FakeSlack, inference: FakeInference
) -> None:
    inference.reply_text("Slow answer.", pieces=2, delay=0.5)
    await bot.event(mention("think hard", "10.1"))
    await slack.wait_for(lambda s: s.count("chat.startStream") == 1)
    assert slack.count("assistant.threads.setStatus") == 0  # a channel has no thread status
    [message] = slack.messages(CHANNEL, "10.1")
    assert message.streaming and message.body == ""  # the stream is open before any text
    await wait_answer(slack, CHANNEL, "10.1", "Slow answer.")


async def test_placeholder_shows_when_streaming_is_refused(
    bot: BotUnderTest, slack: FakeSlack, inference: FakeInference
) -> None:
    slack.refuse_streaming(CHANNEL)
    inference.reply_text("Edited in.", pieces=2, delay=0.5)
    await bot.event(mention("think hard", "11.1"))
    await slack.wait_for(lambda s: s.count("chat.postMessage") == 1)
    [placeholder] = slack.messages(CHANNEL, "11.1")
    assert "Thinking" in placeholder.text
    await wait_answer(slack, CHANNEL, "11.1", "Edited in.")
    assert len(slack.messages(CHANNEL, "11.1")) == 1  # the placeholder became the answer


async def test_history_is_bounded_and_expires(
    slack: FakeSlack, inference: FakeInference, redis_url: str
) -> None:
    settings = settings_for(
        slack, inference, redis_url, copilot_history_turns=4, copilot_thread_ttl_seconds=3600
    )
    async with serve(settings) as bot:
        inference.reply_text("a1")
        await bot.event(mention("q1", "12.1"))
        await wait_answer(slack, CHANNEL, "12.1", "a1")
        for n in (2, 3, 4):
            inference.reply_text(f"a{n}")
            await bot.event(channel_message(f"q{n}", f"12.{n}", thread_ts="12.1"))
            await wait_answer(slack, CHANNEL, "12.1", "".join(f"a{i}" for i in range(1, n + 1)))

    # The fourth question saw only what the bound kept: the newest four turns before it.
    sent = [m["content"] for m in inference.chat_requests[3].json["messages"][1:]]
    assert sent == ["q2", "a2", "q3", "a3", "q4"]
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        history_keys = client.keys("copilot:thread:*:history")
        assert len(history_keys) == 1
        assert client.llen(history_keys[0]) == 4
        for key in client.keys("copilot:*"):
            assert client.ttl(key) > 0, f"{key} has no TTL"
    finally:
        client.close()


async def test_answers_beyond_the_concurrency_bound_wait_their_turn(
    slack: FakeSlack, inference: FakeInference, redis_url: str
) -> None:
    inference.reply_text("first, slowly", pieces=5, delay=0.1)
    inference.reply_text("second")
    settings = settings_for(slack, inference, redis_url, copilot_concurrent_answers=1)
    async with serve(settings) as bot:
        await bot.event(mention("one", "13.1"))
        await inference.wait_for_requests(1)
        await bot.event(mention("two", "14.1"))
        await wait_answer(slack, CHANNEL, "14.1", "second")
    first_done = slack.calls_to("chat.stopStream")[0].at
    assert inference.chat_requests[1].at >= first_done
