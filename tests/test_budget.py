"""Slack's rate limits under load: one shared budget, coalesced text, 429s survived."""

from __future__ import annotations

import asyncio

from tests.fakes import FakeInference, FakeSlack
from tests.rig import BotUnderTest, serve, settings_for
from tests.scenarios import CHANNEL, answer_in, mention, wait_answer, wait_answers

SLACK_TIERS = {
    "chat.startStream": (20, 4),
    "chat.stopStream": (20, 4),
    "chat.appendStream": (100, 8),
    "chat.update": (50, 6),
    "chat.postMessage": (60, 4),
}


async def test_concurrent_answers_share_the_budget_without_429s(
    bot: BotUnderTest, slack: FakeSlack, inference: FakeInference
) -> None:
    for method, (per_minute, burst) in SLACK_TIERS.items():
        slack.limit(method, per_minute, burst)
    answers = {f"{80 + i}.1": " ".join(f"a{i}w{n}" for n in range(40)) for i in range(6)}
    for text in answers.values():
        inference.reply_text(text, pieces=40, delay=0.02)
    await asyncio.gather(*(bot.event(mention("busy?", ts)) for ts in answers))
    # Slack's tiers allow under one chat.update a second per workspace: this takes a while.
    await wait_answers(slack, answers, timeout=30)
    assert slack.rate_limited == {}
    # Answers that found no chat.startStream slot posted their first text, not a placeholder
    # whose first edit would wait behind every other answer's chat.update.
    posts = [c.params.get("text", "") for c in slack.calls_to("chat.postMessage")]
    assert posts
    assert not any("Thinking" in text for text in posts)
    # Six answers of forty tokens each came out in far fewer calls than tokens.
    text_calls = sum(slack.count(m) for m in ("chat.appendStream", "chat.update"))
    assert text_calls < 6 * 40 / 4


async def test_rate_limited_update_mid_answer_loses_nothing(
    bot: BotUnderTest, slack: FakeSlack, inference: FakeInference
) -> None:
    slack.refuse_streaming(CHANNEL)
    answer = " ".join(f"t{i}" for i in range(60))
    inference.reply_text(answer, pieces=30, delay=0.02)
    slack.fail_next("chat.update", status=429, retry_after=1)
    await bot.event(mention("edit me", "90.1"))
    await wait_answer(slack, CHANNEL, "90.1", answer)
    assert slack.rate_limited.get("chat.update") == 1


async def test_a_429_holds_the_method_for_every_stream(
    bot: BotUnderTest, slack: FakeSlack, inference: FakeInference
) -> None:
    inference.reply_text("x " * 30, pieces=30, delay=0.03)
    inference.reply_text("y " * 30, pieces=30, delay=0.03)
    slack.fail_next("chat.appendStream", status=429, retry_after=1)
    await bot.event(mention("one", "91.1"))
    await slack.wait_for(lambda s: s.rate_limited.get("chat.appendStream") == 1)
    limited_at = slack.calls_to("chat.appendStream")[0].at
    await bot.event(mention("two", "92.1"))
    await wait_answer(slack, CHANNEL, "91.1", "x " * 30)
    await wait_answer(slack, CHANNEL, "92.1", "y " * 30)
    later = [c.at for c in slack.calls_to("chat.appendStream")[1:]]
    assert later and min(later) - limited_at >= 0.9  # nobody appended during Retry-After


async def test_old_native_stream_rolls_over_to_a_new_message(
    slack: FakeSlack, inference: FakeInference, redis_url: str
) -> None:
    answer = " ".join(f"r{i}" for i in range(50))
    inference.reply_text(answer, pieces=50, delay=0.03)
    settings = settings_for(slack, inference, redis_url, copilot_stream_max_age=0.4)
    async with serve(settings) as bot:
        await bot.event(mention("long stream", "93.1"))
        await wait_answer(slack, CHANNEL, "93.1", answer)
    messages = slack.messages(CHANNEL, "93.1")
    assert len(messages) >= 2
    assert not any(m.stream_open for m in messages)
    assert "".join(answer_in(slack, CHANNEL, "93.1")) == answer
